"""Settings are data (issue 14, item 3): read from the environment once, on the driver, every bad one reported
together; workers get engine settings and the test-only fault channel in their WorkerSpec, never from their
environment."""

from __future__ import annotations

from dataclasses import replace

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import write_reports

from radbatch.cli.main import cli
from radbatch.engines.spec import BatchSettings, WorkerSpec
from radbatch.errors import InputError
from radbatch.heads.models import ModelSpec, embedded_path
from radbatch.annotation.settings import PartFlush, Settings


def test_settings_come_from_the_environment_once_with_defaults():
    s = Settings.from_env({"RADBATCH_BATCHED": "n_parallel=8", "RADBATCH_PART_ROWS": "8",
                           "RADBATCH_TEST_CRASH_UNIT": "0:8;raise"})
    assert s.batch == BatchSettings(n_parallel=8) and s.flush == PartFlush(rows=8, seconds=30.0)
    assert s.test_faults == "0:8;raise"
    assert Settings.from_env({}) == Settings()   # production: no fault channel
    assert Settings().test_faults == ""


def test_every_bad_setting_is_reported_at_once():
    with pytest.raises(InputError) as err:
        Settings.from_env({"RADBATCH_BATCHED": "n_paralel=8", "RADBATCH_PART_ROWS": "eight",
                           "RADBATCH_PART_SECONDS": "0", "RADBATCH_WATCHDOG": "stoped_s=5"})
    assert str(err.value).splitlines() == [
        "bad setting(s) in the environment:",
        "  - Unknown batched engine setting(s) n_paralel (from RADBATCH_BATCHED). Known: n_parallel, n_prefix, n_batch, kv_cells, draft",
        "  - RADBATCH_WATCHDOG: expected name=seconds with name one of spin_cpu_s, stopped_s, load_cpu_s, poll_s; "
        "got 'stoped_s=5'",
        "  - RADBATCH_PART_ROWS must be a whole number, not 'eight'",
        "  - RADBATCH_PART_SECONDS must be above 0, not '0'",
    ]


def test_a_bad_setting_stops_annotate_before_any_work_with_exit_2(tmp_path):
    src = write_reports(tmp_path / "in.parquet", 8)
    out = tmp_path / "out.parquet"
    r = CliRunner().invoke(cli, ["annotate", str(src), "-o", str(out), "--tasks", "none", "-q"],
                           env={"RADBATCH_PART_ROWS": "-1"})
    assert r.exit_code == 2, r.output
    assert "RADBATCH_PART_ROWS must be above 0, not '-1'" in r.output
    assert not out.exists() and not (tmp_path / "out.parquet.radbatch").exists()


def test_part_flush_is_read_when_the_run_is_planned(tmp_path, monkeypatch):
    """In process (no import-time read): the same interpreter runs with 8-row parts, then with the default."""
    from radbatch.annotation.output import RunStore
    src = write_reports(tmp_path / "in.parquet", 24)
    real, seen = RunStore.write_part, []

    def spy(self, file_index, table, ids):
        seen.append(table.num_rows)
        return real(self, file_index, table, ids)
    monkeypatch.setattr(RunStore, "write_part", spy)
    for rows, parts in (("8", [8, 8, 8]), ("", [24])):
        seen.clear()
        out = tmp_path / f"out{rows}.parquet"
        r = CliRunner().invoke(cli, ["annotate", str(src), "-o", str(out), "--tasks", "none", "-q"],
                               env={"RADBATCH_PART_ROWS": rows})
        assert r.exit_code == 0, r.output
        assert seen == parts and pq.read_metadata(out).num_rows == 24


def test_a_worker_reads_faults_from_its_spec_not_its_environment(monkeypatch):
    """The fault hook set in the environment after planning reaches no worker; set in the spec, it does."""
    from radbatch.executors.pool import Pool
    spec = WorkerSpec({"smollm2": ModelSpec("smollm2", str(embedded_path()), None, "chatml", 512, "radbatch", "")},
                      {}, 1)
    monkeypatch.setenv("RADBATCH_TEST_CRASH_UNIT", "u0;raise")
    for s, failed in ((spec, set()), (replace(spec, test_faults="u0;raise"), {"u0"})):
        pool = Pool(s, 1, {"smollm2"})
        pool.start()
        try:
            outcomes = {o.unit: o for o in pool.run((f"u{i}", f"u{i}", []) for i in range(2))}
        finally:
            pool.close()
        assert {u for u, o in outcomes.items() if o.completions is None} == failed
