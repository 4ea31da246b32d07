"""The Makefile's first run on a fresh machine, with the slow parts stubbed.

The real proof is .ci/run (`make demo` then `make test` with empty wheel and sdist caches and a new venv); this
test pins the make logic itself in seconds: on the first run the wheel that one recipe builds must be the
argument the next recipe installs. With `$(wildcard)` the second recipe saw make's directory cache from
before the build and ran `pip install -q` with no argument.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
WHEEL = "llama_cpp_python-0.3.36-cp311-cp311-linux_x86_64.whl"

# Stands in for python3: `-m pip wheel ... -w DIR` writes a wheel file, `-m venv DIR` makes a venv whose
# pip and python only record their arguments. Every call is logged.
FAKE_PYTHON = textwrap.dedent("""\
    #!/usr/bin/env bash
    echo "python $*" >> "$MAKE_LOG"
    if [ "$1 $2" = "-m venv" ]; then
      mkdir -p "$3/bin"
      for tool in pip python; do
        printf '#!/usr/bin/env bash\\necho "%s $*" >> "$MAKE_LOG"\\n' "$tool" > "$3/bin/$tool"
        chmod +x "$3/bin/$tool"
      done
    elif [ "$1 $2 $3" = "-m pip wheel" ]; then
      while [ $# -gt 0 ]; do [ "$1" = "-w" ] && touch "$2/WHEEL_NAME"; shift; done
    fi
    """).replace("WHEEL_NAME", WHEEL)


@pytest.fixture
def fake_checkout(tmp_path: Path) -> Path:
    if not shutil.which("make"):
        pytest.fail("GNU make is required to set radbatch up; install it (apt-get install make)")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copy(REPO / "Makefile", checkout / "Makefile")
    (checkout / "pyproject.toml").write_text("")
    python = tmp_path / "python3"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return checkout


def _make(checkout: Path, tmp_path: Path, target: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    log = tmp_path / "calls.log"
    log.unlink(missing_ok=True)
    env = {**os.environ, "MAKE_LOG": str(log)}
    proc = subprocess.run(["make", "-C", str(checkout), target, f"PYTHON={tmp_path / 'python3'}",
                           f"WHEELS={tmp_path / 'wheels'}", f"RADBATCH_CACHE={tmp_path / 'cache'}"],
                          capture_output=True, text=True, env=env, timeout=60)
    return proc, (log.read_text().splitlines() if log.exists() else [])


def test_first_run_with_an_empty_wheel_cache_installs_the_wheel_it_just_built(fake_checkout, tmp_path):
    proc, calls = _make(fake_checkout, tmp_path, ".venv/.radbatch-installed")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    builds = [c for c in calls if c.startswith("python -m pip wheel")]
    assert len(builds) == 1 and "llama-cpp-python==0.3.36" in builds[0]
    installs = [c for c in calls if c.startswith("pip install -q ") and c.endswith(".whl")]
    assert installs == [f"pip install -q {tmp_path / 'wheels' / WHEEL}"]
    assert "pip install -q" not in calls          # the first-run bug: an install with no argument
    assert (fake_checkout / ".venv" / ".radbatch-installed").exists()


def test_second_run_builds_nothing_and_a_new_venv_reuses_the_cached_wheel(fake_checkout, tmp_path):
    _make(fake_checkout, tmp_path, ".venv/.radbatch-installed")
    proc, calls = _make(fake_checkout, tmp_path, ".venv/.radbatch-installed")
    assert proc.returncode == 0 and calls == []   # up to date: nothing runs
    shutil.rmtree(fake_checkout / ".venv")
    proc, calls = _make(fake_checkout, tmp_path, ".venv/.radbatch-installed")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not [c for c in calls if "pip wheel" in c]
    assert f"pip install -q {tmp_path / 'wheels' / WHEEL}" in calls
