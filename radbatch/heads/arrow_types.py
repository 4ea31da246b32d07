"""Arrow types written as strings in recipes (`string`, `list<struct<text: string, label: string>>`)."""

from __future__ import annotations

import pyarrow as pa

_SCALARS = {
    "string": pa.string(),
    "int64": pa.int64(),
    "int8": pa.int8(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
}


def parse_type(text: str) -> pa.DataType:
    """Parse a small type language; raises ValueError naming the bad part."""
    dtype, rest = _parse(text.strip())
    if rest.strip():
        raise ValueError(f"unexpected {rest.strip()!r} after type in {text!r}")
    return dtype


def _parse(text: str) -> tuple[pa.DataType, str]:
    text = text.lstrip()
    if text.startswith("list<"):
        inner, rest = _parse(text[5:])
        return pa.list_(inner), _expect(rest, ">")
    if text.startswith("struct<"):
        rest = text[7:]
        fields = []
        while True:
            name, sep, rest = rest.partition(":")
            if not sep or not name.strip().isidentifier():
                raise ValueError(f"bad struct field near {name.strip()!r}")
            dtype, rest = _parse(rest)
            fields.append(pa.field(name.strip(), dtype))
            rest = rest.lstrip()
            if rest.startswith(","):
                rest = rest[1:]
                continue
            return pa.struct(fields), _expect(rest, ">")
    for name, dtype in _SCALARS.items():
        if text.startswith(name):
            return dtype, text[len(name):]
    raise ValueError(f"unknown type {text.split('<')[0].split(',')[0].split('>')[0]!r}; known: "
                     f"{', '.join(_SCALARS)}, list<...>, struct<name: type, ...>")


def _expect(text: str, token: str) -> str:
    text = text.lstrip()
    if not text.startswith(token):
        raise ValueError(f"expected {token!r} at {text[:20]!r}")
    return text[len(token):]
