"""Which CheXpert facts a chest radiograph has, grouped into patterns the text states together.

Patterns keep one rule: a clause names only labels whose status is set, and a hedge in a clause
belongs to every label in it. So "opacity, atelectasis versus pneumonia" sets opacity positive and
both differentials uncertain, in the findings and again in the impression.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from radbatch.sample.dictation import Dictation, Options, Variants
from radbatch.sample.families.chest_terms import LOBES, NEG, POS, SEVERITY, STATEMENTS, UNC, Fact, lobe

_LUNG = {"atelectasis", "consolidation", "edema", "lung_lesion", "lung_opacity", "pneumonia"}
_BASILAR = {"right": "right basilar", "left": "left basilar", "bilateral": "bibasilar"}
_CHANGE_ENTITY = {
    "pleural_effusion": "pleural effusion",
    "pneumothorax": "pneumothorax",
    "consolidation": "consolidation",
    "lung_opacity": "opacity",
    "atelectasis": "atelectasis",
    "edema": "pulmonary edema",
    "cardiomegaly": "cardiomegaly",
}


@dataclass
class Pattern:
    facts: list[Fact]
    change: str = ""  # follow-ups: new, worsened, improved, resolved, unchanged

    @property
    def entity(self) -> str:
        return _CHANGE_ENTITY[self.facts[0].label]

    def np(self, d: Dictation) -> str:
        """The finding as a change cue names it ("right pleural effusion"), entities recorded."""
        f = self.facts[0]
        note = d.absent if self.change == "resolved" else d.present
        if f.label == "pleural_effusion":
            return "bilateral " + note("pleural effusions") if f.side == "bilateral" else f"{f.side} {note('pleural effusion')}"
        if f.label == "pneumothorax":
            return f"{f.side} {note('pneumothorax')}"
        if f.label in ("consolidation", "lung_opacity"):
            return f"{d.anat(lobe(d, f.loc))} {note(self.entity)}"
        if f.label == "atelectasis":
            return f"{d.anat(_BASILAR[f.side])} {note('atelectasis')}"
        return note(self.entity)


@dataclass
class ChestReport:
    patterns: list[Pattern]
    facts: dict[str, Fact]
    covered: set[str] = field(default_factory=set)  # labels a generic normal statement rules out


# -- fresh reports ------------------------------------------------------------------------------


def _side(d: Dictation, bilateral: float = 0.0) -> str:
    return "bilateral" if d.random() < bilateral else d.pick(("right", "left"))


def _lobe(d: Dictation) -> str:
    return d.pick(LOBES[d.pick(("right", "left"))])


def _add(report: ChestReport, *facts: Fact) -> bool:
    if any(f.label in report.facts for f in facts):
        return False
    for f in facts:
        report.facts[f.label] = f
    report.patterns.append(Pattern(list(facts)))
    return True


def _effusion(d, r):
    status = POS if d.random() < 0.8 else UNC
    return _add(r, Fact("pleural_effusion", status, _side(d, 0.3 if status == POS else 0), sev=d.below(3)))


def _pneumothorax(d, r):
    return _add(r, Fact("pneumothorax", POS if d.random() < 0.75 else UNC, _side(d), sev=d.below(3)))


def _consolidation(d, r):
    if d.random() < 0.15:
        return _add(r, Fact("consolidation", UNC, loc=_lobe(d)))
    f = Fact("consolidation", POS, loc=_lobe(d), sev=d.below(3))
    if d.random() < 0.6:
        return _add(r, f, Fact("pneumonia", POS if d.random() < 0.5 else UNC, loc=f.loc))
    return _add(r, f)


def _opacity(d, r):
    if d.random() < 0.12:
        return _add(r, Fact("lung_opacity", UNC, loc=_lobe(d)))
    f = Fact("lung_opacity", POS, loc=_lobe(d), sev=d.below(3))
    ddx = [Fact(label, UNC, side=_side(d), loc=f.loc) for label in ("atelectasis", "pneumonia") if d.random() < 0.5]
    return _add(r, f, *ddx)


def _chf(d, r):
    if d.random() < 0.2:
        return _add(r, Fact("edema", UNC))
    done = _add(r, Fact("edema", POS, sev=d.below(3)))
    if d.random() < 0.6:
        _add(r, Fact("cardiomegaly", POS, sev=d.below(3)))
    if d.random() < 0.4:
        _add(r, Fact("pleural_effusion", POS, "bilateral", sev=d.below(2)))
    return done


def _simple(label: str, unc_rate: float, **kw):
    def build(d, r):
        status = UNC if d.random() < unc_rate else POS
        f = Fact(label, status, **kw)
        if label in ("atelectasis", "pleural_other", "fracture"):
            f.side = _side(d, 0.3 if label == "atelectasis" else 0)
        if label in ("pneumonia", "lung_lesion"):
            f.loc = _lobe(d)
        if label == "lung_lesion":
            f.detail = str(d.size(0.6, 4.5))
        if label == "fracture":
            f.detail = d.pick(("4th rib", "5th rib", "6th rib", "7th rib", "8th rib", "clavicle"))
        if label in SEVERITY:
            f.sev = d.below(3)
        return _add(r, f)

    return build


_BUILDERS = (
    _effusion, _effusion, _pneumothorax, _consolidation, _opacity, _opacity, _chf,
    _simple("cardiomegaly", 0.3), _simple("enlarged_cardiomediastinum", 0.5), _simple("lung_lesion", 0.3),
    _simple("fracture", 0.3), _simple("pleural_other", 0.3), _simple("atelectasis", 0.2), _simple("pneumonia", 0.6),
)  # fmt: skip
_TRACKABLE = (_effusion, _pneumothorax, _consolidation, _chf, _simple("atelectasis", 0.0))
_DEVICES = ("endotracheal tube", "enteric tube", "central venous catheter", "PICC", "pacemaker", "chest tube")
_ALWAYS_DENIED = ("pneumothorax", "pleural_effusion", "consolidation", "edema")
# labels radiologists state as absent, most often first
_NEGATABLE = (
    "pneumothorax", "pleural_effusion", "consolidation", "cardiomegaly", "edema", "enlarged_cardiomediastinum",
    "pneumothorax", "pleural_effusion", "fracture", "lung_opacity", "pneumonia", "lung_lesion",
)  # fmt: skip


def fresh(d: Dictation, trackable: bool) -> ChestReport:
    r = ChestReport([], {})
    if trackable:
        while not d.pick(_TRACKABLE)(d, r) or not any(f.status == POS for f in r.facts.values()):
            r = ChestReport([], {})
    if trackable or d.random() < 0.7:
        for _ in range(1 + (d.rng.random() < 0.45) + (d.rng.random() < 0.2)):
            d.pick(_BUILDERS)(d, r)
    _devices(d, r)
    _negatives(d, r, d.randint(1, 4))
    return r


def _devices(d: Dictation, r: ChestReport) -> None:
    if d.random() < 0.2:
        device = d.pick(_DEVICES)
        side = d.pick(("right", "left"))
        _add(r, Fact("support_devices", POS, side=side, detail=device))


def _negatives(d: Dictation, r: ChestReport, n: int) -> None:
    # nearly every report denies one of these; it also gives each report a claim to ask about
    first = next((label for label in _ALWAYS_DENIED if label not in r.facts), "pneumothorax")
    for label in (first, *[d.pick(_NEGATABLE) for _ in range(n)]):
        if label not in r.facts:
            r.facts[label] = Fact(label, NEG)


# -- follow-ups ---------------------------------------------------------------------------------


def follow_up(d: Dictation, prior: list[Fact]) -> ChestReport:
    """The next radiograph: each tracked finding changes (or not); sometimes a new one appears."""
    r = ChestReport([], {})
    for f in prior:
        if f.label not in _CHANGE_ENTITY:
            continue
        change = _change_of(d, f)
        sev = f.sev + (change == "worsened") - (change == "improved")
        g = replace(f, status=NEG if change == "resolved" else POS, sev=sev)
        r.facts[f.label] = g
        r.patterns.append(Pattern([g], change))
    if d.random() < 0.35 or not r.patterns:
        probe = ChestReport([], dict(r.facts))
        if d.pick(_TRACKABLE)(d, probe):
            for g in probe.patterns[0].facts[:1]:
                g = replace(g, status=POS)
                r.facts[g.label] = g
                r.patterns.append(Pattern([g], "new"))
    _devices(d, r)
    _negatives(d, r, d.randint(1, 3))
    return r


def _change_of(d: Dictation, f: Fact) -> str:
    if f.label == "cardiomegaly":
        return "unchanged"
    options = ["resolved", "unchanged", "unchanged"]
    if f.sev < 2:
        options += ["worsened", "worsened"]
    if f.sev > 0:
        options += ["improved", "improved"]
    return d.pick(options)


# -- wording ------------------------------------------------------------------------------------

_ONE_DDX = Variants(
    "likely {a}", "possibly {a}", "which may represent {a}", train=("probably {a}",), test=("suspicious for {a}",)
)
_TWO_DDX = Variants(
    "{a} versus {b}",
    "which may represent {a} or {b}",
    train=("{a} or {b} not excluded",),
    test=("differential includes {a} and {b}",),
)
_PNA_POS = Variants("consistent with {p}", "compatible with {p}", test=("in keeping with {p}",))
_PNA_UNC = Variants(
    "concerning for {p}", "suspicious for {p}", "which may represent {p}", train=("possibly {p}",), test=("raising the possibility of {p}",)
)


def pattern_text(d: Dictation, pattern: Pattern) -> str:
    first, *rest = pattern.facts
    text = STATEMENTS[first.label](d, first)
    if not rest:
        return text
    if first.label == "consolidation":
        p = rest[0]
        clause = d.say(_PNA_POS if p.status == POS else _PNA_UNC, p=(d.present if p.status == POS else d.uncertain)("pneumonia"))
        return f"{text}, {clause}"
    words = [d.uncertain(f.label) for f in rest]
    clause = d.say(_ONE_DDX, a=words[0]) if len(words) == 1 else d.say(_TWO_DDX, a=words[0], b=words[1])
    return f"{text}, {clause}"


_NEG_NOUNS = {
    "consolidation": ("focal consolidation", "consolidation", "airspace consolidation"),
    "pleural_effusion": ("pleural effusion", "effusion"),
    "pneumothorax": ("pneumothorax",),
    "edema": ("pulmonary edema", "edema"),
    "atelectasis": ("atelectasis",),
    "lung_opacity": ("focal airspace opacity", "focal opacity"),
    "lung_lesion": ("suspicious pulmonary nodule", "pulmonary nodule or mass"),
    "pneumonia": ("pneumonia",),
    "fracture": ("displaced rib fracture", "acute rib fracture", "acute fracture"),
    "pleural_other": ("pleural thickening",),
    "cardiomegaly": ("cardiomegaly",),
}
_NEG_LIST = Variants(
    "no {items}",
    "there is no {items}",
    "no evidence of {items}",
    train=("no {items} identified",),
    test=("negative for {items}", "absence of {items}"),
)
_HEART_NORMAL = Variants(
    "{anat} size is {obs}", "the {anat} is {obs} in size", train=("{obs} {anat} size",), test=("{anat} size within {obs} limits",)
)
_MEDIASTINUM_NORMAL = Variants(
    "{obs} {anat}", "the {anat} is {obs}", train=("{anat} {obs}",), test=("the {anat} is within {obs} limits",)
)
_LUNGS_CLEAR = Variants(
    "the {anat} are {obs}", "{obs} {anat}", train=("{anat} {obs}",), test=("the {anat} are well expanded and {obs}",)
)
_BONES = Variants("no acute {obs}", "no acute {obs} is seen", train=("no acute {obs} identified",), test=("no acute {obs} is evident",))


def negative_sentences(d: Dictation, r: ChestReport) -> tuple[list[str], list[str]]:
    """Sentences stating the negative labels, and the finding words they deny in a list."""
    out = []
    listed = []
    in_patterns = {id(f) for p in r.patterns for f in p.facts}  # resolved findings are stated already
    for label, f in r.facts.items():
        if f.status != NEG or id(f) in in_patterns:
            continue
        if label == "cardiomegaly" and d.random() < 0.7:
            out.append(d.say(_HEART_NORMAL, anat=d.anat("heart"), obs=d.present("normal")))
        elif label == "enlarged_cardiomediastinum":
            anat = d.anat(d.pick(("cardiomediastinal silhouette", "mediastinal silhouette")))
            out.append(d.say(_MEDIASTINUM_NORMAL, anat=anat, obs=d.present("normal")))
        else:
            word = "PTX" if label == "pneumothorax" and d.terse else d.pick(_NEG_NOUNS[label])
            listed.append(d.absent(word))
    if listed:
        out.insert(0, d.say(_NEG_LIST, items=_join(d, listed)))
    quiet = not any(f.status != NEG and (f.label in _LUNG or f.label == "pneumothorax") for f in r.facts.values())
    if quiet and d.random() < 0.5:
        out.insert(0, d.say(_LUNGS_CLEAR, anat=d.anat("lungs"), obs=d.present("clear")))
        r.covered |= _LUNG
    if "fracture" not in r.facts and d.random() < 0.3:
        out.append(d.say(_BONES, obs=d.absent("osseous abnormality")))
        r.covered.add("fracture")
    return out, listed


def _join(d: Dictation, items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    if len(items) == 2:
        return f"{items[0]} or {items[1]}"
    comma = "," if d.random() < 0.5 else ""
    return ", ".join(items[:-1]) + f"{comma} or {items[-1]}"


_DISTRACTORS = Options(
    ("{obs} of the {anat}", "thoracic spine", "degenerative changes"),
    ("{obs} of the {anat}", "aortic arch", "atherosclerotic calcification"),
    ("{obs} in the {anat}", "right upper quadrant", "surgical clips"),
    train=(("the visualized {anat} is {obs}", "upper abdomen", "unremarkable"),),
    test=(("{obs} of the {anat}", "thoracic aorta", "tortuosity"),),
)


def distractors(d: Dictation) -> list[str]:
    """Incidental sentences with no CheXpert label in them."""
    out = []
    for _ in range((d.rng.random() < 0.5) + (d.rng.random() < 0.15)):
        template, anat, obs = d.choose(_DISTRACTORS)
        out.append(template.format(anat=d.anat(anat), obs=d.present(obs)))
    return out
