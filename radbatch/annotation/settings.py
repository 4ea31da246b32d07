"""Run settings that users set through the environment, read once on the driver at planning.

Workers never read the environment: the engine settings and the test-only fault channel travel in the
WorkerSpec shipped to every pool worker and Ray actor (engine.WorkerSpec.batch, .test_faults); the part-flush
and watchdog settings stay on the driver. Every bad value is reported together, before any work starts.

    RADBATCH_BATCHED          batched engine knobs, `n_parallel=16,n_batch=512` (engine.BatchSettings)
    RADBATCH_PART_ROWS        flush a part every N rows (default 256)
    RADBATCH_PART_SECONDS     ... or every N seconds (default 30)
    RADBATCH_WATCHDOG         hang limits of the local pool, `stopped_s=120,spin_cpu_s=600` (pool.Watchdog)
    RADBATCH_TEST_CRASH_UNIT  test-only fault injection (pool.crash_if_asked); unset in production
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

from radbatch.engines.spec import BATCHED_ENV, BatchSettings
from radbatch.errors import InputError
from radbatch.executors.pool import WATCHDOG_ENV, Watchdog

PART_ROWS_ENV = "RADBATCH_PART_ROWS"
PART_SECONDS_ENV = "RADBATCH_PART_SECONDS"
TEST_FAULTS_ENV = "RADBATCH_TEST_CRASH_UNIT"


@dataclass(frozen=True)
class PartFlush:
    """A part is flushed every `rows` rows or `seconds`, bounding the work a crash can lose."""

    rows: int = 256
    seconds: float = 30.0


@dataclass(frozen=True)
class Settings:
    batch: BatchSettings = field(default_factory=BatchSettings)
    flush: PartFlush = field(default_factory=PartFlush)
    watchdog: Watchdog = field(default_factory=Watchdog)
    test_faults: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        problems: list[str] = []
        batch, watchdog = BatchSettings(), Watchdog()
        try:
            batch = BatchSettings.from_text(env.get(BATCHED_ENV, ""))
        except ValueError as exc:
            problems.append(str(exc))
        try:
            watchdog = Watchdog.from_text(env.get(WATCHDOG_ENV, ""))
        except ValueError as exc:
            problems.append(str(exc))
        rows = _number(env, PART_ROWS_ENV, PartFlush.rows, int, problems)
        seconds = _number(env, PART_SECONDS_ENV, PartFlush.seconds, float, problems)
        if problems:
            raise InputError("bad setting(s) in the environment:\n" + "\n".join(f"  - {p}" for p in problems))
        return cls(batch, PartFlush(rows, seconds), watchdog, env.get(TEST_FAULTS_ENV, ""))


def _number(env: Mapping[str, str], name: str, default, kind, problems: list[str]):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        problems.append(f"{name} must be {'a whole' if kind is int else 'a'} number, not {raw!r}")
        return default
    if value <= 0:
        problems.append(f"{name} must be above 0, not {raw!r}")
        return default
    return value
