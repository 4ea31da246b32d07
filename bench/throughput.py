"""Reports per hour, four ways, on the same reports, model and thread count (one run, one machine).

    .venv/bin/python bench/throughput.py [--reports 16] [--threads 2] [--server-slots 8] [--skip a0,a1,b,c,d]

  a0  the notebook way: one Llama, create_completion per (report, head), sequential, RadLite prompts
      (`radlite` profile, task tag first), greedy, unconstrained
  a1  the same with each head's grammar
  b   llama-server built from the same llama.cpp sources (bench/llama_tools.py), -np N slots, prompt cache
      on, bound to 127.0.0.1, driven by N client threads (stdlib urllib); all heads of one report go to one
      slot (id_slot) so its prompt cache holds the report; radbatch's prompts (token ids) and grammars
  c   `radbatch annotate --engine simple`, 1 worker
  d   `radbatch annotate --engine batched`, 1 worker (and the engine alone, in process, for the profile)

Then the floor: the useful work of d (each shared prefix prefilled once, every generated token) timed at
llama-bench's prompt rate and llama-batched-bench's generation rate at d's mean batch size, both built from
the same sources; d's ratio to it; and d's profile (where its time goes). Timings are wall clock on whatever
else this machine is running: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llama_tools  # noqa: E402
import workload  # noqa: E402

REPO = workload.REPO


class Result:
    def __init__(self, name: str, wall: float, reports: int, prompt: int, gen: int, note: str = ""):
        self.name, self.wall, self.reports, self.prompt, self.gen, self.note = name, wall, reports, prompt, gen, note

    @property
    def per_hour(self) -> float:
        return self.reports / self.wall * 3600

    def line(self) -> str:
        return (f"{self.name:<34} {self.wall:8.1f} s {self.per_hour:9.0f} reports/h  prompt {self.prompt / self.wall:7.1f} "
                f"tok/s  generated {self.gen / self.wall:6.1f} tok/s  {self.note}")


def _requests(units):
    return [r for u in units for r in u.requests]


# -- a: the notebook way ---------------------------------------------------------------------------------------
def notebook(units_radlite, model_path: str, threads: int, grammars: dict | None, n_reports: int) -> Result:
    from llama_cpp import Llama, LlamaGrammar
    llm = Llama(model_path=model_path, n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False)
    compiled = {t: LlamaGrammar.from_string(g, verbose=False) for t, g in (grammars or {}).items()}
    prompt = gen = 0
    t0 = time.perf_counter()
    for req in _requests(units_radlite):
        out = llm.create_completion(req.prompt.text, max_tokens=req.max_tokens, temperature=0.0,
                                    stop=["<|im_end|>"], grammar=compiled.get(req.task))
        prompt += out["usage"]["prompt_tokens"]
        gen += out["usage"]["completion_tokens"]
    wall = time.perf_counter() - t0
    llm.close()
    return Result("a1 notebook + grammars" if grammars else "a0 notebook, unconstrained", wall, n_reports,
                  prompt, gen)


# -- b: llama-server --------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=3600) as resp:
        return json.loads(resp.read())


def server(units, tools, model_path: str, threads: int, slots: int, grammars: dict, token_fn,
           n_reports: int) -> Result:
    port = _free_port()
    cmd = [str(tools["llama-server"]), "-m", model_path, "--host", "127.0.0.1", "--port", str(port),
           "-t", str(threads), "-tb", str(threads), "-np", str(slots), "-c", str(slots * 2048), "-b", "512",
           "--cache-prompt", "--no-webui", "--no-warmup", "-lv", "1"]
    log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
            if proc.poll() is not None:
                raise SystemExit(f"llama-server exited ({proc.returncode}); see {log.name}")
        by_report: list[list] = []
        for u in units:
            rows: dict[int, list] = {}
            for r in u.requests:
                rows.setdefault(r.row, []).append(r)
            by_report += list(rows.values())
        work = [(i % slots, reqs) for i, reqs in enumerate(by_report)]
        payloads = {id(r): token_fn(r.prompt) for reqs in by_report for r in reqs}
        totals = {"prompt": 0, "gen": 0}
        lock = threading.Lock()

        def client(slot: int) -> None:
            for s, reqs in work:
                if s != slot:
                    continue
                for r in reqs:
                    out = _post(base + "/completion", {
                        "prompt": payloads[id(r)], "n_predict": r.max_tokens, "temperature": 0.0, "top_k": 1,
                        "grammar": grammars[r.task], "id_slot": slot, "cache_prompt": True})
                    with lock:
                        totals["prompt"] += len(payloads[id(r)])
                        totals["gen"] += out.get("tokens_predicted", 0)

        t0 = time.perf_counter()
        clients = [threading.Thread(target=client, args=(s,)) for s in range(slots)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        wall = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return Result(f"b llama-server -np {slots}", wall, n_reports, totals["prompt"], totals["gen"])


# -- c, d: radbatch annotate ------------------------------------------------------------------------------------
def annotate(path: Path, engine: str, threads: int, n_reports: int, prompt: int, gen: int) -> Result:
    out = Path(tempfile.mkdtemp(prefix=f"radbatch-{engine}-")) / "out.parquet"
    cmd = [sys.executable, "-m", "radbatch", "annotate", str(path), "-o", str(out), "--engine", engine,
           "--workers", "1", "--threads", str(threads), "--model", workload.MODEL, "-q", *workload.column_flags(path)]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"annotate --engine {engine} failed:\n{res.stderr[-2000:]}")
    return Result(f"{'c' if engine == 'simple' else 'd'} radbatch annotate --engine {engine}", wall, n_reports,
                  prompt, gen, "(end to end: start-up, model load, Parquet in and out)")


def engine_alone(units, spec, threads: int, grammars: dict, n_reports: int):
    from radbatch.engines.batched import BatchedEngine
    eng = BatchedEngine(spec, threads, 0, grammars)
    prompt = gen = 0
    t0 = time.perf_counter()
    for u in units:
        for c in eng.complete_many(u.requests):
            prompt += c.prompt_tokens
            gen += c.generated_tokens
    wall = time.perf_counter() - t0
    stats, settings = dict(eng.stats), eng.settings
    eng.close()
    return Result("d' batched engine alone", wall, n_reports, prompt, gen, "(in process, model loaded)"), stats, settings


# -- e: two shipped defaults (before and after a routing change) -------------------------------------------------
def compare_defaults(archive: Path, before: Path, n_reports: int, threads: int) -> int:
    """Each default end to end through `radbatch annotate` (1 worker, no --model: every head routed), the new
    one first so that a warmer page cache cannot favour it; prints the ratio of reports per hour."""
    table = pq.read_table(archive).slice(0, n_reports)
    table = table.select([c for c in table.column_names if "__" not in c])
    work = Path(tempfile.mkdtemp(prefix="radbatch-defaults-"))
    path = work / "reports.parquet"
    pq.write_table(table, path)
    print(f"{table.num_rows} reports from {archive.name}; {threads} threads; {_load()}")
    runs = {}
    for label, routing in (("after", REPO / "recipes" / "routing.toml"), ("before", before)):
        out = work / f"{label}.parquet"
        cmd = [sys.executable, "-m", "radbatch", "annotate", str(path), "-o", str(out), "--workers", "1",
               "--threads", str(threads), "--routing-file", str(routing), "-q", *workload.column_flags(path)]
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        wall = time.perf_counter() - t0
        if res.returncode != 0:
            raise SystemExit(f"annotate with {routing} failed:\n{res.stderr[-2000:]}")
        runs[label] = Result(f"e {label}: {routing.name}", wall, table.num_rows, 0, 0,
                             f"truncated head outputs {_truncated(out)}")
        print(runs[label].line().replace("prompt     0.0 tok/s  generated    0.0 tok/s  ", ""), flush=True)
    print(f"\nafter/before reports per hour: {runs['after'].per_hour / runs['before'].per_hour:.2f}")
    print(_load())
    return 0


def _truncated(out: Path) -> int:
    """Head outputs that ran to max_tokens (status "truncated" in the output's <head>__status columns)."""
    t = pq.read_table(out)
    return sum(t.column(c).to_pylist().count("truncated") for c in t.column_names if c.endswith("__status"))


# -- the floor --------------------------------------------------------------------------------------------------
def floor_rates(tools, model_path: str, threads: int, batch: int) -> tuple[float, float]:
    """llama-bench pp512 tokens/s; llama-batched-bench generation tokens/s at `batch` sequences sharing a
    256-token prompt (flash attention off, one KV stream per sequence, as the batched engine)."""
    pp = subprocess.run([str(tools["llama-bench"]), "-m", model_path, "-t", str(threads), "-p", "512", "-n", "0",
                         "-fa", "0", "-o", "json"], capture_output=True, text=True, check=True)
    pp_rate = json.loads(pp.stdout)[0]["avg_ts"]
    tg = subprocess.run([str(tools["llama-batched-bench"]), "-m", model_path, "-t", str(threads), "-tb", str(threads),
                         "-c", str(batch * 2048), "-b", "512", "-ub", "512", "-npp", "256", "-ntg", "64",
                         "-npl", str(batch), "-pps", "-fa", "off", "--output-format", "jsonl"],
                        capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in tg.stdout.splitlines() if line.startswith("{")]
    return pp_rate, rows[-1]["speed_tg"]


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reports", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--server-slots", type=int, default=8)
    ap.add_argument("--skip", default="", help="comma list of a0,a1,b,c,d to leave out")
    ap.add_argument("--routing-before", type=Path, metavar="FILE",
                    help="instead: the shipped default (models.toml + routing.toml) against the default this routing "
                         "file made, side by side on --archive's first --reports reports (issue 12 item 7)")
    ap.add_argument("--archive", type=Path, default=REPO / "sample_data" / "quality_dev.parquet",
                    help="the reports for --routing-before (inputs only; gold columns are dropped)")
    args = ap.parse_args(argv)
    if args.routing_before:
        return compare_defaults(args.archive, args.routing_before, args.reports, args.threads)
    skip = set(filter(None, args.skip.split(",")))

    from radbatch.engines.batched import BatchedEngine
    from radbatch.heads.models import embedded_path
    path, source = workload.archive(args.reports)
    plan, units = workload.units(path)
    _, units_rl = workload.units(path, profile="radlite")
    (name, spec), = plan.models.items()
    grammars = {h.recipe.id: h.grammar() for h in plan.heads}
    model_path = str(embedded_path())
    n_req = len(_requests(units))
    print(f"{args.reports} reports from {source}; {len(plan.heads)} heads -> {n_req} head outputs; "
          f"model {Path(model_path).name}; {args.threads} threads; {os.cpu_count()} cores; {_load()}")
    tools = llama_tools.ensure_built(log=lambda m: print("  " + m))

    results = []
    engine_res, stats, settings = engine_alone(units, spec, args.threads, grammars, args.reports)
    if "a0" not in skip:
        results.append(notebook(units_rl, model_path, args.threads, None, args.reports))
        print(results[-1].line(), flush=True)
    if "a1" not in skip:
        results.append(notebook(units_rl, model_path, args.threads, grammars, args.reports))
        print(results[-1].line(), flush=True)
    if "b" not in skip:
        tok = BatchedEngine(spec, 1, 0, {}).tokens
        results.append(server(units, tools, model_path, args.threads, args.server_slots, grammars, tok, args.reports))
        print(results[-1].line(), flush=True)
    for engine in ("simple", "batched"):
        if ("c" if engine == "simple" else "d") not in skip:
            results.append(annotate(path, engine, args.threads, args.reports, engine_res.prompt, engine_res.gen))
            print(results[-1].line(), flush=True)
    results.append(engine_res)
    print(results[-1].line(), flush=True)

    by = {r.name.split()[0]: r for r in results}
    d = by.get("d") or engine_res
    print(f"\nratios (reports/hour of d = `{d.name}`):")
    for key in ("a0", "a1", "b", "c"):
        if key in by:
            print(f"  d/{key:<3} {d.per_hour / by[key].per_hour:6.2f}   ({by[key].name})")
    print("ratios of d' (the batched engine alone, no start-up or Parquet; a0, a1 and b also exclude start-up):")
    for key in ("a0", "a1", "b", "c"):
        if key in by:
            print(f"  d'/{key:<3} {engine_res.per_hour / by[key].per_hour:6.2f}")

    batch = max(1, round(stats["gen_tokens"] / max(stats["steps"], 1)))
    pp_rate, tg_rate = floor_rates(tools, model_path, args.threads, batch)
    floor = stats["prompt_tokens"] / pp_rate + stats["gen_tokens"] / tg_rate
    print(f"\nfloor: {stats['prompt_tokens']:.0f} prompt tokens (shared prefixes once) at llama-bench pp512 "
          f"{pp_rate:.1f} tok/s + {stats['gen_tokens']:.0f} generated tokens at llama-batched-bench "
          f"{tg_rate:.1f} tok/s (batch {batch}) = {floor:.1f} s")
    print(f"  d'/floor {engine_res.wall / floor:5.2f}   d/floor {d.wall / floor:5.2f}")
    print(f"\nprofile of d' ({settings}):")
    other = stats["run_s"] - stats["decode_s"] - stats["prompt_s"] - stats["sample_s"]
    print(f"  prompt prefill {stats['prompt_s']:.1f} s: {stats['prompt_tokens']:.0f} tokens in "
          f"{stats['prompt_calls']:.0f} calls ({stats['prompt_tokens'] / max(stats['prompt_s'], 1e-9):.0f} tok/s), "
          f"{stats['copies']:.0f} prefix copies")
    print(f"  generation {stats['decode_s']:.1f} s: {stats['gen_tokens']:.0f} tokens in {stats['steps']:.0f} steps "
          f"(mean batch {stats['gen_tokens'] / max(stats['steps'], 1):.1f}, "
          f"{stats['gen_tokens'] / max(stats['decode_s'], 1e-9):.0f} tok/s)")
    print(f"  sampling {stats['sample_s']:.1f} s (grammar: {stats['top_masks']:.0f} top-64 masks, "
          f"{stats['full_masks']:.0f} full-vocabulary masks, {stats['full_mask_s']:.1f} s); scheduling and copies "
          f"{other:.1f} s; outside the engine (tokenizing, Python) {engine_res.wall - stats['run_s']:.1f} s")
    print(_load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
