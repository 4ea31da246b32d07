"""Facts read from a GGUF header without loading the model (gguf-py memory-maps the file; no tensor is read)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

F16_BYTES = 2  # llama.cpp's default KV cache type


def _field(reader, name: str):
    field = reader.fields.get(name)
    return None if field is None else field.contents()


@lru_cache(maxsize=16)  # the ensemble's members often share one base file
def kv_cell_bytes(path: str | Path) -> int | None:
    """Bytes of one KV cache cell (one token position: K and V of every layer, f16); None when unknown."""
    try:
        from gguf import GGUFReader
        reader = GGUFReader(str(path))
    except Exception:  # noqa: BLE001 - any unreadable header means "unknown" here; check_gguf and the
        return None    # worker's load report a corrupt or truncated model with a clear message
    arch = _field(reader, "general.architecture")
    layers = _field(reader, f"{arch}.block_count")
    heads = _field(reader, f"{arch}.attention.head_count")
    kv_heads = _field(reader, f"{arch}.attention.head_count_kv") or heads
    embd = _field(reader, f"{arch}.embedding_length")
    if not all(isinstance(v, int) and v > 0 for v in (layers, heads, kv_heads, embd)):
        return None  # per-layer head counts (lists) or a missing key: fall back to the caller's allowance
    key_len = _field(reader, f"{arch}.attention.key_length") or embd // heads
    value_len = _field(reader, f"{arch}.attention.value_length") or embd // heads
    return layers * kv_heads * (key_len + value_len) * F16_BYTES
