"""The house plan (docs/architecture.md) holds: no import circles between radbatch's modules, and the lower
packages never import the higher ones. Read from the source with ast (nothing is imported), so the check is
about what the code says, including imports inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# What each lower package may import from radbatch (besides itself and radbatch.errors). Lazy imports count too.
ALLOWED = {
    "archive": set(),
    "heads": {"archive", "engines.rules", "finetune.recipe",     # the rules member's source hash; recipes validate
              "evaluation.calibration"},                       # recipes validate reads calibration*.toml strictly
    "engines": {"heads", "archive"},
    "executors": {"engines", "heads", "archive", "annotation"},  # executors take the job (annotation/job.py)
}


def _modules() -> dict[str, tuple[Path, bool]]:
    mods = {}
    for path in (ROOT / "radbatch").rglob("*.py"):
        if "_native" in path.parts:
            continue
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_init = parts[-1] == "__init__"
        mods[".".join(parts[:-1] if is_init else parts)] = (path, is_init)
    return mods


def _imports(mods) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, (path, is_init) in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_init else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in mods else module for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != name and target != "radbatch":
                    graph[name].add(target)
    return graph


def test_no_import_circles():
    graph = _imports(_modules())
    assert sum(map(len, graph.values())) > 150   # the graph was read (relative and absolute imports resolved)
    assert "radbatch.engines.spec" in graph["radbatch.engines.batched"]
    state: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(u: str) -> None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                circles.append(" -> ".join(stack[stack.index(v):] + [v]))
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert circles == []


def test_lower_packages_do_not_import_higher_ones():
    graph = _imports(_modules())
    wrong = []
    for module, targets in graph.items():
        package = module.split(".")[1] if "." in module else ""
        if package not in ALLOWED:
            continue
        for target in targets:
            rest = target.split(".", 1)[1] if "." in target else ""
            if rest == "errors" or rest.split(".")[0] == package:
                continue
            if not any(rest == a or rest.startswith(a + ".") for a in ALLOWED[package]):
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_the_architecture_doc_names_modules_that_exist():
    """Every radbatch/... path docs/architecture.md names exists, so the one-screen map cannot go stale silently."""
    import re
    text = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`((?:cli|annotation|executors|engines|heads|archive|finetune|evaluation)/[\w/]+\.py)", text))
    assert len(named) > 30
    missing = sorted(p for p in named if not (ROOT / "radbatch" / p).exists())
    assert missing == []
