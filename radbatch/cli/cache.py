"""`radbatch cache info|prune|erase DIR`: look after a --cache result store (radbatch/annotation/result_store.py)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import click


def _folder(value: str) -> Path:
    from radbatch.annotation.result_store import DB_NAME
    folder = Path(value)
    if not (folder / DB_NAME).exists():
        raise click.UsageError(f"{folder} holds no result store ({DB_NAME} not found); give the folder passed "
                               "to annotate --cache.")
    return folder


@click.group()
def cache():
    """The result store that `annotate --cache DIR` shares between runs (holds generated text: owner-only)."""


@cache.command("info")
@click.argument("folder")
def cache_info(folder):
    """Entries, archives seen, size on disk, oldest and newest use."""
    from radbatch.annotation.result_store import ResultStore
    store = ResultStore(_folder(folder))
    i = store.info()
    store.close()
    when = {k: time.strftime("%Y-%m-%d %H:%M", time.gmtime(i[k])) if i[k] else "-"
            for k in ("oldest_use", "newest_use")}
    click.echo(f"{i['path']}: {i['entries']} entries from {i['archives']} input file(s), "
               f"{i['bytes'] / 2**20:.1f} MiB; format {i['format']}; used {when['oldest_use']} .. "
               f"{when['newest_use']} UTC")


@cache.command("prune")
@click.argument("folder")
@click.option("--older-than", required=True, metavar="DAYS", type=click.FloatRange(0),
              help="Delete entries neither written nor reused in the last DAYS days.")
def cache_prune(folder, older_than):
    """Delete entries not used for a while (their text is overwritten on disk, not only unlinked)."""
    from radbatch.annotation.result_store import ResultStore
    store = ResultStore(_folder(folder))
    n = store.prune(older_than * 86400)
    store.close()
    click.echo(f"Deleted {n} entries not used in {older_than:g} days from {folder}")


@cache.command("erase")
@click.argument("folder")
@click.option("--archive", "archives", multiple=True, metavar="FILE|SHA256",
              help="Erase only the entries written or reused for this input file (by its content, or the sha256 "
                   "that run.json records under options.inputs); repeatable. Default: the whole store.")
def cache_erase(folder, archives):
    """Erase a result store, or one input file's entries in it."""
    from radbatch.annotation.result_store import ResultStore, erase
    from radbatch.archive.fingerprint import hash_file
    path = _folder(folder)
    if not archives:
        removed = erase(path)
        click.echo(f"Erased the result store in {path} ({len(removed)} file(s) removed)")
        return
    store = ResultStore(path)
    for a in archives:
        if re.fullmatch(r"[0-9a-f]{64}", a):
            sha = a
        elif Path(a).is_file():
            sha = hash_file(a)
        else:
            store.close()
            raise click.UsageError(f"--archive {a}: not a file nor a sha256 (64 hex digits)")
        n = store.erase_archive(sha)
        click.echo(f"Erased {n} entries of {a} (sha256 {sha[:16]}...) from {path}")
    store.close()
