"""The mypyc-compiled generator (radbatch/sample/native.py): same bytes as the pure-Python one, and only
ever used when it was compiled from the sources as they are now."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from radbatch.sample import native

WRITE = """
import sys
import radbatch.sample.reports as reports
from pathlib import Path
from radbatch.sample.archive import SampleOptions, write_archive
write_archive(SampleOptions(rows=700, output=Path(sys.argv[1]), seed=5, messy=True, workers=1))
print(Path(reports.__file__).suffix)
"""


def _write(path, pure: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k != "RADBATCH_PURE_PYTHON"}
    if pure:
        env["RADBATCH_PURE_PYTHON"] = "1"
    done = subprocess.run([sys.executable, "-c", WRITE, str(path)], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_compiled_and_pure_generators_write_the_same_bytes(tmp_path, suffix):
    if native.status() == "absent" and not os.environ.get("RADBATCH_REQUIRE_NATIVE"):
        pytest.skip("compiled generator not built; `make setup` builds it (`make test` requires it)")
    assert native.status() == "compiled", "the build in radbatch/sample/_native is stale: rerun `make setup`"
    compiled, pure = tmp_path / f"compiled.{suffix}", tmp_path / f"pure.{suffix}"
    assert _write(compiled, pure=False) == ".so"
    assert _write(pure, pure=True) == ".py"
    assert compiled.read_bytes() == pure.read_bytes()


def test_only_a_build_of_the_current_sources_is_used(tmp_path, monkeypatch):
    monkeypatch.delenv("RADBATCH_PURE_PYTHON", raising=False)
    assert native.status(tmp_path / "never-built") == "absent"
    (tmp_path / native.FINGERPRINT).write_text(native.fingerprint() + "\n")
    assert native.status(tmp_path) == "compiled"
    (tmp_path / native.FINGERPRINT).write_text("0" * 64 + "\n")  # built from sources edited since
    assert native.status(tmp_path) == "stale"
    monkeypatch.setenv("RADBATCH_PURE_PYTHON", "1")
    assert native.status(tmp_path) == "disabled"


def test_fingerprint_follows_every_compiled_source(tmp_path, monkeypatch):
    copy = tmp_path / "sample"
    (copy / "families").mkdir(parents=True)
    for path in native.sources():
        target = copy / path.relative_to(native.HERE)
        target.write_bytes(path.read_bytes())
    monkeypatch.setattr(native, "HERE", copy)
    before = native.fingerprint()
    assert before == native.fingerprint()
    edited = copy / "families" / "thyroid.py"
    edited.write_text(edited.read_text() + "\n# edited\n")
    assert native.fingerprint() != before


SPAWN = """
import multiprocessing, sys
def child():
    import radbatch.cli.sample, radbatch.sample.reports
    print(radbatch.sample.reports.__file__.endswith(".so"))
if __name__ == "__main__":
    import radbatch.cli.main  # registers `radbatch sample`, so the compiled generator is active here
    assert not [p for p in sys.path if "_native" in p], sys.path
    process = multiprocessing.get_context("spawn").Process(target=child)
    process.start()
    process.join()
    sys.exit(process.exitcode)
"""


def test_spawned_workers_outside_the_checkout_still_find_the_package(tmp_path):
    """annotate's workers are spawned; from another folder they used to import radbatch as a namespace
    package out of _native/ (it was on sys.path) and died."""
    script = tmp_path / "spawn.py"
    script.write_text(SPAWN)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(native.status() == "compiled")
