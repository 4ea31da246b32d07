"""The review queue on disk: review.html (self-contained form), review.csv, and a Label Studio project
(labelstudio_tasks.json in Label Studio's task import format, labelstudio_config.xml, a Choices control).

CSV and HTML share one rule for answers (radbatch.review.gold reads them back): `correct_<control>` holds a
choice, or `ok` for "the model's answer is right"; a blank control keeps the model's answer when another
control of the row is filled (abnormality_detection: fix only the wrong labels); a row with every control
blank was not reviewed.
"""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path

from .answers import NOT_MENTIONED, ReviewHead
from .files import NOTICE, private_dir, write_private
from .queue import Item

CSV_COMMENT = "# radbatch review queue. " + NOTICE
OK = "ok"
TO_NAME = "report"


def csv_columns(head: ReviewHead) -> list[str]:
    model = [f"model_{c.name}" for c in head.controls]
    conf = [f"confidence_{c.name}" for c in head.controls] if head.multi else []
    return (["rank", "head", "source_file", "source_row", "report_id", "status", "confidence"] + model + conf
            + [f"correct_{c.name}" for c in head.controls] + ["report_text"])


def _fmt(p: float | None) -> str:
    return "" if p is None else f"{p:.4f}"


def write_queue(out: Path, head: ReviewHead, items: list[Item], source: Path) -> dict[str, Path]:
    private_dir(out)
    paths = {
        "html": write_private(out / "review.html", render_html(head, items, source)),
        "csv": write_private(out / "review.csv", render_csv(head, items)),
        "labelstudio_tasks": write_private(out / "labelstudio_tasks.json",
                                           json.dumps(labelstudio_tasks(head, items), indent=1, ensure_ascii=False)),
        "labelstudio_config": write_private(out / "labelstudio_config.xml", labelstudio_config(head)),
        "readme": write_private(out / "README.txt", _readme(head, source, len(items))),
    }
    return paths


def _readme(head: ReviewHead, source: Path, n: int) -> str:
    return (f"radbatch review queue: {n} rows of {source.name} for head {head.task}, least confident first.\n\n"
            f"{NOTICE}\n\n"
            "review.html             open in a browser; choose answers; 'Download answers' saves a CSV.\n"
            "review.csv              or fill the correct_* columns here (a choice, or 'ok' = the model is right).\n"
            "labelstudio_tasks.json  import into a Label Studio project whose labeling config is\n"
            "labelstudio_config.xml  (Settings > Labeling Interface > Code); export the results as JSON.\n\n"
            f"Back into gold columns:\n  radbatch review-import FILLED.csv|EXPORT.json --annotated {source.name} "
            "-o reviewed.parquet\n")


def render_csv(head: ReviewHead, items: list[Item]) -> str:
    buf = io.StringIO()
    buf.write(CSV_COMMENT + "\n")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(csv_columns(head))
    for it in items:
        writer.writerow([it.rank, head.task, it.source_file, it.source_row, it.report_id or "", it.status,
                         _fmt(it.confidence)] + [it.model[c.name] or "" for c in head.controls]
                        + ([_fmt(it.label_confidence.get(c.name)) for c in head.controls] if head.multi else [])
                        + [""] * len(head.controls) + [it.text])
    return buf.getvalue()


# --- Label Studio ---------------------------------------------------------------------------------------

def _model_summary(head: ReviewHead, it: Item) -> str:
    if it.status != "ok":
        return f"no answer ({it.status})"
    if head.multi:
        mentioned = [c for c in head.controls if it.model[c.name] not in (None, NOT_MENTIONED)]
        return "; ".join(f"{c.title}: {it.model[c.name]}" for c in mentioned) or NOT_MENTIONED
    return it.model["answer"] or "(output matches no choice)"


def labelstudio_tasks(head: ReviewHead, items: list[Item]) -> list[dict]:
    tasks = []
    for it in items:
        task = {"data": {"text": it.text, "radbatch_head": head.task, "radbatch_rank": it.rank,
                         "source_file": it.source_file, "source_row": it.source_row, "report_id": it.report_id,
                         "model_answer": _model_summary(head, it),
                         "confidence": _fmt(it.confidence) or "none",
                         "model_line": (f"Model: {_model_summary(head, it)} "
                                        f"(confidence {_fmt(it.confidence) or 'none'})")}}
        result = [{"id": f"r{it.rank}_{c.name}", "from_name": c.name, "to_name": TO_NAME, "type": "choices",
                   "value": {"choices": [it.model[c.name]]}} for c in head.controls if it.model[c.name]]
        if result:
            task["predictions"] = [{"model_version": it.model_name or "radbatch", "score": it.confidence,
                                    "result": result}]
        tasks.append(task)
    return tasks


def labelstudio_config(head: ReviewHead) -> str:
    q = lambda s: html.escape(str(s), quote=True)  # noqa: E731
    parts = ["<View>",
             f'  <Header value="radbatch review: {q(head.task)}. This task holds report text (patient data)."/>',
             '  <Header value="$model_line" size="5"/>',  # Header takes static text or one data field
             f'  <Text name="{TO_NAME}" value="$text"/>']
    for c in head.controls:
        if head.multi:
            parts.append(f'  <Header value="{q(c.title)}" size="6"/>')
        parts.append(f'  <Choices name="{q(c.name)}" toName="{TO_NAME}" choice="single" showInline="true">')
        parts += [f'    <Choice value="{q(choice)}"/>' for choice in c.choices]
        parts.append("  </Choices>")
    parts.append("</View>")
    return "\n".join(parts) + "\n"


# --- HTML -----------------------------------------------------------------------------------------------

STYLE = """body{font-family:sans-serif;max-width:1000px;margin:1.5em auto;color:#222}
.notice{background:#fff3cd;border:1px solid #e0c36a;padding:.6em 1em}
.item{border:1px solid #ccc;border-radius:4px;margin:1em 0;padding:.6em 1em}
.item h2{font-size:1.05em;margin:.2em 0}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.6em;max-height:24em;overflow:auto}
label{display:inline-block;margin:.2em 1.2em .2em 0}.conf{font-weight:bold}"""

SCRIPT = """<script>
function radbatchCsv() {
  const q = v => /[",\\n\\r]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;
  const controls = JSON.parse(document.body.dataset.controls);
  const lines = [['rank', 'head', 'source_file', 'source_row', 'report_id']
                 .concat(controls.map(c => 'correct_' + c)).join(',')];
  for (const item of document.querySelectorAll('section.item')) {
    const answers = controls.map(c => item.querySelector('select[data-control="' + c + '"]').value);
    if (answers.every(a => a === '')) continue;
    lines.push([item.dataset.rank, document.body.dataset.head, item.dataset.sourceFile, item.dataset.sourceRow,
                item.dataset.reportId].concat(answers).map(q).join(','));
  }
  const link = document.getElementById('download');
  link.href = 'data:text/csv;charset=utf-8,' + encodeURIComponent(lines.join('\\n') + '\\n');
  link.download = 'review_answers.csv';
}
</script>"""


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def render_html(head: ReviewHead, items: list[Item], source: Path) -> str:
    controls = json.dumps([c.name for c in head.controls])
    body = [f"<h1>radbatch review: {_e(head.task)}</h1>",
            f"<p class='notice'><b>Holds report text.</b> {_e(NOTICE)}</p>",
            f"<p>{len(items)} rows of {_e(source.name)}, least confident first. For each row choose the right "
            "answer (or <i>ok</i> when the model's answer is right), then "
            "<a id='download' href='#' onclick='radbatchCsv()'>download the answers (CSV)</a> and run "
            f"<code>radbatch review-import review_answers.csv --annotated {_e(source.name)} -o reviewed.parquet"
            "</code>. Rows left blank are not imported.</p>"]
    body += [_item_html(head, it) for it in items]
    csp = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
    return (f"<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='Content-Security-Policy' "
            f"content=\"{csp}\"><meta name='robots' content='noindex'><title>radbatch review: {_e(head.task)}"
            f"</title><style>{STYLE}</style>{SCRIPT}</head><body data-head='{_e(head.task)}' "
            f"data-controls='{_e(controls)}'>{''.join(body)}</body></html>\n")


def _item_html(head: ReviewHead, it: Item) -> str:
    conf = "none (no answer)" if it.confidence is None else f"{it.confidence:.3f}"
    fields = []
    for c in head.controls:
        model = it.model[c.name]
        sub = (f" ({_fmt(it.label_confidence.get(c.name))})" if head.multi else "")
        options = ["<option value=''>not reviewed</option>"]
        if model:
            options.append(f"<option value='{OK}'>ok: {_e(model)}</option>")
        options += [f"<option value='{_e(ch)}'>{_e(ch)}</option>" for ch in c.choices]
        fields.append(f"<label>{_e(c.title)}: model <i>{_e(model or '-')}</i>{_e(sub)} "
                      f"<select data-control='{_e(c.name)}'>{''.join(options)}</select></label>")
    return (f"<section class='item' data-rank='{it.rank}' data-source-file='{_e(it.source_file)}' "
            f"data-source-row='{it.source_row}' data-report-id='{_e(it.report_id)}'>"
            f"<h2>#{it.rank} &middot; {_e(it.source_file)} row {it.source_row}"
            f"{' &middot; id ' + _e(it.report_id) if it.report_id else ''}</h2>"
            f"<p>model answer: <b class='answer'>{_e(_model_summary(head, it))}</b>, confidence "
            f"<span class='conf'>{conf}</span></p><pre class='report'>{_e(it.text)}</pre>{''.join(fields)}</section>")
