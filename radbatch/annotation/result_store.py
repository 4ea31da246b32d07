"""The per-row result store (`--cache DIR`): each head's raw result for a row, keyed by everything that
determines it, so a rerun over a grown or changed archive decodes only what it has not seen.

Key (`KeyFacts.key`, one function for every caller): sha256 over
  * the request: the rendered prompt (every text the head reads for the row - report, sections, hypothesis,
    question, the prior report - in the profile's layout, with template/user-text flags), max_tokens, and
    whether per-token confidence was recorded;
  * the head: its recipe's sha256 and version, the sha256 of its grammar;
  * the model: weights and adapter sha256 (a rules member: the sha256 of its source), context size, chat
    template, thinking, the prompt profile (name, layout, system prompt);
  * the engine: the llama.cpp build (llama-cpp-python's version), greedy decoding settings, the engine kind and
    the batched engine's settings (RADBATCH_BATCHED).
The value is the engine's raw Completion (text, finish reason, token counts, confidence inputs), not parsed
columns: `rows.assemble` parses it as it parses a fresh one, so a parser fix applies to stored results and the
output is that of a run that decoded everything. Only finished results ("stop", "length") are stored; errors
are recomputed.

Safe and bounded: one SQLite file (WAL, one transaction per unit, written by the driver only, so there is one
writer per run; several runs may share a folder, SQLite serialises them), owner-only (0700 folder, 0600 files),
looked up by key on disk (memory stays at SQLite's page cache plus the units in flight, whatever the row count).
An entry carries a format tag, its own key and a checksum; one that fails any check is ignored, recomputed
and overwritten. Pruning and erasure (`radbatch cache prune|erase|info`) overwrite deleted content
(secure_delete) and truncate the WAL, docs/reliability.md "Result store".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from radbatch.engines.spec import Completion, Request
from radbatch.errors import InputError, StorageError

DB_NAME = "results.sqlite"
FORMAT = "radbatch-results-1"        # the schema and value encoding; another one is refused, never misread
MAGIC = b"RBR1"
CHECK_BYTES = 16
GREEDY = {"temperature": 0.0, "top_k": 1, "repeat_penalty": 1.0, "seed": 0}   # engine.LlamaEngine.complete
LOOKUP_CHUNK = 500                    # keys per SELECT (SQLite's bound-parameter limit is 32766 since 3.32)
STORED_FINISH = ("stop", "length")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (key BLOB PRIMARY KEY, value BLOB NOT NULL, used INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS results_used ON results (used);
CREATE TABLE IF NOT EXISTS archives (id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS origins (archive INTEGER NOT NULL, key BLOB NOT NULL, PRIMARY KEY (archive, key))
    WITHOUT ROWID;
"""


# ---------------------------------------------------------------------------------------------- the key

def _digest(obj) -> bytes:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).digest()


def llama_build() -> str:
    """The llama.cpp build: llama-cpp-python's version (it pins the llama.cpp commit), read without importing it."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("llama_cpp_python")
    except PackageNotFoundError:
        return "absent"


class KeyFacts:
    """What, besides the request, determines each head's result: one 32-byte digest per head slot."""

    def __init__(self, plan):
        # The run's own batched-engine settings (RADBATCH_BATCHED, read once at planning): batch make-up can move
        # a long generation at a near-tie, so results decoded under other settings are other keys.
        # kv_cells is left out: a stream's size does not change what it computes (engines/batched.py
        # _make_context; tests/test_batched.py), only which long reports become row errors, which are not stored.
        batched = {k: v for k, v in asdict(plan.settings.batch).items() if k != "kv_cells"}
        engine = {"kind": plan.opts.engine, "greedy": GREEDY, "llama_cpp": llama_build(),
                  "batched": batched if plan.opts.engine == "batched" else None}
        self.slot: dict[str, bytes] = {}
        for h in plan.heads:
            m = plan.head_models[h.key]
            self.slot[h.key] = _digest({
                "format": FORMAT, "task": h.recipe.id, "recipe_sha256": h.recipe.sha256,
                "recipe_version": h.recipe.version, "grammar_sha256": hashlib.sha256(h.grammar().encode()).hexdigest(),
                "model": plan.key_material["models"][m.name],
                "profile": asdict(plan.recipes.profiles[m.profile]) if m.profile in plan.recipes.profiles else None,
                "engine": None if m.is_rules else engine,   # the rules member runs no llama.cpp
            })

    def key(self, req: Request) -> bytes:
        return request_key(self.slot[req.slot], req)


def request_key(slot_digest: bytes, req: Request) -> bytes:
    """The store key of one request: sha256 of the head slot's facts and the request's own."""
    h = hashlib.sha256(slot_digest)
    h.update(f"|{req.max_tokens}|{int(req.confidence)}|{len(req.prompt.parts)}".encode())
    for text, is_template in req.prompt.parts:
        data = text.encode("utf-8", "surrogatepass")
        h.update(b"T" if is_template else b"U")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.digest()


# ------------------------------------------------------------------------------------------- the values

def encode(key: bytes, comp: Completion) -> bytes:
    payload = json.dumps({"key": key.hex(), "text": comp.text, "finish": comp.finish,
                          "prompt_tokens": comp.prompt_tokens, "generated_tokens": comp.generated_tokens,
                          "steps": comp.steps, "confidence": comp.confidence},
                         ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    return MAGIC + hashlib.sha256(payload).digest()[:CHECK_BYTES] + payload


def decode(key: bytes, value) -> Completion | None:
    """The stored Completion, or None when the entry fails a check (format, checksum, key, shape)."""
    try:
        value = bytes(value)
        head, check, payload = value[:4], value[4:4 + CHECK_BYTES], value[4 + CHECK_BYTES:]
        if head != MAGIC or hashlib.sha256(payload).digest()[:CHECK_BYTES] != check:
            return None
        d = json.loads(payload.decode("utf-8", "surrogatepass"))
        if d.get("key") != key.hex() or d.get("finish") not in STORED_FINISH or not isinstance(d.get("text"), str):
            return None
        steps = d.get("steps")
        steps = tuple((int(a), int(b), float(p)) for a, b, p in steps) if steps is not None else None
        conf = d.get("confidence")
        if conf is not None and not isinstance(conf, dict):
            return None
        return Completion(d["text"], d["finish"], "", int(d["prompt_tokens"]), int(d["generated_tokens"]), steps,
                          conf)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


# -------------------------------------------------------------------------------------------- the store

class ResultStore:
    """One SQLite file in an owner-only folder. Each method is one transaction."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / DB_NAME
        self.rejected = 0   # entries that failed a check (ignored and recomputed)
        try:
            self._open_files()
            self.db = sqlite3.connect(self.path, timeout=120, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")   # WAL: atomic and consistent; a power cut may lose the
            # last transactions, which are then recomputed. secure_delete: space freed by a replace, a page split
            # or a delete is zeroed, so no stale copy of a result outlives it (prune and erase rely on it).
            self.db.execute("PRAGMA secure_delete=ON")
            self.db.executescript(SCHEMA)
            self._check_format()
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"the result store {self.path} cannot be used ({exc}). Erase it with `radbatch cache "
                               f"erase {self.folder}` (it is only a cache) or pass another --cache.") from None
        except OSError as exc:
            raise StorageError(f"cannot open the result store in {self.folder}: {exc.strerror or exc}. Pass a "
                               "writable --cache folder.") from None

    def _open_files(self) -> None:
        from radbatch.archive.private_files import FILE_MODE, private_dirs
        private_dirs(self.folder)
        mode = self.folder.stat().st_mode & 0o777
        if mode & 0o077:
            raise InputError(f"the --cache folder {self.folder} is open to other users (mode {mode:o}) and the "
                             f"store holds generated text about patients: chmod 700 {self.folder}, or pass a new "
                             "folder (radbatch creates it owner-only).")
        # SQLite gives its -wal and -shm files the database file's mode: create that file 0600 first.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE))
        for p in self.folder.glob(DB_NAME + "*"):
            os.chmod(p, FILE_MODE)

    def _check_format(self) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE name='format'").fetchone()
        if row is None:
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (FORMAT,))
            row = self.db.execute("SELECT value FROM meta WHERE name='format'").fetchone()
        if row[0] != FORMAT:
            raise StorageError(f"the result store {self.path} has format {row[0]!r}, this radbatch writes "
                               f"{FORMAT!r}. Pass another --cache folder, or erase this one with `radbatch cache "
                               f"erase {self.folder}`.")

    def close(self) -> None:
        self.db.close()

    def get_many(self, keys: list[bytes]) -> dict[bytes, Completion]:
        """Stored results for these keys; entries that fail a check are left out (and counted)."""
        found: dict[bytes, Completion] = {}
        for i in range(0, len(keys), LOOKUP_CHUNK):
            chunk = keys[i:i + LOOKUP_CHUNK]
            rows = self.db.execute(f"SELECT key, value FROM results WHERE key IN ({','.join('?' * len(chunk))})",
                                   chunk).fetchall()
            for key, value in rows:
                comp = decode(bytes(key), value)
                if comp is None:
                    self.rejected += 1
                else:
                    found[bytes(key)] = comp
        return found

    def put_many(self, new: list[tuple[bytes, Completion]], used: list[bytes], archive: str | None) -> None:
        """Store new results and mark reused ones as used now; both recorded as coming from `archive` (the input
        file's sha256), so `erase --archive` finds them. One transaction."""
        now = int(time.time())
        with self._transaction():
            self.db.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?)",
                                [(k, encode(k, c), now) for k, c in new])
            self.db.executemany("UPDATE results SET used=? WHERE key=?", [(now, k) for k in used])
            if archive:
                aid = self._archive_id(archive)
                self.db.executemany("INSERT OR IGNORE INTO origins VALUES (?, ?)",
                                    [(aid, k) for k in [k for k, _ in new] + used])

    def _archive_id(self, sha256: str) -> int:
        self.db.execute("INSERT OR IGNORE INTO archives (sha256) VALUES (?)", (sha256,))
        return self.db.execute("SELECT id FROM archives WHERE sha256=?", (sha256,)).fetchone()[0]

    @contextlib.contextmanager
    def _transaction(self):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- maintenance (radbatch cache ...) ------------------------------------------------------------------

    def info(self) -> dict:
        q = self.db.execute
        size = sum(p.stat().st_size for p in self.folder.glob(DB_NAME + "*"))
        oldest, newest = q("SELECT min(used), max(used) FROM results").fetchone()
        return {"path": str(self.path), "format": FORMAT, "entries": q("SELECT count(*) FROM results").fetchone()[0],
                "archives": q("SELECT count(*) FROM archives").fetchone()[0], "bytes": size,
                "oldest_use": oldest, "newest_use": newest}

    def prune(self, older_than_s: float) -> int:
        """Delete entries not used (written or reused) for older_than_s seconds; returns how many."""
        cutoff = int(time.time() - older_than_s)
        return self._delete("DELETE FROM results WHERE used <= ?", (cutoff,))

    def erase_archive(self, sha256: str) -> int:
        """Delete every entry written or reused for the input file with this content sha256."""
        row = self.db.execute("SELECT id FROM archives WHERE sha256=?", (sha256,)).fetchone()
        if row is None:
            return 0
        n = self._delete("DELETE FROM results WHERE key IN (SELECT key FROM origins WHERE archive=?)", (row[0],))
        with self._transaction():
            self.db.execute("DELETE FROM archives WHERE id=?", (row[0],))
        return n

    def _delete(self, sql: str, args: tuple) -> int:
        """Delete, drop origins that point nowhere, overwrite the freed pages and empty the WAL, so erased text
        is not left in free pages or the log (secure_delete is on for every connection)."""
        with self._transaction():
            n = self.db.execute(sql, args).rowcount
            self.db.execute("DELETE FROM origins WHERE NOT EXISTS (SELECT 1 FROM results r WHERE r.key = "
                            "origins.key)")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return n


def erase(folder: str | os.PathLike) -> list[Path]:
    """Remove the whole store (the database and its WAL/shm files); the folder itself is left."""
    removed = []
    for p in sorted(Path(folder).glob(DB_NAME + "*")):
        p.unlink()
        removed.append(p)
    return removed


# ------------------------------------------------------------------------------------- the run's view

class RunCache:
    """An annotate run's use of the store: which of a unit's requests go to the engines, and the unit's full
    completions once they come back. Without --cache it only counts (every request is decoded).

    The local executor uses it on the driver. Under Ray each annotator holds its own (`for_annotator`), whose
    store is a StoreClient on the one StoreServer actor next to the driver's store, and counts into a
    CacheCounts that travels back with each unit."""

    def __init__(self, store, facts: "KeyFacts | None", archives: list[str], counts):
        """store: a ResultStore or StoreClient (get_many, put_many, rejected, path), or None; counts: anything
        with decoded_requests, reused_results, rejected_results and store_failed (RunSummary, CacheCounts)."""
        self.counts, self.store, self.facts, self.archives = counts, store, facts, archives
        self.inflight: dict[str, tuple] = {}
        self.broken = False

    @classmethod
    def open(cls, plan, summary) -> "RunCache":
        """The driver's view: opens (or refuses) the --cache store before anything is written."""
        if not plan.opts.cache:
            return cls(None, None, [], summary)
        store = ResultStore(plan.opts.cache)
        summary.cache = str(plan.opts.cache)
        return cls(store, KeyFacts(plan), [f["sha256"] for f in plan.key_material["inputs"]], summary)

    def for_annotator(self, server) -> "RunCache":
        """The same key facts for a Ray annotator, its store reached through `server` (a StoreServer handle;
        None without --cache), counting into its own CacheCounts."""
        return RunCache(StoreClient(server, self.store.path) if server is not None else None, self.facts,
                        self.archives, CacheCounts())

    def to_decode(self, work) -> list[Request]:
        """The unit's requests the store cannot answer (all of them without a store)."""
        if self.store is None or self.broken:
            self.counts.decoded_requests += len(work.requests)
            return work.requests
        keys = [self.facts.key(r) for r in work.requests]
        before = self.store.rejected
        try:
            found = self.store.get_many(keys)
        except sqlite3.DatabaseError as exc:
            self._broken("read", exc)
            found = {}
        self.counts.rejected_results += self.store.rejected - before
        missing = [i for i, k in enumerate(keys) if k not in found]
        self.inflight[work.unit_id] = (keys, found, missing)
        self.counts.decoded_requests += len(missing)
        self.counts.reused_results += len(found)
        return [work.requests[i] for i in missing]

    def completions(self, work, decoded: list | None) -> list | None:
        """Every request's completion in request order (stored ones in place); new results are stored. None (or
        None entries) where the unit failed: rows.assemble reports the failure on those heads."""
        entry = self.inflight.pop(work.unit_id, None)
        if entry is None:
            return decoded
        keys, found, missing = entry
        if not found:
            full = decoded
        else:
            full = [found.get(k) for k in keys]
            for i, comp in zip(missing, decoded or []):
                full[i] = comp
        new = [(keys[i], c) for i, c in zip(missing, decoded or []) if c is not None and c.finish in STORED_FINISH]
        if not self.broken:
            try:
                self.store.put_many(new, list(found), self.archives[work.file_index])
            except sqlite3.DatabaseError as exc:
                self._broken("write", exc)
        return full

    def _broken(self, what: str, exc: Exception) -> None:
        """A store that fails mid-run costs only time: warn once, go on without it."""
        print(f"radbatch: the result store {self.store.path} failed to {what} ({type(exc).__name__}: {exc}); "
              "going on without it (results are decoded)", file=sys.stderr, flush=True)
        self.broken = True
        self.counts.store_failed = True

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


@dataclass
class CacheCounts:
    """A Ray annotator's share of RunSummary's store counters, sent back with every unit (`take`) and added up on
    the driver, so a Ray run reports decoded and reused results as a local one does."""
    decoded_requests: int = 0
    reused_results: int = 0
    rejected_results: int = 0
    store_failed: bool = False

    def take(self) -> dict:
        """The counts since the last take (what this unit added); store_failed stays set."""
        out = {"decoded": self.decoded_requests, "reused": self.reused_results, "rejected": self.rejected_results,
               "store_failed": self.store_failed}
        self.decoded_requests = self.reused_results = self.rejected_results = 0
        return out


class StoreServer:
    """The Ray actor that owns the run's ResultStore: pinned to the driver's node (the --cache folder is the
    driver's), it answers the annotators' lookups and writes, one transaction at a time, so a Ray run, like a local
    one, has one writer. Keys are hashes; values are the engine's raw completions, which travel only inside the
    cluster, as the annotated parts do. A database error comes back as text (StoreClient raises it)."""

    def __init__(self, folder: str):
        self.store = ResultStore(folder)

    def get_many(self, keys: list[bytes]):
        before = self.store.rejected
        try:
            return self.store.get_many(keys), self.store.rejected - before, None
        except sqlite3.DatabaseError as exc:
            return {}, 0, f"{type(exc).__name__}: {exc}"

    def put_many(self, new, used, archive):
        try:
            self.store.put_many(new, used, archive)
        except sqlite3.DatabaseError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def close(self) -> None:
        self.store.close()


class StoreClient:
    """ResultStore's interface for RunCache, on a Ray annotator: each call is one round trip to the StoreServer."""

    def __init__(self, server, path: Path):
        self.server, self.path, self.rejected = server, path, 0

    def get_many(self, keys: list[bytes]) -> dict[bytes, Completion]:
        found, rejected, error = self._call(self.server.get_many, keys)
        if error:
            raise sqlite3.DatabaseError(error)
        self.rejected += rejected
        return found

    def put_many(self, new, used, archive) -> None:
        error = self._call(self.server.put_many, new, used, archive)
        if error:
            raise sqlite3.DatabaseError(error)

    @staticmethod
    def _call(method, *args):
        """A lost server is a failed store (RunCache goes on without it), not a failed unit."""
        import ray
        try:
            return ray.get(method.remote(*args))
        except ray.exceptions.RayError as exc:
            raise sqlite3.DatabaseError(f"the store's actor is gone ({type(exc).__name__})") from None

    def close(self) -> None:
        pass   # the driver closes the server
