"""radbatch: annotate radiology report archives with small fine-tuned LLMs on CPUs.

`radbatch.annotate(...)` and `radbatch.eval(...)` are the Python API (radbatch/api.py); they load lazily, so
`import radbatch` stays light (no polars, llama_cpp or torch until a function is called).
"""

__version__ = "0.1.0"
__all__ = ["annotate", "eval", "__version__"]


def __getattr__(name: str):
    if name in ("annotate", "eval"):
        # importlib, not `from . import api`: mypyc's build of the sample generator type-checks what the package
        # imports, and must not follow this into the whole annotate pipeline (make setup's compile step).
        import importlib
        return getattr(importlib.import_module("radbatch.api"), name)
    raise AttributeError(f"module 'radbatch' has no attribute {name!r}")
