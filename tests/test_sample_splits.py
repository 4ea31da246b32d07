"""Splits of `radbatch sample`: by patient, ~80/10/10, and the test split is worded unlike train."""

from __future__ import annotations

import collections
import functools
import re

from radbatch.sample.archive import sample_table


@functools.cache
def rows(split: str, n: int) -> tuple[dict, ...]:
    return tuple(sample_table(n, seed=21, split=split, gold=False).to_pylist())


def test_each_patient_is_in_one_split_and_splits_are_about_80_10_10():
    all_rows = rows("all", 4000)
    splits_of = collections.defaultdict(set)
    for r in all_rows:
        splits_of[r["patient_id"]].add(r["split"])
    assert all(len(s) == 1 for s in splits_of.values())
    share = collections.Counter(next(iter(s)) for s in splits_of.values())
    total = sum(share.values())
    assert 0.75 < share["train"] / total < 0.85
    assert 0.07 < share["dev"] / total < 0.13
    assert 0.07 < share["test"] / total < 0.13


def test_split_filter_writes_the_same_reports_for_that_splits_patients():
    test_rows = rows("test", 300)
    assert {r["split"] for r in test_rows} == {"test"}
    by_id = {r["report_id"]: r for r in rows("all", 4000)}
    complete = [r for r in test_rows[:-10] if r["report_id"] in by_id]  # the last patient may be cut short
    assert len(complete) > 200
    assert all(by_id[r["report_id"]] == r for r in complete)


def normalise(sentence: str) -> str:
    """A phrasing, not a fact: numbers, sides and dates blanked out."""
    s = re.sub(r"\d+(\.\d+)?", "#", sentence.lower())
    s = re.sub(r"\b(right|left|bilateral)\b", "<side>", s)
    return re.sub(r"\s+", " ", s).strip(" -\u2022")


def phrasings(texts) -> set[str]:
    out = set()
    for t in texts:
        for s in re.split(r"(?<!\d)\.(?!\d)|\n", t):
            if s.strip():
                out.add(normalise(s))
    return out


def unseen_share(split: str) -> float:
    train = phrasings(r["report_text"] for r in rows("train", 6000))
    other = phrasings(r["report_text"] for r in rows(split, 600))
    return len(other - train) / len(other)


def test_test_split_uses_phrasings_train_never_uses():
    test_share, dev_share = unseen_share("test"), unseen_share("dev")
    assert test_share > 0.25
    assert test_share > 2 * dev_share


def test_test_only_layouts_and_questions_never_reach_train():
    train_text = "\n".join(r["report_text"] for r in rows("train", 6000)).lower()
    test_text = "\n".join(r["report_text"] for r in rows("test", 600)).lower()
    for marker in ("conclusion:", "clinical information:", "\u2022 ", "report verified by", "procedure:"):
        assert marker not in train_text, marker
        assert marker in test_text, marker
    for field in ("question", "hypothesis"):
        train = {normalise(r[field]) for r in rows("train", 6000)}
        test = {normalise(r[field]) for r in rows("test", 600)}
        assert len(test - train) / len(test) > 0.2, field
