"""Cost of the CSV quoting check (archive.check_quoting) per GiB, beside Arrow's own streaming read of the file.

    bench/exclusive .venv/bin/python bench/csv_quote_scan.py /tmp/big.csv 512   # writes a 512 MiB CSV if missing
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from radbatch.archive.reading import check_quoting, inspect, iter_batches

path = Path(sys.argv[1])
if not path.exists():
    report = ('"EXAM: CT CHEST, ABDOMEN AND PELVIS WITH CONTRAST\nFINDINGS: Enlarged right hilar lymph node, 1.8 cm. '
              'Multiple ""hypodense"" hepatic lesions, compatible with metastases. No effusion.\n'
              'IMPRESSION: Nodal and hepatic metastatic disease."')
    with open(path, "w") as fh:
        fh.write("report_id,patient_id,report_text\n")
        i = 0
        while fh.tell() < int(sys.argv[2]) * 2**20:
            fh.write("".join(f"R{i + k},P{(i + k) % 997},{report}\n" for k in range(10000)))
            i += 10000
size = path.stat().st_size
t = time.perf_counter(); check_quoting(path, "utf-8"); scan = time.perf_counter() - t
f = inspect(0, path, "utf-8")
t = time.perf_counter(); n = sum(b.num_rows for b in iter_batches(f, "utf-8", {"report_text"})); read = time.perf_counter() - t
t = time.perf_counter(); check_quoting(path, "cp1252"); scan_cp = time.perf_counter() - t
print(f"{size / 2**20:.0f} MiB, {n} rows: check_quoting {scan:.2f} s ({scan / size * 2**30:.1f} s/GiB); "
      f"Arrow read {read:.2f} s ({read / size * 2**30:.1f} s/GiB); cp1252 {scan_cp:.2f} s")
