"""One patient's rows: plan the studies, draft each from its facts, lay it out, attach the gold.

Everything here is a function of (seed key, patient index), drawn from the patient's own RNG, so
rows do not depend on which batch or worker produced them.
"""

from __future__ import annotations

import datetime

from radbatch.sample.cohort import MAX_STUDIES, Patient, Study, plan_patient, reseeded_rng, split_of
from radbatch.sample.dictation import Dictation, Options
from radbatch.sample.draft import Draft
from radbatch.sample.families import FAMILIES
from radbatch.sample.layout import Rendered, render
from radbatch.sample.messy import roughen
from radbatch.sample.nli import choose_hypothesis
from radbatch.sample.qa import choose_question
from radbatch.sample.schema import CHEXPERT
from radbatch.sample.styles import Style, choose_style

_EPOCH = datetime.date(1970, 1, 1).toordinal()
_NO_PRIOR = Options("None.", "None", "None available.", train=("No prior studies.",), test=("No prior imaging available for comparison.",))
_PRIOR = Options("{exam} dated {date}.", "Prior study from {date}.", train=("{date}.",), test=("Previous examination of {date}.",))
_DOCTORS = ("A. Patel, MD", "J. Smith, MD", "M. Garcia, MD", "L. Chen, MD", "R. Okafor, MD", "S. Novak, MD")


def patient_rows(key: int, index: int, want: str | None, gold: bool, messy: bool) -> list[dict]:
    """Rows of patient `index`, or none when the patient is not in the wanted split."""
    split = split_of(key, index)
    if want is not None and split != want:
        return []
    rng = reseeded_rng(key, index)
    patient = plan_patient(rng, key, index, split)
    rows: list[dict] = []
    states: dict[str, object] = {}
    for study in patient.studies:
        d = Dictation(rng, split, terse=rng.random() < 0.25)
        prior = states.get(study.family) if study.role == "follow_up" else None
        row, draft = _study_row(d, key, patient, study, prior, gold)
        states[study.family] = draft.state
        rows.append(row)
    if messy:
        rows = roughen(rng, rows, gold)
    return rows


def _study_row(d: Dictation, key: int, patient: Patient, study: Study, prior, gold: bool) -> tuple[dict, Draft]:
    draft = FAMILIES[study.family](d, patient, study, prior)
    style = choose_style(d, follow_up=study.role == "follow_up")
    exam = draft.exam or draft.modality
    comparison = _comparison(d, study, style, exam, patient)
    title = style.title.format(exam=exam) if style.title else ""
    doctor = _DOCTORS[int(d.random() * len(_DOCTORS))]  # d.pick, inlined; drawn even when the footer has no name
    footer = style.footer.format(doctor=doctor, date=_date(study.day, style)) if style.footer else ""
    rendered = render(d, draft, style, comparison, title, footer, prior=study.role == "follow_up")
    question, answer = choose_question(d, draft)
    hypothesis, label = choose_hypothesis(d, draft)
    row = {
        # the study number n; schema.to_batch prints report_id and accession for a whole block at once
        "report_id": patient.index * MAX_STUDIES + study.number,
        "accession": None,
        "patient_id": patient.patient_id,
        "study_date": study.day,
        "modality": draft.modality,
        "report_type": draft.family,
        "report_text": rendered.text,
        "question": question,
        "hypothesis": hypothesis,
        "split": patient.split,
    }
    if gold:
        row.update(gold_columns(draft, d, rendered, answer, label))
    return row, draft


def _comparison(d: Dictation, study: Study, style: Style, exam: str, patient: Patient) -> str:
    if study.role != "follow_up":
        pool = _NO_PRIOR.pools[d.pool]  # d.choose, inlined: every first report makes this draw
        return pool[int(d.random() * len(pool))]
    prior_day = next(s.day for s in patient.studies if s.family == study.family and s.role == "prior")
    return d.choose(_PRIOR).format(exam=exam, date=_date(prior_day, style))


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December")


_DATES: dict[tuple[int, str], str] = {}  # (day, format) -> text; a few thousand days, so bounded


def _date(day: int, style: Style) -> str:
    """The date as this style writes it (strftime is several times slower, and locale-dependent)."""
    fmt = style.date_format
    text = _DATES.get((day, fmt))
    if text is None:
        text = _DATES[day, fmt] = _format_date(day, fmt)
    return text


def _format_date(day: int, fmt: str) -> str:
    d = datetime.date.fromordinal(_EPOCH + day)
    if fmt == "%Y-%m-%d":
        return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"
    if fmt == "%m/%d/%Y":
        return f"{d.month:02d}/{d.day:02d}/{d.year:04d}"
    if fmt == "%d.%m.%Y":
        return f"{d.day:02d}.{d.month:02d}.{d.year:04d}"
    return f"{d.day:02d} {_MONTHS[d.month - 1]} {d.year:04d}"  # %d %B %Y


def gold_columns(draft: Draft, d: Dictation, rendered: Rendered, answer: str, label: str) -> dict:
    # No RADS in the report is itself the answer ("No applicable RADS"): system "none", category null.
    system, category = draft.rads or ("none", None)
    chexpert = draft.chexpert or {}
    row = {
        "gold__rads_assignment__system": system,
        "gold__rads_assignment__category": category,
        "gold__impression_generation__text": rendered.impression,
        "gold__temporal_comparison__changes": draft.changes,
        "gold__radiology_ner__entities": d.entities_in(rendered.sections) or None,
        "gold__n_staging__node_involvement": None if draft.n_stage is None else "negative" if draft.n_stage == "N0" else "positive",
        "gold__n_staging__stage": draft.n_stage,
        "gold__m_staging__stage": draft.m_stage,
        "gold__radiology_nli__label": label,
        "gold__radiology_qa__answer": answer,
    }
    for name, slug in _CHEXPERT_COLUMNS:
        row[name] = chexpert.get(slug)
    return row


_CHEXPERT_COLUMNS = tuple((f"gold__abnormality_detection__{slug}", slug) for slug in CHEXPERT)
