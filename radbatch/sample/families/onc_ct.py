"""Oncologic CT chest/abdomen/pelvis for a lung primary: nodes give the N stage, distant lesions the M.

Follow-up (restaging) studies change the primary, nodes and metastases from the prior state; their
N and M stages are recomputed from what is present now.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from radbatch.sample.changes import change_sentence, cue_only
from radbatch.sample.dictation import Dictation, Options, Variants
from radbatch.sample.draft import Claim, Draft
from radbatch.sample.families import onc_sites as sites
from radbatch.sample.families.chest_terms import LOBES
from radbatch.sample.families.onc_nodes import Node, n_stage, nodes_for_stage, station_text
from radbatch.sample.qa import ask


@dataclass
class OncState:
    side: str
    lobe: str
    size: float
    nodes: list[Node]
    mets: list[sites.Met] = field(default_factory=list)


_PRIMARY = Variants(
    "{size} cm spiculated {obs} in the {loc}",
    "there is a {size} cm {obs} in the {loc}, consistent with the known primary",
    "{loc} {obs} measuring {size} cm",
    train=("irregular {loc} {obs}, {size} cm",),
    test=("the known primary {obs} in the {loc} measures {size} cm",),
)
_NODE = Variants(
    "{obs} {station} lymph node measuring {size} cm in short axis",
    "{station} lymph node is {obs}, measuring {size} cm in short axis",
    train=("pathologically {obs} {station} lymph node ({size} cm short axis)",),
    test=("{station} lymph node, {size} cm in short axis, {obs} by size criteria",),
)
_N0 = Variants(
    "no {obs}",
    "no mediastinal, hilar, or supraclavicular {obs}",
    "no thoracic, abdominal, or pelvic {obs}",
    train=("no {obs} by CT size criteria",),
    test=("no evidence of {obs}",),
)
_SUBCENTIMETER = Variants(
    "subcentimeter {station} lymph nodes, not {obs} by size criteria",
    "small {station} lymph nodes, not {obs}",
    test=("{station} lymph nodes are not {obs}",),
)
_M0 = Variants(
    "no evidence of distant {obs}",
    "no {obs} in the abdomen or pelvis",
    train=("no CT evidence of {obs}",),
    test=("no findings of {obs}",),
)
_STAGE = Variants(
    "findings consistent with {n} {m} disease",
    "nodal stage {n}, {m}",
    train=("imaging stage {n} {m}",),
    test=("TNM by imaging: {n}, {m}",),
)
_INDICATION = Options(
    "staging of newly diagnosed {side} lung cancer",
    "{side} lung adenocarcinoma, staging",
    train=("NSCLC, initial staging",),
    test=("biopsy-proven {side} lung carcinoma, staging",),
)
_RESTAGING = Options("lung cancer, restaging after chemotherapy", "NSCLC on treatment, restaging", test=("restaging of known lung carcinoma",))
_TECHNIQUE = Options(
    "CT of the chest, abdomen and pelvis with IV contrast",
    "contrast-enhanced CT of the chest, abdomen and pelvis in the portal venous phase",
    train=("CT CAP with contrast",),
    test=("helical CT from the thoracic inlet to the pubic symphysis after IV contrast",),
)


def draft(d: Dictation, patient, study, prior: OncState | None) -> Draft:
    out = Draft(family="onc_ct", modality="CT CHEST ABDOMEN PELVIS")
    out.exam = d.pick(("CT CHEST ABDOMEN PELVIS WITH CONTRAST", "CT CAP W CONTRAST"))
    out.technique = d.choose(_TECHNIQUE)
    if prior is None:
        state = _fresh_state(d)
        out.indication = d.choose(_INDICATION).format(side=state.side)
        _write_fresh(d, out, state)
    else:
        out.indication = d.choose(_RESTAGING)
        state = _write_follow_up(d, out, prior)
    out.n_stage, out.m_stage = n_stage(state.nodes), "M1" if state.mets else "M0"
    _write_common(d, out, state)
    out.state = state
    return out


def _fresh_state(d: Dictation) -> OncState:
    side = d.pick(("right", "left"))
    r = d.rng.random()
    stage = 0 if r < 0.4 else 1 if r < 0.6 else 2 if r < 0.85 else 3
    state = OncState(side, d.pick(LOBES[side]), d.size(1.5, 6.5), nodes_for_stage(d, side, stage))
    if d.random() < 0.35:
        for site in d.rng.sample(sites.SITES, d.randint(1, 2)):
            state.mets.append(sites.Met(site, d.size(0.8, 4.0)))
    return state


def _write_fresh(d: Dictation, out: Draft, s: OncState) -> None:
    loc = d.anat(s.lobe)
    out.findings.append(("Chest", d.say(_PRIMARY, size=str(s.size), loc=loc, obs=d.present("mass"))))
    for i, node in enumerate(s.nodes):
        out.findings.append(("Lymph nodes", _node_text(d, out, node, claim=i == len(s.nodes) - 1)))
    for met in s.mets:
        out.findings.append((sites.GROUP[met.site], sites.met_text(d, met, s.side)))
    out.qa.append(ask("size", f"{s.size} cm", thing="mass"))
    out.qa.append(ask("location", s.lobe, thing="mass"))


def _node_text(d: Dictation, out: Draft, node: Node, claim: bool) -> str:
    station = station_text(d, node.station)
    out.qa.append(ask("nodes", station))
    if claim:  # claims quote the station as written ("station 4R" in some test reports)
        out.claims.append(Claim(f"an enlarged {station} lymph node", f"enlarged {station} lymph node", True))
    return d.say(_NODE, station=d.anat(station), size=str(node.size), obs=d.present("enlarged"))


def _write_common(d: Dictation, out: Draft, s: OncState) -> None:
    """Negative statements, incidental findings, impression and claims for any onc CT."""
    d.section = "findings"
    involved = [n for n in s.nodes if n.involved]
    if not involved:
        out.findings.append(("Lymph nodes", d.say(_N0, obs=d.absent("lymphadenopathy"))))
        if d.random() < 0.4:
            station = d.anat(d.pick(("mediastinal", "hilar", "paratracheal")))
            out.findings.append(("Lymph nodes", d.say(_SUBCENTIMETER, station=station, obs=d.absent("enlarged"))))
    if not s.mets:
        out.findings.append(("Abdomen and pelvis", d.say(_M0, obs=d.absent("metastatic disease"))))
    for group, text in sites.incidental(d, s.mets):
        out.findings.append((group, text))
    _impression(d, out, s, involved)
    out.claims.append(Claim(f"a mass in the {s.lobe}", f"mass in the {s.lobe}", True))
    if not involved:
        out.claims.append(Claim("lymphadenopathy", "lymphadenopathy", False))
    if s.mets:
        out.claims.append(sites.claim(s.mets[0]))
    else:
        out.claims.append(Claim("metastatic disease", "metastatic disease", False))
    out.neutrals = ("a brain lesion", "an EGFR-mutated tumor", "a knee joint effusion")


def _impression(d: Dictation, out: Draft, s: OncState, involved: list[Node]) -> None:
    d.section = "impression"
    if out.changes is None:
        out.impression.append(f"{s.size} cm {d.anat(s.lobe)} {d.present('mass')}, consistent with the known primary malignancy")
        if involved:
            names = " and ".join(d.anat(n.station.name) for n in involved[-2:])
            out.impression.append(f"{names} {d.present('lymphadenopathy')}")
        else:
            out.impression.append(f"no thoracic {d.absent('lymphadenopathy')}")
        if s.mets:
            out.impression.append(sites.summary(d, s.mets))
        else:
            out.impression.append(f"no evidence of distant {d.absent('metastatic disease')}")
    if d.random() < 0.4:
        out.impression.append(d.say(_STAGE, n=n_stage(s.nodes), m="M1" if s.mets else "M0"))


def _write_follow_up(d: Dictation, out: Draft, prior: OncState) -> OncState:
    """Restaging: every prior lesion changes or not, sometimes a new one appears."""
    out.changes = []
    change = d.pick(("improved", "improved", "worsened", "unchanged"))
    size = _resize(d, prior.size, change)
    state = OncState(prior.side, prior.lobe, size, [], [])
    np = f"{d.anat(prior.lobe)} {d.present('mass')}"
    _change(d, out, "Chest", change, np, f"{prior.lobe} mass", f" ({size} cm, previously {prior.size} cm)")
    for node in prior.nodes:
        change = d.pick(("improved", "resolved", "worsened", "unchanged"))
        new = replace(node, size=round(d.size(0.4, 0.8), 1) if change == "resolved" else _resize(d, node.size, change))
        new = replace(new, size=max(new.size, 1.1)) if change != "resolved" else new
        state.nodes.append(new)
        note = d.absent if change == "resolved" else d.present
        np = f"{d.anat(node.station.name)} {note('lymph node')}"
        tail = "" if change == "resolved" else f" (now {new.size} cm in short axis)"
        _change(d, out, "Lymph nodes", change, np, f"{node.station.name} lymph node", tail)
    for met in prior.mets:
        change = d.pick(("improved", "worsened", "unchanged"))
        now = sites.Met(met.site, _resize(d, met.size, change))
        state.mets.append(now)
        _change(d, out, sites.GROUP[met.site], change, sites.change_np(d, now), sites.ENTITY[met.site], "")
    if not prior.mets and d.random() < 0.3:
        now = sites.Met(d.pick(sites.SITES), d.size(0.8, 2.5))
        state.mets.append(now)
        _change(d, out, sites.GROUP[now.site], "new", sites.change_np(d, now), sites.ENTITY[now.site], "")
    return state


def _change(d: Dictation, out: Draft, group: str, change: str, np: str, entity: str, tail: str) -> None:
    text, record = change_sentence(d, change, np, entity)
    out.findings.append((group, text + tail))
    assert out.changes is not None, "follow-ups start a change list"
    out.changes.append(record)
    out.qa.append(ask("change", record["cue"], thing=entity))
    d.section = "impression"
    out.impression.append(cue_only(d, change, np))
    d.section = "findings"


def _resize(d: Dictation, size: float, change: str) -> float:
    factor = {"improved": d.rng.uniform(0.5, 0.8), "worsened": d.rng.uniform(1.25, 1.6)}.get(change, 1.0)
    return round(size * factor, 1)
