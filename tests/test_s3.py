"""s3:// inputs and outputs against a real S3-compatible server (moto in server mode) that this module starts on
127.0.0.1, with real HTTP requests from real `radbatch annotate` processes (and a real local Ray for the Ray
executor). Credentials are dummy values in the environment, as a user's would be; the endpoint is given with
--s3-endpoint.

Archive: two Parquet objects and a CSV object under one prefix (20 rows, 3 files); m_staging on the embedded
LLM member, one worker of one thread; parts flushed per 8-row unit (RADBATCH_PART_ROWS=8).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer

from conftest import REPO

MARKER = "QZX7731"   # in every report: never in a message or log line
SECRET = "SENTINELsecretKEY9d41"   # the secret of a URI that carries credentials: must appear nowhere
BUCKET = "radbatch-test"
FAST = ["--tasks", "m_staging", "--model", "smollm2-ft-a", "--workers", "1", "--threads", "1", "-q"]
SHORT = ["CT CAP. Hepatic lesions, the largest {n} mm, compatible with metastases.",
         "CT chest. Solid nodule {n} mm in the right upper lobe. No adenopathy.",
         "PET-CT. Lytic lesion in L{k} with uptake. Impression: osseous metastasis.",
         "CT abdomen. No focal liver lesion. Adrenals normal. No metastatic disease."]
SIZES = {"a.parquet": 9, "b.parquet": 3, "c.csv": 8}   # 9 = a full unit and one row; 20 rows in all


def texts(n: int, first: int) -> list[str]:
    return [SHORT[i % 4].format(n=4 + i % 23, k=1 + i % 5) + f" Ref {MARKER}-{i:03d}." for i in
            range(first, first + n)]


@pytest.fixture(scope="module")
def server():
    s = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    s.start()
    host, port = s.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        s.stop()


@pytest.fixture(scope="module")
def env(server, tmp_path_factory):
    cache = tmp_path_factory.mktemp("s3cache")
    return {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, "PYTHONUNBUFFERED": "1",
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true",
            "RADBATCH_CACHE": str(cache), "RADBATCH_PART_ROWS": "8", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def fs(server, env):
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    s3 = pafs.S3FileSystem(endpoint_override=server, region="us-east-1", access_key="testing",
                           secret_key="testing", allow_bucket_creation=True)
    s3.create_dir(BUCKET)
    return s3


@pytest.fixture(scope="module")
def archive(fs) -> dict[str, pa.Table]:
    """s3://BUCKET/in/{a.parquet, b.parquet, c.csv}; also the local copies' tables, by name."""
    tables, first = {}, 0
    for name, n in SIZES.items():
        t = pa.table({"report_id": [f"{name[0]}{i:03d}" for i in range(n)], "report_text": texts(n, first)})
        first += n
        with fs.open_output_stream(f"{BUCKET}/in/{name}") as out:
            if name.endswith(".csv"):
                pacsv.write_csv(t, out)
            else:
                pq.write_table(t, out)
        tables[name] = t
    return tables


def cmd(server: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "radbatch", "annotate", *args, "--s3-endpoint", server, *FAST]


def run(server: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd(server, *args), capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert MARKER not in r.stdout + r.stderr and "Traceback" not in r.stderr, r.stderr[-3000:]
    return r


def read_object(fs, uri: str) -> pl.DataFrame:
    with fs.open_input_file(uri.removeprefix("s3://")) as fh:
        return pl.from_arrow(pq.read_table(fh))


def exists(fs, uri: str) -> bool:
    return fs.get_file_info(uri.removeprefix("s3://")).type == pafs.FileType.File


def work_dirs(env: dict) -> list[Path]:
    return sorted((Path(env["RADBATCH_CACHE"]) / "work").glob("*.radbatch"))


def computed(r: subprocess.CompletedProcess) -> int:
    return int(r.stdout.split("(")[1].split(" computed")[0])


@pytest.fixture(scope="module")
def reference(server, env, fs, archive):
    """The archive read from the bucket (a prefix: three objects) and written to the bucket as one object."""
    out = f"s3://{BUCKET}/out/all.parquet"
    r = run(server, env, f"s3://{BUCKET}/in/", "-o", out)
    assert r.returncode == 0, r.stderr
    assert f"Wrote 20 rows to {out} (20 computed this run)" in r.stdout, r.stdout
    return out, read_object(fs, out)


def test_reads_a_multi_file_archive_from_s3_and_writes_one_object(server, env, fs, archive, reference):
    out, df = reference
    assert df.height == 20
    assert df.group_by("source_file").len().sort("source_file").rows() == [
        (f"s3://{BUCKET}/in/{name}", n) for name, n in SIZES.items()]
    # Every row once, in input order, with the input's own ids and text.
    expected = pl.concat([pl.from_arrow(t).with_columns(source_row=pl.int_range(pl.len(), dtype=pl.Int64))
                          for t in archive.values()])
    assert df.select("report_id", "report_text", "source_row").equals(
        expected.select("report_id", "report_text", "source_row"))
    assert set(df["status"]) == {"ok"} and set(df["m_staging__status"]) == {"ok"}
    assert set(df["m_staging__stage"]) <= {"M0", "M1"}
    # Provenance: the inputs are known by URI and content hash; the work directory stayed local and private,
    # and a finished run keeps only run.json there.
    with fs.open_input_file(out.removeprefix("s3://")) as fh:
        meta = json.loads(pq.ParquetFile(fh).metadata.metadata[b"radbatch"])
    (work,) = work_dirs(env)
    assert stat.S_IMODE(work.stat().st_mode) == 0o700
    assert sorted(p.name for p in work.iterdir()) == ["run.json"]
    inputs = json.loads((work / "run.json").read_text())["material"]["inputs"]
    assert [i["path"] for i in inputs] == [f"s3://{BUCKET}/in/{n}" for n in SIZES]
    assert all(len(i["sha256"]) == 64 for i in inputs)
    assert meta["run_key"] == json.loads((work / "run.json").read_text())["run_key"]
    # Nothing but the output object was written to the bucket (no temp or marker objects).
    keys = sorted(i.path for i in fs.get_file_info(pafs.FileSelector(BUCKET, recursive=True))
                  if i.type == pafs.FileType.File)
    assert keys == [f"{BUCKET}/in/{n}" for n in sorted(SIZES)] + [f"{BUCKET}/out/all.parquet"]
    # The same command again: nothing to do (the run key is read back from the object's footer).
    again = run(server, env, f"s3://{BUCKET}/in/", "-o", out)
    assert again.returncode == 0 and again.stdout.startswith("Nothing to do:"), again.stdout
    # --retry-errors reopens the object (no row errored: nothing is recomputed) and puts the same rows back.
    retry = run(server, env, f"s3://{BUCKET}/in/", "-o", out, "--retry-errors")
    assert retry.returncode == 0 and "(0 computed this run)" in retry.stdout, retry.stdout
    assert read_object(fs, out).equals(df)


def test_glob_over_keys_and_the_python_api_read_the_object_back(server, env, fs, archive, reference):
    """A glob over keys picks the Parquet objects only; the API returns a LazyFrame over the output object."""
    out = f"s3://{BUCKET}/out/parquet-only.parquet"
    code = ("import os, radbatch\n"
            f"lf = radbatch.annotate('s3://{BUCKET}/in/*.parquet', {out!r}, s3_endpoint={server!r}, "
            "tasks='m_staging', model='smollm2-ft-a', workers=1, threads=1)\n"
            "df = lf.collect()\n"
            "print(df.height, sorted(set(df['source_file'])))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == f"12 ['s3://{BUCKET}/in/a.parquet', 's3://{BUCKET}/in/b.parquet']", r.stdout
    # The same rows as in the three-file run (the units are cut per file, so they are the same units).
    both = read_object(fs, out).drop("id_duplicated")
    ref = reference[1].filter(pl.col("source_file") != f"s3://{BUCKET}/in/c.csv").drop("id_duplicated")
    assert both.equals(ref)


def test_killed_run_leaves_no_object_and_resumes_rows_exactly_once(server, env, fs, archive, reference):
    out = f"s3://{BUCKET}/out/killed.parquet"
    before = set(work_dirs(env))
    proc = subprocess.Popen(cmd(server, f"s3://{BUCKET}/in/", "-o", out), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    parts: list[Path] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        new = set(work_dirs(env)) - before
        parts = sorted(p for w in new for p in (w / "parts").glob("part-*.parquet"))
        if parts:
            break
        time.sleep(0.01)
    assert parts and proc.poll() is None, "the run finished before a part was written"
    os.killpg(proc.pid, signal.SIGKILL)   # the CLI and its pool workers
    proc.wait(timeout=60)
    assert not exists(fs, out)   # the object appears only when the output is complete
    r = run(server, env, f"s3://{BUCKET}/in/", "-o", out)
    assert r.returncode == 0, r.stderr
    assert 0 < computed(r) < 20, r.stdout   # the killed run's parts were kept
    df = read_object(fs, out)
    assert df.height == 20 and df.select("source_file", "source_row").n_unique() == 20
    assert df.drop("id_duplicated").equals(reference[1].drop("id_duplicated"))


def test_ray_executor_reads_the_same_bucket(server, env, fs, archive, reference, tmp_path):
    pytest.importorskip("ray")   # an optional extra (radbatch[ray]), as in tests/test_ray.py
    out = f"s3://{BUCKET}/out/ray.parquet"
    home = tmp_path / "home"
    home.mkdir()
    r = run(server, {**env, "HOME": str(home)}, f"s3://{BUCKET}/in/", "-o", out, "--executor", "ray")
    assert r.returncode == 0, r.stderr[-3000:]
    df = read_object(fs, out)
    assert df.equals(reference[1])   # the local executor's output, row for row


def test_uri_with_credentials_is_refused_and_recorded_nowhere(server, env, fs, archive, tmp_path):
    cache = tmp_path / "cache"
    e = {**env, "RADBATCH_CACHE": str(cache)}
    bad_in = f"s3://AKIAEXAMPLE:{SECRET}@{BUCKET}/in/a.parquet"
    bad_out = f"s3://AKIAEXAMPLE:{SECRET}@{BUCKET}/out/secret.parquet"
    runs = [run(server, e, bad_in, "-o", str(tmp_path / "o.parquet")),
            run(server, e, f"s3://{BUCKET}/in/a.parquet", "-o", bad_out),
            run(server, e, bad_in, "-o", f"s3://{BUCKET}/out/secret.parquet")]
    for r in runs:
        assert r.returncode == 2, r.stderr
        assert "carries credentials" in r.stderr and "AWS_ACCESS_KEY_ID" in r.stderr, r.stderr
        assert SECRET not in r.stdout + r.stderr and "AKIAEXAMPLE" not in r.stderr
    # Nothing was written: no work directory, no staged or output file, no object.
    assert not cache.exists() or not any(SECRET.encode() in p.read_bytes() for p in cache.rglob("*") if p.is_file())
    assert not (tmp_path / "o.parquet").exists() and not Path(str(tmp_path / "o.parquet") + ".radbatch").exists()
    assert not any(SECRET in str(p) for p in tmp_path.rglob("*"))
    assert not exists(fs, f"s3://{BUCKET}/out/secret.parquet")
    for info in fs.get_file_info(pafs.FileSelector(BUCKET, recursive=True)):
        assert SECRET not in info.path
        if info.type == pafs.FileType.File:
            with fs.open_input_stream(info.path) as fh:
                assert SECRET.encode() not in fh.read()
    # The Python API refuses it the same way, before staging anything.
    from radbatch import annotate
    from radbatch.errors import InputError
    with pytest.raises(InputError) as caught:
        annotate(pa.table({"report_id": ["x"], "report_text": ["y"]}), bad_out)
    assert SECRET not in str(caught.value) and caught.value.exit_code == 2
    assert not any(SECRET in str(p) for p in Path.cwd().glob("s3*"))


def test_endpoint_with_credentials_or_another_scheme_is_refused(server, env, tmp_path):
    r = subprocess.run([sys.executable, "-m", "radbatch", "annotate", f"s3://{BUCKET}/in/a.parquet", "-o",
                        str(tmp_path / "o.parquet"), "--s3-endpoint", f"http://user:{SECRET}@127.0.0.1:1", *FAST],
                       capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert r.returncode == 2 and "--s3-endpoint carries credentials" in r.stderr and SECRET not in r.stderr
    r = subprocess.run([sys.executable, "-m", "radbatch", "annotate", "gs://bucket/a.parquet", "-o",
                        str(tmp_path / "o.parquet"), *FAST], capture_output=True, text=True, cwd=REPO, env=env,
                       timeout=120)
    assert r.returncode == 2 and "local paths and s3:// URIs, not gs://" in r.stderr, r.stderr


def test_missing_object_is_a_clear_error(server, env, fs, archive, tmp_path):
    r = run(server, env, f"s3://{BUCKET}/in/nope.parquet", "-o", str(tmp_path / "o.parquet"))
    assert r.returncode == 2 and f"input object not found: s3://{BUCKET}/in/nope.parquet" in r.stderr, r.stderr


def _objects(fs, prefix: str) -> list[str]:
    return sorted(i.path.rsplit("/", 1)[1] for i in fs.get_file_info(pafs.FileSelector(prefix, allow_not_found=True))
                  if i.type == pafs.FileType.File)


def test_prefix_output_writes_one_object_per_input_file_and_replaces_only_its_own(server, env, fs, archive,
                                                                                   reference):
    """-o s3://bucket/prefix/: one object per input file, named as in a local directory output, each uploaded
    once finished; a --restart run over fewer files removes the earlier run's objects it no longer writes, and
    leaves objects that are not radbatch outputs alone."""
    prefix = f"s3://{BUCKET}/per-file/"
    fs.create_dir(f"{BUCKET}/per-file")
    with fs.open_output_stream(f"{BUCKET}/per-file/00007-notes.parquet") as out:   # someone else's object
        pq.write_table(pa.table({"x": [1]}), out)
    r = run(server, env, f"s3://{BUCKET}/in/", "-o", prefix)
    assert r.returncode == 0, r.stderr
    names = ["00000-a.parquet", "00001-b.parquet", "00002-c.parquet"]
    assert _objects(fs, f"{BUCKET}/per-file") == names + ["00007-notes.parquet"]
    parts = [read_object(fs, prefix + n) for n in names]
    assert [p.height for p in parts] == list(SIZES.values())
    _, whole = reference
    assert pl.concat(parts).drop("id_duplicated").equals(whole.drop("id_duplicated"))
    again = run(server, env, f"s3://{BUCKET}/in/", "-o", prefix)
    assert again.returncode == 0 and again.stdout.startswith("Nothing to do:"), again.stdout

    fewer = run(server, env, f"s3://{BUCKET}/in/a.parquet", "-o", prefix, "--restart")
    assert fewer.returncode == 0, fewer.stderr
    assert _objects(fs, f"{BUCKET}/per-file") == ["00000-a.parquet", "00007-notes.parquet"]
    assert read_object(fs, prefix + "00000-a.parquet").equals(parts[0])


def test_no_region_look_up_when_an_endpoint_is_given(monkeypatch):
    """With an endpoint the region comes from AWS_REGION or is us-east-1: S3 is never asked where a bucket is
    (pyarrow's resolve_s3_region would go to AWS itself)."""
    from radbatch.archive import storage

    def no_look_up(bucket):
        raise AssertionError(f"region looked up for {bucket}")

    monkeypatch.setattr(pafs, "resolve_s3_region", no_look_up)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    before = storage.settings()
    try:
        assert storage.configure("http://127.0.0.1:9/") == storage.S3Settings("http://127.0.0.1:9", None)
        assert storage.filesystem("s3://some-bucket/key").region == "us-east-1"
        monkeypatch.setenv("AWS_REGION", "eu-west-3")
        monkeypatch.setenv("AWS_ENDPOINT_URL", "https://store.example:9000")
        assert storage.configure(None) == storage.S3Settings("https://store.example:9000", "eu-west-3")
        assert storage.filesystem("s3://some-bucket/key").region == "eu-west-3"
    finally:
        storage.use(before)
