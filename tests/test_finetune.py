"""`radbatch finetune` on a tiny random Llama (hidden 64, 2 layers) whose tokenizer is the embedded SmolLM2's.

The tiny model is built from a config in the tests (seeded, so the same file every run), converted to GGUF with
llama.cpp's converter from the llama-cpp-python sdist (`make setup` puts it in ~/.cache/radbatch/sdist), and
trained on a small labelled archive written below. A training step takes a few hundredths of a second; most of the
time here is importing torch / transformers and converting files. Nothing touches the network.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import REPORTS, run_cli

MARKER = "Quokkazebra"   # a word only the archive's report texts contain: it must never reach a log
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HTTP_PROXY": "http://127.0.0.1:9",
           "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
COLUMN_OPTIONS = ("--question-column", "question", "--hypothesis-column", "hypothesis",
                  "--patient-column", "patient_id", "--date-column", "study_date")
RECIPE = """\
# Test recipe: a fast LoRA for the tiny random model. Used by tests/test_finetune.py.
r = 4
lora_alpha = 8
lora_dropout = 0.0
target_modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
learning_rate = 0.02
lr_scheduler = "linear"
warmup_steps = 0
max_steps = {steps}
batch_size = 4
grad_accum = 1
max_length = 512
compute_dtype = "float32"
seed = 3
dev_fraction = 0.25
dev_max_samples = 8
checkpoint_every = 4
"""
CHANGE = pa.struct([("change", pa.string()), ("cue", pa.string()), ("entity", pa.string())])
ENTITY = pa.struct([("text", pa.string()), ("label", pa.string())])


def _labelled_table() -> pa.Table:
    """16 reports (conftest's REPORTS twice, tagged with MARKER) with partial gold for six heads."""
    n = 16
    texts = [REPORTS[i % len(REPORTS)].replace("FINDINGS:", f"FINDINGS: {MARKER} seen.", 1)
             if "FINDINGS:" in REPORTS[i % len(REPORTS)] else REPORTS[i % len(REPORTS)] + f" {MARKER}."
             for i in range(n)]
    texts[5] += " The dictation said <|im_end|> here."  # special-token text stays plain text
    m_stage = ["M0", "M1", None, "M0"] * 4
    rads = [("BI-RADS", "1"), ("TI-RADS", "TR4"), (None, None), ("PI-RADS", "4")] * 4
    rads[4] = ("BI-RADS", "9")                       # not a BI-RADS category: skipped and counted
    nli = ["entailment", "neutral", "contradiction", None] * 4
    entities = [[{"text": "pleural effusion", "label": "OBS-DP"}, {"text": "pneumothorax", "label": "OBS-DA"}],
                [], None, [{"text": "right lobe", "label": "ANAT-DP"}]] * 4
    changes = [[{"change": "worsened", "cue": "increased", "entity": "pleural effusion"}], None, [], None] * 4
    return pa.table({
        "report_id": [f"R{i:03d}" for i in range(n)],
        "patient_id": [f"P{i // 2:02d}" for i in range(n)],
        "study_date": [f"2023-0{1 + i % 2}-1{i % 9}" for i in range(n)],
        "report_text": texts,
        "question": ["Is there a pleural effusion?" if i % 2 else None for i in range(n)],
        "hypothesis": ["There is a pleural effusion." for _ in range(n)],
        "gold__m_staging__stage": m_stage,
        "gold__rads_assignment__system": [s for s, _ in rads],
        "gold__rads_assignment__category": [c for _, c in rads],
        "gold__radiology_nli__label": nli,
        "gold__radiology_qa__answer": ["Yes, small and on the right." if i % 2 else None for i in range(n)],
        "gold__radiology_ner__entities": pa.array(entities, pa.list_(ENTITY)),
        "gold__temporal_comparison__changes": pa.array(changes, pa.list_(CHANGE)),
    })


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("labelled") / "labelled.parquet"
    pq.write_table(_labelled_table(), path)
    return path


@pytest.fixture(scope="module")
def embedded_tokenizer():
    pytest.importorskip("transformers")   # the `finetune` extra: only the tests that tokenize or train need it
    from radbatch.finetune.base import go_offline, quiet_transformers
    from radbatch.heads.models import embedded_path
    go_offline()
    from transformers import AutoTokenizer
    quiet_transformers()
    p = embedded_path()
    return AutoTokenizer.from_pretrained(p.parent, gguf_file=p.name, local_files_only=True)


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory, embedded_tokenizer) -> Path:
    """A random 2-layer Llama with SmolLM2's tokenizer, as a GGUF (the same bytes every run: seeded)."""
    torch = pytest.importorskip("torch")
    from transformers import LlamaConfig, LlamaForCausalLM
    from radbatch.finetune.export import _run_tool
    tok = embedded_tokenizer
    folder = tmp_path_factory.mktemp("tiny")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, rms_norm_eps=1e-5,
                      initializer_range=0.2)  # big enough embeddings that a LoRA can move the logits
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(folder / "hf")
    tok.save_pretrained(folder / "hf")
    out = folder / "tiny-llama.gguf"
    _run_tool("convert_hf_to_gguf.py", [str(folder / "hf"), "--outfile", str(out), "--outtype", "f32"],
              folder / "convert.log")
    return out


def _recipe(tmp_path: Path, steps: int = 12) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(RECIPE.format(steps=steps))
    return path


def _finetune(labelled: Path, base: Path, recipe: Path, out: Path, *extra: str, **kw):
    return run_cli("finetune", labelled, "--base", base, "--recipe", recipe, "-o", out, "--threads", "2",
                   *COLUMN_OPTIONS, *extra, env=OFFLINE, **kw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, labelled, tiny_gguf) -> dict:
    """One CLI run, offline: train 12 steps, export, verify."""
    pytest.importorskip("peft")
    tmp = tmp_path_factory.mktemp("run")
    out = tmp / "adapter-v1"
    done = _finetune(labelled, tiny_gguf, _recipe(tmp), "adapter-v1", cwd=tmp)   # -o relative, as in the docs
    return {"proc": done, "out": out, "tmp": tmp}


def test_finetune_trains_exports_and_verifies_offline(trained, tiny_gguf):
    done, out = trained["proc"], trained["out"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Trained 12 steps" in done.stdout
    assert "/adapter-v1/adapter.gguf" in done.stdout.split("Adapter: ")[1]
    assert "verified: llama.cpp loads the adapter on tiny-llama.gguf" in done.stderr
    run = json.loads((out / "run.json").read_text())
    losses = [loss for _, loss in run["train_loss"]]
    assert len(losses) == 12
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.5     # the loss falls ...
    dev = run["dev_loss"]
    assert [s for s, _ in dev] == [0, 4, 8, 12]                    # 0: the base model
    assert dev[3][1] < dev[2][1] < dev[1][1] < dev[0][1]           # ... on held-out patients too
    flat = run["flatten_check"]                                    # drop over the last quarter of the steps
    assert flat["checked"] and flat["window"] == [8, 12] and flat["flattened"] == (flat["drop"] < 0.02)
    assert set(run["code"]) == {"started", "commit", "dirty", "code_dir"} and run["sittings"] == [run["code"]]
    assert run["logit_change"] > 1e-3                              # the adapter changes llama.cpp's logits
    from radbatch.finetune.adapter import adapter_metadata
    from radbatch.heads.models import sha256_file
    meta = adapter_metadata(out / "adapter.gguf")
    assert meta["general.type"] == "adapter" and meta["adapter.type"] == "lora"
    assert meta["radbatch.base_sha256"] == sha256_file(str(tiny_gguf))
    assert meta["radbatch.steps"] == 12 and meta["radbatch.seed"] == 3 and meta["radbatch.profile"] == "radbatch"


def test_finetune_counts_partial_labels_and_skips(trained):
    counts = json.loads((trained["out"] / "run.json").read_text())["data"]["counts"]
    # rads: 12 rows with gold (4 have none); 1 has category "9" for BI-RADS
    assert counts["rads_assignment"]["unrenderable"] == 1
    assert counts["rads_assignment"]["examples"] == 11
    # qa: 8 rows with gold and a question; m_staging: 12 with gold
    assert counts["radiology_qa"]["examples"] == 8
    assert counts["m_staging"]["examples"] == 12
    assert set(counts) == {"m_staging", "rads_assignment", "radiology_nli", "radiology_qa", "radiology_ner",
                           "temporal_comparison"}
    for c in counts.values():
        assert c.get("train", 0) + c.get("dev", 0) + c.get("too_long", 0) == c["examples"]


def test_finetune_logs_no_report_text(trained):
    done, out = trained["proc"], trained["out"]
    logs = [done.stdout, done.stderr] + [p.read_text(errors="replace") for p in out.rglob("*")
                                         if p.is_file() and p.suffix in (".json", ".jsonl", ".log")]
    for text in logs:
        assert MARKER not in text
        assert "Scattered fibroglandular" not in text


def test_finetune_resumes_from_checkpoint_and_matches_uninterrupted(trained, labelled, tiny_gguf):
    from safetensors.torch import load_file
    out = trained["tmp"] / "adapter-resumed"
    recipe = trained["tmp"] / "tiny.toml"
    first = _finetune(labelled, tiny_gguf, recipe, out, "--stop-after", "5")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Stopped after step 5 of 12" in first.stdout
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000004.pt", "step-0000005.pt"]
    again = _finetune(labelled, tiny_gguf, recipe, out)
    assert again.returncode == 0, again.stderr[-3000:]
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()
             if "loss" in json.loads(line)]
    assert steps == list(range(1, 13))                             # steps 6..12 after the resume, none twice
    a = load_file(trained["out"] / "peft" / "adapter_model.safetensors")
    b = load_file(out / "peft" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)   # same seed, same adapter


def test_finetune_refuses_output_of_another_run(trained, labelled, tiny_gguf):
    other = trained["tmp"] / "other.toml"
    other.write_text(RECIPE.format(steps=12).replace("seed = 3", "seed = 4"))
    done = _finetune(labelled, tiny_gguf, other, trained["out"])
    assert done.returncode == 2
    assert "holds a finetune run with different data_sha256, recipe_sha256, seed" in done.stderr
    assert "--restart" in done.stderr


def test_annotate_refuses_adapter_on_wrong_base(trained, tiny_gguf, tmp_path):
    from radbatch.errors import EngineError
    from radbatch.heads.models import embedded_path
    from radbatch.annotation.plan import AnnotateOptions, build_plan
    adapter = trained["out"] / "adapter.gguf"
    reports = tmp_path / "reports.parquet"
    pq.write_table(pa.table({"report_id": ["a"], "report_text": [REPORTS[0]]}), reports)
    ok = build_plan(AnnotateOptions((str(reports),), str(tmp_path / "o.parquet"), tasks="m_staging",
                                    model=str(tiny_gguf), adapter=str(adapter)))
    assert ok.hashes["tiny-llama"]["adapter_sha256"]
    done = run_cli("annotate", reports, "-o", tmp_path / "out.parquet", "--tasks", "m_staging",
                   "--model", embedded_path(), "--adapter", adapter)
    assert done.returncode == EngineError.exit_code == 3
    assert f"Error: adapter {adapter} was trained on tiny-llama.gguf (sha256 " in done.stderr
    assert f"but model 'SmolLM2-135M-Instruct.Q4_1' is {embedded_path()}" in done.stderr
    assert not (tmp_path / "out.parquet").exists()


def test_bad_finetune_recipe_reports_every_problem(tmp_path, labelled):
    bad = tmp_path / "bad.toml"
    bad.write_text(RECIPE.format(steps=10).replace("r = 4", "rank = 4").replace("lora_dropout = 0.0",
                   "lora_dropout = \"high\"").replace('lr_scheduler = "linear"', 'lr_scheduler = "step"')
                   + "epochs = 3\nlayers_to_transform = \"top\"\n[task_weights]\nrads = 2.0\n")
    done = run_cli("finetune", labelled, "--recipe", bad, "-o", tmp_path / "out")
    assert done.returncode == 2
    err = done.stderr
    for problem in ("unknown key 'rank'", "unknown key 'epochs'", "lora_dropout must be a number",
                    "lr_scheduler must be one of linear, cosine, constant", "task_weights names unknown task 'rads'",
                    "missing key 'r'", "layers_to_transform must be a non-empty list of layer numbers (0 = first)"):
        assert f"{bad}: {problem}" in err
    assert not (tmp_path / "out").exists()


def test_gold_is_matched_to_the_head_vocabulary_like_eval_does():
    from radbatch.finetune.data import canonical
    from radbatch.heads.recipes import load_recipes
    tasks = load_recipes().tasks
    rads = tasks["rads_assignment"].answer
    assert canonical(rads, {"system": "none", "category": None}) == {"system": None, "category": None}
    assert canonical(rads, {"system": " bi-rads", "category": "4b "}) == {"system": "BI-RADS", "category": "4B"}
    assert rads.render(canonical(rads, {"system": "No applicable RADS", "category": None})) == "No applicable RADS"
    n = tasks["n_staging"].answer
    assert n.render(canonical(n, {"node_involvement": "Positive", "stage": "n2"})) == "Positive, N2"
    changes = tasks["temporal_comparison"].answer
    fixed = canonical(changes, {"changes": [{"change": "No Change", "cue": "stable", "entity": "nodule"}]})
    assert fixed["changes"][0]["change"] == "unchanged"


def test_shipped_finetune_recipes_are_valid():
    from radbatch.finetune.recipe import RADLITE_TASK_WEIGHTS, load_finetune_recipe
    from radbatch.heads.recipes import load_recipes, recipes_dir
    tasks = set(load_recipes().tasks)
    found = {p.stem: load_finetune_recipe(p, tasks) for p in sorted((recipes_dir() / "finetune").glob("*.toml"))}
    assert {"smollm2_135m_lora", "radlite_lora"} <= set(found)
    radlite = found["radlite_lora"]
    assert (radlite.r, radlite.lora_alpha, radlite.lora_dropout) == (64, 128, 0.05)
    assert set(radlite.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                           "down_proj"}
    assert dict(radlite.task_weights) == RADLITE_TASK_WEIGHTS == dict(found["smollm2_135m_lora"].task_weights)
    small = found["smollm2_135m_lora"]
    assert small.r == 8 and small.max_length <= 384
    for path in (recipes_dir() / "finetune").glob("*.toml"):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# Finetune recipe:") and "radbatch finetune" in path.read_text()


# --- training sees exactly what annotate sends -------------------------------------------------------------


@pytest.fixture(scope="module")
def examples(labelled):
    from radbatch.archive.reading import ColumnOptions
    from radbatch.finetune.data import DataOptions, iter_examples
    from radbatch.heads.models import ModelSpec, embedded_path
    from radbatch.heads.recipes import load_recipes
    cols = ColumnOptions(question="question", hypothesis="hypothesis", patient="patient_id", date="study_date")
    spec = ModelSpec("smollm2", str(embedded_path()), None, "chatml", 2048, "radbatch", "Apache-2.0")
    return list(iter_examples(DataOptions((str(labelled),), cols), load_recipes(), spec)), spec


@pytest.fixture(scope="module")
def engine(examples):
    from radbatch.engines.simple import LlamaEngine
    return LlamaEngine(examples[1], threads=1, seed=0, grammars={})


def test_training_and_annotate_tokenize_prompts_identically(examples, engine, embedded_tokenizer):
    from radbatch.finetune.data import PromptTokenizer
    ptok = PromptTokenizer(embedded_tokenizer)
    items = examples[0]
    assert len({ex.task for ex in items}) == 6 and len(items) > 40
    assert any("<|im_end|>" in text for ex in items for text, templ in ex.prompt.parts if not templ)
    for ex in items:
        assert ptok.prompt_ids(ex.prompt) == engine.tokens(ex.prompt), ex.task
        answer = ptok.answer_ids(ex.answer)
        assert answer[:-1] == engine.llm.tokenize(ex.answer.encode(), add_bos=False, special=False)
        assert answer[-1] == engine.llm.token_eos()    # <|im_end|>, where annotate's generation stops


def test_every_training_target_is_grammatical(examples, engine):
    from radbatch.heads.grammar_check import grammar_accepts
    from radbatch.heads.recipes import load_recipes
    tasks = load_recipes().tasks
    grammars = {}
    for ex in examples[0]:
        grammar = grammars.setdefault(ex.task, tasks[ex.task].answer.grammar())
        assert grammar_accepts(engine.llm, grammar, ex.answer), ex.task


def test_csv_archive_gives_the_same_examples(examples, tmp_path):
    """`radbatch sample` writes list-valued gold to CSV as JSON text."""
    import pyarrow.csv as pacsv
    from radbatch.archive.reading import ColumnOptions
    from radbatch.finetune.data import DataOptions, iter_examples
    from radbatch.heads.recipes import load_recipes
    table = _labelled_table()
    for name in ("gold__radiology_ner__entities", "gold__temporal_comparison__changes"):
        text = [None if v is None else json.dumps(v) for v in table.column(name).to_pylist()]
        table = table.set_column(table.column_names.index(name), name, pa.array(text, pa.string()))
    pacsv.write_csv(table, tmp_path / "labelled.csv")
    items, spec = examples
    cols = ColumnOptions(question="question", hypothesis="hypothesis", patient="patient_id", date="study_date")
    from_csv = list(iter_examples(DataOptions((str(tmp_path / "labelled.csv"),), cols), load_recipes(), spec))
    assert [(e.task, e.answer, e.prompt.text) for e in from_csv] == [(e.task, e.answer, e.prompt.text) for e in items]


def test_dev_split_keeps_each_patient_on_one_side(examples):
    from radbatch.finetune.data import dev_group
    groups = {ex.group for ex in examples[0]}
    assert all(g.startswith("patient:P") for g in groups)
    sides = {g: dev_group(g, 3, 0.25) for g in groups}
    assert 0 < sum(sides.values()) < len(groups)


def test_finetune_command_is_lazy():
    import subprocess
    import sys
    code = ("import sys, radbatch.cli.main, radbatch.cli.finetune, radbatch.finetune.adapter; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'gguf', 'llama_cpp') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _warm_recipe(trained, name: str, sha: str | None = None, **swap: str) -> Path:
    """The test recipe, 4 steps, starting from the 12-step run's last checkpoint (path relative to the recipe)."""
    from radbatch.heads.models import sha256_file
    ckpt = trained["out"] / "checkpoints" / "step-0000012.pt"
    text = RECIPE.format(steps=4)
    for old, new in swap.items():
        text = text.replace(old, new)
    path = trained["tmp"] / "warm" / f"{name}.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text + f'init_adapter = "../adapter-v1/checkpoints/{ckpt.name}"\n'
                    f'init_adapter_sha256 = "{sha or sha256_file(str(ckpt))}"\n')
    return path


def test_finetune_warm_starts_from_an_earlier_runs_checkpoint(trained, labelled, tiny_gguf):
    out = trained["tmp"] / "warm-run"
    done = _finetune(labelled, tiny_gguf, _warm_recipe(trained, "warm"), out)
    assert done.returncode == 0, done.stderr[-3000:]
    first = json.loads((trained["out"] / "run.json").read_text())["dev_loss"]
    warm = json.loads((out / "run.json").read_text())
    # Step 0 of the warm run is the earlier run's step 12 (same data and dev split): its dev loss, not the base's.
    assert warm["dev_loss"][0][0] == 0 and warm["dev_loss"][0][1] == pytest.approx(first[-1][1], rel=1e-4)
    assert warm["dev_loss"][0][1] < first[0][1] - 0.5
    assert warm["recipe"]["init_adapter"] == str(trained["out"] / "checkpoints" / "step-0000012.pt")


def test_finetune_refuses_a_warm_start_of_another_shape_or_file(trained, labelled, tiny_gguf):
    other_shape = _finetune(labelled, tiny_gguf, _warm_recipe(trained, "r8", **{"r = 4": "r = 8"}),
                            trained["tmp"] / "warm-r8")
    assert other_shape.returncode == 2
    assert "does not fit this recipe's LoRA (r, target_modules, layers_to_transform)" in other_shape.stderr
    assert "Traceback" not in other_shape.stderr
    other_file = _finetune(labelled, tiny_gguf, _warm_recipe(trained, "badsha", sha="0" * 64),
                           trained["tmp"] / "warm-badsha")
    assert other_file.returncode == 2
    assert "the recipe pins 0000" in other_file.stderr and "not the checkpoint this recipe was written for" in \
        other_file.stderr
