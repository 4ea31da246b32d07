"""What annotate tells the user at start and at the end (never report text)."""

from __future__ import annotations

import click


def print_start(plan, workers: int, threads: int) -> None:
    r = plan.routing
    click.echo(f"radbatch: {len(plan.files)} input file(s), {len(plan.heads)} head(s), {workers} worker(s) x "
               f"{threads} thread(s); run key {plan.run_key}", err=True)
    tag = {"measured": "measured on a dev split", "recorded": "kept from this output's run"}.get(
        r.status, "PROVISIONAL (not measured yet)")
    click.echo(f"routing: {tag}" + (f" - {r.note}" if r.note else ""), err=True)
    for h in plan.heads:
        m = plan.head_models[h.key]
        score = r.scores.get(h.recipe.id)
        extra = f" (dev {score.get('metric', 'score')} {score.get('dev_score')})" if score else ""
        click.echo(f"  {h.key:<24} -> {m.name}{' + adapter' if m.adapter else ''}{extra}", err=True)


def print_summary(s) -> None:
    if s.routing_note:
        click.echo(f"routing: {s.routing_note}", err=True)
    if s.nothing_to_do:
        click.echo(f"Nothing to do: {', '.join(map(str, s.outputs))} is complete for this run key "
                   f"({s.rows} rows). Use --restart to recompute, --retry-errors to redo failed heads.")
        return
    rate = s.rows / s.wall_seconds * 3600 if s.wall_seconds else 0.0
    click.echo(f"Wrote {s.rows} rows to {', '.join(map(str, s.outputs))} ({s.computed_rows} computed this run) "
               f"in {s.wall_seconds:.1f} s ({rate:,.0f} rows/hour)")
    click.echo("rows: " + ", ".join(f"{k} {v}" for k, v in s.row_counts.items() if v))
    if s.cache:
        click.echo(f"result store: {s.reused_results} head results reused, {s.decoded_requests} decoded"
                   + (f", {s.rejected_results} stored entries failed a check (decoded again)" if s.rejected_results
                      else "") + (" (the store failed mid-run: see above)" if s.store_failed else ""))
    if s.duplicated_ids:
        click.echo(f"duplicated report ids: {s.duplicated_ids} rows (kept; see column id_duplicated)")
    if s.head_counts:
        click.echo(f"{'head':<24} {'ok':>6} {'error':>6} {'n/a':>6} {'trunc':>6}")
        for head, c in s.head_counts.items():
            click.echo(f"{head:<24} {c['ok']:>6} {c['error']:>6} {c['not_applicable']:>6} {c['truncated']:>6}")
