"""Build llama-server, llama-bench and llama-batched-bench from the llama.cpp sources vendored in the
llama-cpp-python sdist radbatch pins, so the benchmark compares like with like (same ggml, same flags).

    .venv/bin/python bench/llama_tools.py            # build if missing, print the binaries' paths

Built once into ~/.cache/radbatch/llama-tools-<version>/ (outside the repository); on 2 cores this takes
about 10 minutes. The sdist comes from /tmp/build/sdist if present, else `pip download` (PyPI only).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

VERSION = "0.3.36"
CACHE = Path(os.environ.get("RADBATCH_CACHE", Path.home() / ".cache" / "radbatch"))
ROOT = CACHE / f"llama-tools-{VERSION}"
CMAKE_FLAGS = ["-DGGML_NATIVE=OFF", "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON",
               "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
               "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DCMAKE_BUILD_TYPE=Release"]
TARGETS = ("llama-server", "llama-bench", "llama-batched-bench")


def binary(name: str) -> Path:
    return ROOT / "build" / "bin" / name


def _sdist() -> Path:
    local = Path(f"/tmp/build/sdist/llama_cpp_python-{VERSION}.tar.gz")
    if local.exists():
        return local
    dest = ROOT / "sdist"
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(dest),
                    f"llama-cpp-python=={VERSION}"], check=True)
    return next(dest.glob("llama_cpp_python-*.tar.gz"))


def ensure_built(log=print) -> dict[str, Path]:
    """Paths of the three tools, building them first if any is missing."""
    if all(binary(t).exists() for t in TARGETS):
        return {t: binary(t) for t in TARGETS}
    if shutil.which("cmake") is None:
        raise SystemExit("cmake is needed to build llama-server (apt-get install cmake g++)")
    t0 = time.monotonic()
    src = ROOT / "src"
    if not (src / "CMakeLists.txt").exists():
        log(f"unpacking {_sdist()}")
        with tarfile.open(_sdist()) as tar:
            members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name]
            tar.extractall(ROOT / "unpacked", members=members, filter="data")
        vendored = next((ROOT / "unpacked").glob("*/vendor/llama.cpp"))
        vendored.rename(src)
        shutil.rmtree(ROOT / "unpacked")
    log(f"building {', '.join(TARGETS)} from {src} (once; 80 minutes on a busy 2-core machine)")
    build = ROOT / "build"
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run(["cmake", "-S", str(src), "-B", str(build), *gen, *CMAKE_FLAGS], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", str(build), "-j", str(os.cpu_count() or 2), "--target", *TARGETS],
                   check=True, stdout=subprocess.DEVNULL)
    log(f"built in {time.monotonic() - t0:.0f} s")
    return {t: binary(t) for t in TARGETS}


if __name__ == "__main__":
    for name, path in ensure_built().items():
        print(f"{name}: {path}")
