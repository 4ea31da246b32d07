"""Thoracic lymph-node stations and the N stage they imply for a lung primary (IASLC map, TNM 8).

N1 ipsilateral hilar / interlobar; N2 ipsilateral mediastinal or subcarinal; N3 contralateral hilar or
mediastinal, or supraclavicular on either side. A node counts when its short axis is >= 1.0 cm.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from radbatch.sample.dictation import Dictation

INVOLVED_CM = 1.0


@dataclass(frozen=True)
class Station:
    name: str  # "right hilar", "subcarinal"
    code: str  # IASLC station: "10R", "7"
    level: int  # N stage it implies for this primary


@functools.cache
def stations(side: str) -> dict[int, tuple[Station, ...]]:
    """Stations by N level for a primary in the `side` lung (built once per side: do not mutate)."""
    other = "left" if side == "right" else "right"
    s, o = side[0].upper(), other[0].upper()
    n2 = [Station("subcarinal", "7", 2), Station(f"{side} lower paratracheal", f"4{s}", 2)]
    n2.append(Station(f"{side} upper paratracheal", f"2{s}", 2) if side == "right" else Station("aortopulmonary window", "5", 2))
    return {
        1: (Station(f"{side} hilar", f"10{s}", 1), Station(f"{side} interlobar", f"11{s}", 1)),
        2: tuple(n2),
        3: (
            Station(f"{other} hilar", f"10{o}", 3),
            Station(f"{other} lower paratracheal", f"4{o}", 3),
            Station(f"{side} supraclavicular", f"1{s}", 3),
            Station(f"{other} supraclavicular", f"1{o}", 3),
        ),
    }


@dataclass
class Node:
    station: Station
    size: float  # short axis, cm

    @property
    def involved(self) -> bool:
        return self.size >= INVOLVED_CM


def nodes_for_stage(d: Dictation, side: str, stage: int) -> list[Node]:
    """Enlarged nodes whose highest station level is exactly `stage` (none for N0)."""
    if stage == 0:
        return []
    by_level = stations(side)
    chosen = [d.pick(by_level[stage])]
    for level in range(1, stage + 1):
        extra = d.pick(by_level[level])
        if d.random() < 0.35 and extra not in chosen:
            chosen.append(extra)
    # a list, not a set: set order follows string hashes, which differ between processes
    return [Node(st, d.size(1.1, 3.2)) for st in sorted(chosen, key=lambda st: (st.level, st.code))]


def n_stage(nodes: list[Node]) -> str:
    return f"N{max((n.station.level for n in nodes if n.involved), default=0)}"


def station_text(d: Dictation, st: Station) -> str:
    """How the report names the station: by name, name and code, or (test split) by code alone."""
    form = d.below(3 if d.split == "test" else 2)
    if form == 0:
        return st.name
    if form == 1:
        return f"{st.name} ({st.code})"
    return f"station {st.code}"
