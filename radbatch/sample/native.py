"""The report generator compiled with mypyc: the same modules and the same bytes, less CPU per report.

    python -c 'from radbatch.sample import native; print(native.build())'   # `make setup` runs this;
                                                    # a no-op when the build is current
    python -c 'from radbatch.sample import native; print(native.status())'  # compiled, stale, absent, disabled

`build` compiles the generator's pure-Python modules (GENERATOR) into _native/ beside this file and
writes the fingerprint of the sources it compiled. On import, radbatch.sample and its families
package call `activate`: only when the fingerprint matches the sources as they are now do the compiled
modules come first on the packages' search paths. A build that is absent, stale (a source edited since)
or disabled (RADBATCH_PURE_PYTHON=1) leaves the pure-Python generator in charge, so an edit can never
run old compiled code. Output is byte-identical either way (tests/test_sample_native.py); the speed-up
is in docs/sample-data.md. mypyc is mypy's compiler (used to build mypy and black); it is a build-time
tool only, in the `native` extra.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]  # the folder that holds the radbatch package
NATIVE = HERE / "_native"
FINGERPRINT = "FINGERPRINT"
GROUP = "radbatch_sample_native"  # mypyc's shared library: GROUP__mypyc, a top-level module
# Pure generation code. archive, schema and command stay Python: they drive pyarrow and processes.
GENERATOR = (
    "changes", "cohort", "dictation", "draft", "layout", "messy", "nli", "qa", "reports", "styles",
    *(f"families/{p.stem}" for p in sorted((HERE / "families").glob("*.py")) if p.stem != "__init__"),
)


def sources() -> list[Path]:
    return [HERE / f"{name}.py" for name in GENERATOR]


def fingerprint() -> str:
    """The compiled sources and the interpreter they were compiled for."""
    digest = hashlib.sha256(f"{sys.implementation.cache_tag} {sysconfig.get_platform()}".encode())
    for path in sources():
        digest.update(path.relative_to(HERE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def status(native: Path = NATIVE) -> str:
    if os.environ.get("RADBATCH_PURE_PYTHON") == "1":
        return "disabled"
    try:
        built = (native / FINGERPRINT).read_text().strip()
    except OSError:
        return "absent"
    return "compiled" if built == fingerprint() else "stale"


@functools.cache
def _compiled() -> bool:
    """Decided once per process: radbatch.sample and its families package both ask, and it hashes the sources."""
    return status() == "compiled"


def activate(package_path: list[str], subfolder: str = "") -> bool:
    """Put the compiled modules ahead of the sources on a package's __path__, if the build is current."""
    if not _compiled():
        return False
    _load_shared()
    package_path.insert(0, str(NATIVE / "radbatch" / "sample" / subfolder))
    return True


def _load_shared() -> None:
    """Import GROUP__mypyc, the code the compiled modules share, from its file. Putting NATIVE on sys.path
    instead would expose NATIVE/radbatch to child processes (spawn copies sys.path), where it can shadow
    the real package as a namespace package."""
    import importlib.util

    name = f"{GROUP}__mypyc"
    if name in sys.modules:
        return
    (shared,) = NATIVE.glob(f"{name}.*")
    spec = importlib.util.spec_from_file_location(name, shared)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


def build(native: Path = NATIVE) -> str:
    """Compile GENERATOR into `native` unless it already holds a build of these sources."""
    import shutil
    import subprocess
    import tempfile

    if status(native) == "compiled":
        return f"compiled generator is current ({native})"
    compiled_from = fingerprint()
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "lib"
        script = (
            "import sys\nfrom setuptools import setup\nfrom mypyc.build import mypycify\n"
            f"setup(name={GROUP!r}, ext_modules=mypycify(['--ignore-missing-imports', *sys.argv[1:]], group_name={GROUP!r}),\n"
            f"      script_args=['build_ext', '--build-lib', {str(staged)!r}, '--build-temp', {str(Path(tmp) / 'tmp')!r}])\n"
        )
        files = [str(p.relative_to(ROOT)) for p in sources()]
        done = subprocess.run([sys.executable, "-c", script, *files], cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"mypyc build failed (exit {done.returncode}); the pure-Python generator stays in use.\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        (staged / FINGERPRINT).write_text(compiled_from + "\n")
        shutil.rmtree(native, ignore_errors=True)
        shutil.copytree(staged, native)
    return f"compiled {len(GENERATOR)} generator modules into {native}"

