"""What real report exports contain (--messy): missing and empty text, duplicate report ids, very long
reports, non-ASCII characters, quotes, CRLF line ends.

Additions go before the first section header, where the sectionizer keeps them out of every section,
so the gold of a roughened row still holds. Rows with no text have no gold.
"""

from __future__ import annotations

import random

from radbatch.sample.schema import GOLD_NAMES

_NAMES = ("Dr. Jos\u00e9 M\u00fcller-\u0141ukasik", "Dr. Zo\u00eb Bront\u00eb", "Dr. Ana\u00efs Fran\u00e7ois", "Dr. J\u00fcrgen Gro\u00df")
_QUOTES = (
    'Referring note: patient states "I can\'t catch my breath".',
    'Clinical note: "rule out" per ED, see prior "wet read".',
    'Order comment: "urgent" - please call 555-0100.',
)


def roughen(rng: random.Random, rows: list[dict], gold: bool) -> list[dict]:
    out = []
    for row in rows:
        r = rng.random()
        if r < 0.01:
            _no_text(row, None)
        elif r < 0.02:
            _no_text(row, rng.choice(("", "   ", "\n")))
        elif r < 0.025:
            row["report_text"] = _dose_log(rng) + row["report_text"]
        elif r < 0.065:
            row["report_text"] = f"Radiologist: {rng.choice(_NAMES)} \u2013 reviewed \u2713\n\n" + row["report_text"]
        elif r < 0.095:
            row["report_text"] = rng.choice(_QUOTES) + "\n\n" + row["report_text"]
        elif r < 0.115:
            _crlf(row, gold)
        out.append(row)
        if rng.random() < 0.015 and row["report_text"]:
            out.append(_duplicate(rng, row))
    return out


def _no_text(row: dict, text: str | None) -> None:
    row["report_text"] = text
    row["question"] = row["hypothesis"] = None
    for name in GOLD_NAMES:
        if name in row:
            row[name] = None


def _dose_log(rng: random.Random) -> str:
    """A very long preamble (about 20k characters), as CT dose reports pasted into the text are."""
    lines = []
    size = 0
    series = 0
    while size < 20_000:
        series += 1
        line = (
            f"Series {series}: axial {rng.choice((0.625, 1.25, 2.5, 5.0))} mm, "
            f"CTDIvol {rng.uniform(2, 25):.2f} mGy, DLP {rng.uniform(50, 900):.1f} mGy\u00b7cm"
        )
        lines.append(line)
        size += len(line) + 1
    return "Dose report:\n" + "\n".join(lines) + "\n\n"


def _crlf(row: dict, gold: bool) -> None:
    row["report_text"] = row["report_text"].replace("\n", "\r\n")
    key = "gold__impression_generation__text"
    if gold and row.get(key):
        row[key] = row[key].replace("\n", "\r\n")


def _duplicate(rng: random.Random, row: dict) -> dict:
    """The same report exported again: verbatim, or with an addendum above it (same report_id)."""
    copy = dict(row)
    if rng.random() < 0.5:
        copy["report_text"] = "ADDENDUM: findings discussed with the referring clinician by telephone.\n\n" + row["report_text"]
    return copy
