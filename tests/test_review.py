"""`radbatch review` and `radbatch review-import` on constructed annotated files (confidence columns as
annotate writes them): the queue's rows and order, escaping, owner-only files, Label Studio round trip into
gold__ columns that `radbatch eval` scores, and exit codes."""

from __future__ import annotations

import csv
import io
import json
import re
import stat
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from radbatch.cli.main import cli
from radbatch.evaluation import Settings, evaluate
from radbatch.evaluation.confidence import confidence_column
from radbatch.review.export import CSV_COMMENT

from test_confidence_eval import write_table

CHROMIUM = Path("/usr/bin/chromium")
TEXT = ("Report {i}: <b>nodes</b> & \"quotes\" </pre><script>document.title='pwned'</script>\n"
        "# a line starting like a CSV comment,\nM1?")


def annotated(tmp_path: Path) -> Path:
    """8 rows for m_staging: confidences 0.95, 0.9, ..., row 3 errored, row 7 not applicable."""
    rows = []
    for i, conf in enumerate([0.95, 0.55, 0.9, None, 0.7, 0.4, 0.85, None]):
        status = "error" if i == 3 else "not_applicable" if i == 7 else "ok"
        rows.append({"source_file": "archive.parquet", "source_row": i, "report_id": f"id-{i}",
                     "report_text": TEXT.format(i=i), "m_staging__status": status,
                     "m_staging__stage": ("M1" if i % 2 else "M0") if status == "ok" else None,
                     "m_staging__model": "smollm2-ft-a", confidence_column("m_staging"): conf})
    path = tmp_path / "out.parquet"
    write_table(path, rows)
    return path


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_queue_below_threshold_least_confident_first_owner_only(tmp_path):
    src = annotated(tmp_path)
    out = tmp_path / "queue"
    res = run("review", src, "--head", "m_staging", "--below", "0.8", "-o", out)
    assert res.exit_code == 0, res.output
    assert res.output.startswith("4 rows queued for m_staging")
    lines = (out / "review.csv").read_text().splitlines()
    assert lines[0] == CSV_COMMENT and "report text" in lines[0]
    rows = list(csv.DictReader(io.StringIO("\n".join(lines[1:]))))
    # the errored row first (no answer), then 0.4, 0.55, 0.7; 0.85+ and not_applicable are not queued
    assert [(r["source_row"], r["confidence"], r["model_answer"]) for r in rows] == \
        [("3", "", ""), ("5", "0.4000", "M1"), ("1", "0.5500", "M1"), ("4", "0.7000", "M0")]
    assert rows[1]["report_text"] == TEXT.format(i=5) and rows[1]["correct_answer"] == ""
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for name in ("review.html", "review.csv", "labelstudio_tasks.json", "labelstudio_config.xml", "README.txt"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name
    page = (out / "review.html").read_text()
    assert "<script>document.title" not in page and "&lt;/pre&gt;&lt;script&gt;" in page  # escaped
    assert "Holds report text." in page and "report text" in (out / "README.txt").read_text()
    # --lowest N takes the N least confident
    res = run("review", src, "--head", "m_staging", "--lowest", "2", "-o", tmp_path / "q2")
    assert res.exit_code == 0 and res.output.startswith("2 rows queued")


def test_an_existing_file_is_made_owner_only(tmp_path):
    src = annotated(tmp_path)
    out = tmp_path / "queue"
    out.mkdir(mode=0o755)
    (out / "review.csv").write_text("old")
    (out / "review.csv").chmod(0o644)
    assert run("review", src, "--head", "m_staging", "--lowest", "1", "-o", out).exit_code == 0
    assert stat.S_IMODE((out / "review.csv").stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700


def test_label_studio_files_follow_the_task_import_format(tmp_path):
    src = annotated(tmp_path)
    out = tmp_path / "queue"
    assert run("review", src, "--head", "m_staging", "--below", "0.8", "-o", out).exit_code == 0
    tasks = json.loads((out / "labelstudio_tasks.json").read_text())
    assert [t["data"]["source_row"] for t in tasks] == [3, 5, 1, 4]
    assert tasks[0]["data"]["text"] == TEXT.format(i=3) and "predictions" not in tasks[0]  # no answer to show
    pred = tasks[1]["predictions"][0]
    assert pred["score"] == 0.4 and pred["model_version"] == "smollm2-ft-a"
    assert pred["result"] == [{"id": "r2_answer", "from_name": "answer", "to_name": "report", "type": "choices",
                               "value": {"choices": ["M1"]}}]
    config = (out / "labelstudio_config.xml").read_text()
    assert '<Text name="report" value="$text"/>' in config
    assert '<Header value="$model_line" size="5"/>' in config
    assert tasks[1]["data"]["model_line"] == "Model: M1 (confidence 0.4000)"
    assert re.findall(r'<Choice value="([^"]+)"/>', config) == ["M0", "M1"]
    assert '<Choices name="answer" toName="report" choice="single"' in config


def label_studio_export(tasks: list[dict], answers: dict[int, str]) -> list[dict]:
    """What Label Studio exports (JSON) after annotators submit: each task with its annotations."""
    exported = []
    for n, task in enumerate(tasks, 1):
        done = []
        if task["data"]["source_row"] in answers:
            done = [{"id": n, "was_cancelled": True, "result": [{"from_name": "answer", "to_name": "report",
                                                                 "type": "choices", "value": {"choices": ["M0"]}}]},
                    {"id": 100 + n, "was_cancelled": False, "lead_time": 3.1,
                     "result": [{"id": "x", "from_name": "answer", "to_name": "report", "type": "choices",
                                 "value": {"choices": [answers[task["data"]["source_row"]]]}}]}]
        exported.append({"id": n, "data": task["data"], "annotations": done,
                         "predictions": task.get("predictions", [])})
    return exported


def test_label_studio_export_round_trips_into_gold_that_eval_reads(tmp_path):
    src = annotated(tmp_path)
    out = tmp_path / "queue"
    assert run("review", src, "--head", "m_staging", "--below", "0.8", "-o", out).exit_code == 0
    tasks = json.loads((out / "labelstudio_tasks.json").read_text())
    export = tmp_path / "export.json"
    # reviewers: row 3 (errored) is M1, row 5 is M1 (model right), row 1 is M0 (model wrong); row 4 left open
    export.write_text(json.dumps(label_studio_export(tasks, {3: "M1", 5: "M1", 1: "M0"})))
    reviewed = tmp_path / "reviewed.parquet"
    res = run("review-import", export, "--annotated", src, "-o", reviewed)
    assert res.exit_code == 0, res.output
    assert "m_staging: 3 reviewed rows" in res.output
    assert stat.S_IMODE(reviewed.stat().st_mode) == 0o600
    table = pq.read_table(reviewed)
    assert table.column("source_row").to_pylist() == [1, 3, 5]
    assert table.column("gold__m_staging__stage").to_pylist() == ["M0", "M1", "M1"]
    assert table.column("report_text").to_pylist()[0] == TEXT.format(i=1)  # finetune needs the text
    result = evaluate([reviewed], settings=Settings(resamples=20))
    head = result.runs[0].heads["m_staging"]
    assert head.counts["scored"] == 3 and head.counts["error"] == 1
    assert head.metrics["stage/accuracy"].value == pytest.approx(1 / 3)  # row 5 right; row 1 wrong; row 3 error
    assert head.calibration["raw"]["items"] == 2  # the errored row has no confidence
    # and as --gold for the whole annotated file: joined on source_file + source_row
    res = run("eval", src, "--gold", reviewed)
    assert res.exit_code == 0 and "m_staging: 3 scored of 3 labelled" in res.output


def test_filled_csv_imports_with_ok_and_case_insensitive_answers(tmp_path):
    src = annotated(tmp_path)
    out = tmp_path / "queue"
    assert run("review", src, "--head", "m_staging", "--below", "0.8", "-o", out).exit_code == 0
    text = (out / "review.csv").read_text()
    lines = text.splitlines()
    rows = list(csv.DictReader(io.StringIO("\n".join(lines[1:]))))
    rows[1]["correct_answer"] = "ok"       # row 5: the model's M1 is right
    rows[2]["correct_answer"] = " m0 "     # row 1: typed loosely
    filled = tmp_path / "filled.csv"
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    filled.write_text(lines[0] + "\n" + buf.getvalue())
    reviewed = tmp_path / "reviewed.parquet"
    res = run("review-import", filled, "--annotated", src, "-o", reviewed)
    assert res.exit_code == 0, res.output
    table = pq.read_table(reviewed)
    assert table.column("source_row").to_pylist() == [1, 5]
    assert table.column("gold__m_staging__stage").to_pylist() == ["M0", "M1"]


def test_bad_answers_are_input_errors_without_report_text(tmp_path):
    src = annotated(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("rank,head,source_file,source_row,correct_answer\n"
                   "1,m_staging,archive.parquet,5,M7\n1,m_staging,archive.parquet,3,ok\n"
                   "1,m_staging,archive.parquet,99,M0\n")
    res = run("review-import", bad, "--annotated", src, "-o", tmp_path / "g.parquet")
    assert res.exit_code == 2
    assert "3 problem(s)" in res.output and "not one of the allowed answers" in res.output
    assert "model gave no valid answer" in res.output and "source_row=99" in res.output
    assert "Report" not in res.output and not (tmp_path / "g.parquet").exists()


def test_exit_codes(tmp_path):
    src = annotated(tmp_path)
    assert run("review", src, "--head", "m_staging", "-o", tmp_path / "q").exit_code == 2  # neither option
    res = run("review", src, "--head", "radiology_qa", "--lowest", "1", "-o", tmp_path / "q")
    assert res.exit_code == 2 and "Heads with confidences" in res.output
    res = run("review", tmp_path / "missing.parquet", "--head", "m_staging", "--lowest", "1")
    assert res.exit_code == 2 and "not found" in res.output
    res = run("review", src, "--head", "n_staging", "--lowest", "1", "-o", tmp_path / "q")
    assert res.exit_code == 2 and "n_staging__confidence" in res.output
    blocked = tmp_path / "file"
    blocked.write_text("")
    res = run("review", src, "--head", "m_staging", "--lowest", "1", "-o", blocked / "sub")
    assert res.exit_code == 4 and "cannot create output folder" in res.output


def test_abnormality_rows_review_every_label(tmp_path):
    rows = [{"source_file": "a.parquet", "source_row": i, "report_text": f"chest {i}",
             "abnormality_detection__status": "ok", "abnormality_detection__edema": "positive",
             "abnormality_detection__atelectasis": None,
             confidence_column("abnormality_detection", "edema"): 0.9 - 0.1 * i,
             confidence_column("abnormality_detection", "atelectasis"): 0.8} for i in range(3)]
    src = tmp_path / "abn.parquet"
    write_table(src, rows)
    out = tmp_path / "q"
    res = run("review", src, "--head", "abnormality_detection", "--below", "0.75", "-o", out)
    assert res.exit_code == 0, res.output
    tasks = json.loads((out / "labelstudio_tasks.json").read_text())
    assert [t["data"]["source_row"] for t in tasks] == [2]  # a row's confidence is its least sure label's
    assert tasks[0]["data"]["confidence"] == "0.7000" and len(tasks[0]["predictions"][0]["result"]) == 14
    # the reviewer fixes one label; the others keep the model's answer
    export = [{"data": tasks[0]["data"], "annotations": [{"was_cancelled": False, "result": [
        {"from_name": "edema", "to_name": "report", "type": "choices", "value": {"choices": ["uncertain"]}}]}]}]
    (tmp_path / "e.json").write_text(json.dumps(export))
    res = run("review-import", tmp_path / "e.json", "--annotated", src, "-o", tmp_path / "g.parquet")
    assert res.exit_code == 0, res.output
    table = pq.read_table(tmp_path / "g.parquet")
    assert table.column("gold__abnormality_detection__edema").to_pylist() == ["uncertain"]
    assert table.column("gold__abnormality_detection__atelectasis").to_pylist() == [None]
    assert table.column("gold__abnormality_detection__no_finding").to_pylist() == [None]


def chromium_dom(page: Path, tmp_path: Path) -> str:
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (the Makefile installs it)")
def test_review_html_opens_in_headless_chromium_and_shows_the_queued_rows(tmp_path):
    src = annotated(tmp_path)
    out = tmp_path / "queue"
    assert run("review", src, "--head", "m_staging", "--below", "0.8", "-o", out).exit_code == 0
    dom = chromium_dom(out / "review.html", tmp_path)
    sections = re.findall(r'<section class="item" data-rank="(\d+)" data-source-file="archive.parquet" '
                          r'data-source-row="(\d+)"', dom)
    assert sections == [("1", "3"), ("2", "5"), ("3", "1"), ("4", "4")]
    assert "<title>radbatch review: m_staging</title>" in dom  # the report's <script> did not run
    assert dom.count("<select data-control=\"answer\">") == 4
    assert "Report 5: &lt;b&gt;nodes&lt;/b&gt;" in dom and "Holds report text." in dom


def test_reviewed_rows_are_finetune_examples(tmp_path):
    """`radbatch finetune` reads the imported gold: one m_staging example per reviewed row, target = the answer."""
    from radbatch.archive.reading import ColumnOptions
    from radbatch.finetune.data import DataOptions, iter_examples
    from radbatch.heads.models import ModelSpec, embedded_path
    from radbatch.heads.recipes import load_recipes

    src = annotated(tmp_path)
    out = tmp_path / "queue"
    assert run("review", src, "--head", "m_staging", "--below", "0.8", "-o", out).exit_code == 0
    tasks = json.loads((out / "labelstudio_tasks.json").read_text())
    (tmp_path / "export.json").write_text(json.dumps(label_studio_export(tasks, {3: "M1", 1: "M0"})))
    reviewed = tmp_path / "reviewed.parquet"
    assert run("review-import", tmp_path / "export.json", "--annotated", src, "-o", reviewed).exit_code == 0
    spec = ModelSpec("smollm2", str(embedded_path()), None, "chatml", 2048, "radbatch", "Apache-2.0")
    examples = list(iter_examples(DataOptions((str(reviewed),), ColumnOptions()), load_recipes(), spec))
    assert [(e.task, e.answer) for e in examples] == [("m_staging", "M0"), ("m_staging", "M1")]


PROBE = """<script>window.addEventListener('load', () => {
  const selects = document.querySelectorAll('select');
  selects[1].value = 'ok';   // rank 2, row 5: the model's M1 is right
  selects[2].value = 'M0';   // rank 3, row 1: the model said M1
  radbatchCsv();
  const href = document.getElementById('download').getAttribute('href');
  document.body.setAttribute('data-csv', decodeURIComponent(href.slice(href.indexOf(',') + 1)));
});</script></body>"""


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed (the Makefile installs it)")
def test_answers_chosen_in_the_html_page_import_as_gold(tmp_path):
    import html as html_lib

    src = annotated(tmp_path)
    out = tmp_path / "queue"
    assert run("review", src, "--head", "m_staging", "--below", "0.8", "-o", out).exit_code == 0
    probe = out / "probe.html"
    probe.write_text((out / "review.html").read_text().replace("</body>", PROBE))
    found = re.search(r'data-csv="([^"]*)"', chromium_dom(probe, tmp_path))
    assert found
    downloaded = tmp_path / "review_answers.csv"
    downloaded.write_text(html_lib.unescape(found.group(1)))
    assert downloaded.read_text().splitlines()[0] == "rank,head,source_file,source_row,report_id,correct_answer"
    reviewed = tmp_path / "reviewed.parquet"
    res = run("review-import", downloaded, "--annotated", src, "-o", reviewed)
    assert res.exit_code == 0, res.output
    table = pq.read_table(reviewed)
    assert table.column("source_row").to_pylist() == [1, 5]
    assert table.column("gold__m_staging__stage").to_pylist() == ["M0", "M1"]


def test_review_end_to_end_on_real_annotate_output(tmp_path):
    """Real `radbatch annotate` (llama.cpp, embedded model) on 8 reports, m_staging only. Until annotate
    writes confidences, a constructed m_staging__confidence column is added (row i: 0.3 + 0.08 i); once it
    does, the real column is used as is. Then review -> Label Studio export -> import -> eval."""
    from conftest import run_cli, write_reports

    reports = write_reports(tmp_path / "reports.parquet")
    out = tmp_path / "out.parquet"
    res = run_cli("annotate", reports, "-o", out, "--tasks", "m_staging", "--model", "smollm2-ft-a", "--workers", "1",
                  "--threads", "1", "-q")
    assert res.returncode == 0, res.stderr[-2000:]
    table = pq.read_table(out)
    column = confidence_column("m_staging")
    if column not in table.column_names:
        import pyarrow as pa
        table = table.append_column(column, pa.array([0.3 + 0.08 * i for i in range(table.num_rows)], pa.float64()))
        pq.write_table(table, out)
    queue = tmp_path / "queue"
    res = run_cli("review", out, "--head", "m_staging", "--lowest", "3", "-o", queue)
    assert res.returncode == 0, res.stderr
    tasks = json.loads((queue / "labelstudio_tasks.json").read_text())
    assert len(tasks) == 3 and all(t["data"]["text"] in [r["report_text"] for r in table.to_pylist()] for t in tasks)
    rows = [t["data"]["source_row"] for t in tasks]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(label_studio_export(tasks, {rows[0]: "M0", rows[1]: "M1", rows[2]: "M0"})))
    reviewed = tmp_path / "reviewed.parquet"
    res = run_cli("review-import", export, "--annotated", out, "-o", reviewed)
    assert res.returncode == 0, res.stderr
    gold = pq.read_table(reviewed).column("gold__m_staging__stage").to_pylist()
    assert sorted(gold) == ["M0", "M0", "M1"]
    res = run_cli("eval", reviewed, "--target-precision", "0.9")
    assert res.returncode == 0, res.stderr
    assert "m_staging: 3 scored of 3 labelled" in res.stdout and "confidence (raw)" in res.stdout


def test_importing_the_review_commands_stays_light():
    import sys

    code = ("import sys, radbatch.cli.main, radbatch.cli.review; "
            "print(sorted(m for m in ('numpy', 'polars', 'pyarrow', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
