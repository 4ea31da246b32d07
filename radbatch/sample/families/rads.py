"""What every RADS family shares: how a category is stated, and the standard questions about it.

The gold system name is the key of [answer.systems] in recipes/tasks/rads_assignment.toml; the text
spells it in the ways radiologists do (BIRADS, ACR TI-RADS, Lung-RADS v2022, ...). The category token
itself (4B, TR3, LR-5, LR-TR viable) always appears verbatim after the system name.
"""

from __future__ import annotations

from radbatch.sample.dictation import Dictation, Options, Variants
from radbatch.sample.draft import Draft
from radbatch.sample.qa import ask

_NAMES = {
    "BI-RADS": Options("BI-RADS", "ACR BI-RADS", train=("BIRADS",), test=("BI-RADS\u00ae",)),
    "TI-RADS": Options("ACR TI-RADS", "TI-RADS", train=("TIRADS",), test=("ACR-TIRADS",)),
    "LI-RADS": Options("LI-RADS", "LI-RADS v2018", train=("LIRADS",), test=("CT/MRI LI-RADS",)),
    "PI-RADS": Options("PI-RADS", "PI-RADS v2.1", train=("PIRADS",), test=("PI-RADS version 2.1",)),
    "O-RADS": Options("O-RADS", train=("ORADS",), test=("ACR O-RADS",)),
    "VI-RADS": Options("VI-RADS", train=("VIRADS",), test=("Vesical Imaging-RADS",)),
    "CAD-RADS": Options("CAD-RADS", "CAD-RADS 2.0", train=("CADRADS",), test=("CAD-RADS\u2122",)),
    "NI-RADS": Options("NI-RADS", train=("NIRADS",), test=("ACR NI-RADS",)),
    "Lung-RADS": Options("Lung-RADS", "Lung-RADS v2022", train=("LungRADS",), test=("Lung RADS",)),
    "GB-RADS": Options("GB-RADS", train=("GBRADS",), test=("Gallbladder GB-RADS",)),
}

_STATEMENT = Variants(
    "{system} {category}: {meaning}",
    "{system} category {category} - {meaning}",
    "{meaning}. {system} {category}",
    train=("Assessment: {system} {category} ({meaning})", "{system} {category} -- {meaning}"),
    test=("overall {system} assessment category: {category}, {meaning}", "{meaning} ({system} {category})"),
)

_RECOMMEND = Variants(
    "recommend {action}",
    "{action} is recommended",
    train=("suggest {action}",),
    test=("advise {action}", "the recommended management is {action}"),
)


def state_category(d: Dictation, draft: Draft, system: str, category: str, meaning: str, modality_name: str = "") -> None:
    """Write the category into the assessment and set the gold."""
    name = d.choose(_NAMES[system])
    if modality_name and name == "O-RADS":
        name = f"O-RADS {modality_name}"  # "O-RADS US 4", "O-RADS MRI 4"
    draft.assessment.append(d.say(_STATEMENT, system=name, category=category, meaning=meaning))
    draft.rads = (system, category)
    draft.qa.append(ask("category", category, system=system))


def recommend(d: Dictation, draft: Draft, action: str) -> None:
    """A management line; the action text is also the answer to 'what is recommended?'."""
    draft.assessment.append(d.say(_RECOMMEND, action=action))
    draft.qa.append(ask("recommendation", action))
