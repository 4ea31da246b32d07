"""What a radbatch LoRA adapter GGUF says about itself, and the check that it runs on the base it was trained on.

`radbatch finetune` writes radbatch.* keys into the adapter (base sha256, recipe, seed, steps, ...). A LoRA
applied to another base loads without complaint when the shapes match (every SmolLM2-135M quantization, say),
and quietly produces garbage; annotate refuses it up front instead. Adapters made elsewhere have no
radbatch.base_sha256 and are not checked. Light: the `gguf` package is imported only when an adapter is read.
"""

from __future__ import annotations

from pathlib import Path

from radbatch.errors import EngineError

BASE_SHA_KEY = "radbatch.base_sha256"
BASE_NAME_KEY = "radbatch.base_name"


def adapter_metadata(path: str | Path) -> dict:
    """The adapter's radbatch.* and adapter.* keys (strings and numbers)."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise EngineError("reading a LoRA adapter's metadata needs the `gguf` package: pip install gguf") from None
    try:
        reader = GGUFReader(str(path))
    except (ValueError, OSError) as exc:
        raise EngineError(f"adapter file {path} cannot be read as GGUF: {exc}") from None
    out = {}
    for field in reader.fields.values():
        if field.name.startswith(("radbatch.", "adapter.", "general.type")):
            out[field.name] = field.contents()
    return out


def check_adapter_base(adapter: str, model_name: str, model_path: str, model_sha256: str) -> None:
    meta = adapter_metadata(adapter)
    want = meta.get(BASE_SHA_KEY)
    if meta.get("general.type") not in (None, "adapter"):
        raise EngineError(f"adapter of model {model_name!r}: {adapter} is a GGUF model, not a LoRA adapter "
                          "(general.type is not 'adapter'). Use it as a model, or give the adapter file.")
    if want and want != model_sha256:
        trained_on = meta.get(BASE_NAME_KEY) or "another model"
        raise EngineError(
            f"adapter {adapter} was trained on {trained_on} (sha256 {want[:16]}...), but model {model_name!r} is "
            f"{model_path} (sha256 {model_sha256[:16]}...). A LoRA adapter only works on the exact base it was "
            "trained on: route these heads to that model (--model, models.toml), or retrain the adapter with "
            f"`radbatch finetune --base {model_path}`.")
