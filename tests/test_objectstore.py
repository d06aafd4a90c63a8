"""A store at an object-store URL (issue 14): the same answers as a local store, from a real S3
server on 127.0.0.1 (moto's server, started here on a free loopback port).

The inputs are genuine lab captures: the two-host lab (samples/lab/two-hosts/: connections
crossing a MASQUERADE gateway and a DNAT server), and a fleet replayed from it by
benchmarks/generate_fleet.py (as tests/test_fleet.py).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from logpath.cli import app

ROOT = Path(__file__).resolve().parent.parent
TWO_HOSTS = ROOT / "samples" / "lab" / "two-hosts"
LAB_FILES = sorted(str(p) for p in TWO_HOSTS.glob("*.log"))
# a TCP connection of the two-host lab: client behind hosta's MASQUERADE, hostb's DNAT
LAB_FLOW = "cf74acb096-34562"
BUCKET = "logpath-test"
runner = CliRunner()

pytestmark = pytest.mark.skipif(
    shutil.which("moto_server", path=str(Path(sys.executable).parent)) is None
    or importlib.util.find_spec("boto3") is None,
    reason="moto's server is not installed (pip install -e '.[test]')",
)
needs_dask = pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None,
    reason="dask is not installed (pip install -e '.[test,dask]')",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """moto's S3 server on a free port of 127.0.0.1 with one bucket; the environment that
    points pyarrow and boto3 at it (fake keys: moto takes any)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.stderr
    return result


def report_files(out: Path, store: str) -> dict[str, str]:
    """A report's files by name, the store's name and the time it was made left out (the only
    things two reports of the same connections may differ in: tests/test_fleet.py)."""
    files = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8").replace(store, "STORE")
        files[str(path.relative_to(out))] = re.sub(r"Generated [^ ]+ from", "Generated", text)
    return files


def objects(prefix: str) -> list[str]:
    import boto3

    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"][len(prefix) :] for o in listed.get("Contents", []))


def answers(store: str, flow: str, *scheduler: str) -> list[str]:
    """What flows, journey and hops print of the store, as JSON."""
    return [
        run("flows", "--store", store, "--all", "--json", *scheduler).stdout,
        run("journey", flow, "--store", store, "--json", *scheduler).stdout,
        run("hops", "--store", store, "--json").stdout,
    ]


def test_the_lab_in_s3_answers_as_a_local_store(s3: dict[str, str], tmp_path: Path) -> None:
    here, there = str(tmp_path / "here"), f"s3://{BUCKET}/lab/store"
    first, second = LAB_FILES[:1], LAB_FILES
    for inputs in (first, second):  # the second run adds a host: an incremental ingest
        ingested = run("ingest", *inputs, "--store", here, "--json")
        assert run("ingest", *inputs, "--store", there, "--json").stdout == ingested.stdout
    assert json.loads(ingested.stdout)["hops"] > 0
    assert answers(there, LAB_FLOW) == answers(here, LAB_FLOW)
    journey = json.loads(run("journey", LAB_FLOW, "--store", there, "--json").stdout)
    assert journey  # the crossing connection is found in the store in S3
    run("report", "--store", here, "-o", str(tmp_path / "r-here"))
    run("report", "--store", there, "-o", str(tmp_path / "r-there"))
    expected = report_files(tmp_path / "r-here", here)
    assert report_files(tmp_path / "r-there", there) == expected
    assert f"flows/{LAB_FLOW}.html" in expected
    # the store's objects: parts under new names, one manifest, no lock left behind
    stored = objects("lab/store/")
    assert "manifest.json" in stored and "lock" not in stored
    assert sum(name.startswith("hops/") for name in stored) == 2
    manifest = json.loads(Path(here, "manifest.json").read_text())
    assert len(manifest["parts"]) == 2
    # $LOGPATH_STORE may name the store by its URL too
    by_env = run("flows", "--all", "--json", env={"LOGPATH_STORE": there}).stdout
    assert by_env == answers(here, LAB_FLOW)[0]


def test_a_second_writer_is_refused_by_the_lock_object(s3: dict[str, str]) -> None:
    import boto3

    client = boto3.client("s3")
    client.put_object(Bucket=BUCKET, Key="locked/store/lock", Body=b"logpath ingest (pid 1)")
    result = runner.invoke(app, ["ingest", LAB_FILES[0], "--store", f"s3://{BUCKET}/locked/store"])
    assert result.exit_code == 4, result.stderr
    assert "being written by logpath ingest (pid 1)" in result.stderr
    assert f"delete s3://{BUCKET}/locked/store/lock" in result.stderr
    assert objects("locked/store/") == ["lock"]  # nothing was written


def test_two_writers_at_once_one_is_refused(s3: dict[str, str]) -> None:
    """Both may find no lock object; the conditional PUT lets only one create it (what the
    lock rests on: moto implements If-None-Match as S3 does). Threads, released together."""
    import threading

    from logpath.errors import StoreLockedError
    from logpath.objectstore import StoreURL, locked

    root = StoreURL.parse(f"s3://{BUCKET}/race/store")
    start, held = threading.Barrier(8), threading.Event()
    outcomes: list[str] = []

    def writer(n: int) -> None:
        start.wait()
        try:
            with locked(root, f"writer {n}"):
                outcomes.append("locked")
                held.wait(10)  # hold it until every other writer has tried
        except StoreLockedError as error:
            outcomes.append("refused" if "being written by writer" in str(error) else "?")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for _ in range(200):
        if len(outcomes) == 8:
            break
        time.sleep(0.05)
    held.set()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["locked"] + ["refused"] * 7
    assert objects("race/store/") == []  # the lock is deleted when its writer is done


def test_an_unreachable_or_missing_bucket_is_one_line_naming_the_url(
    s3: dict[str, str], tmp_path: Path
) -> None:
    missing = "s3://no-such-bucket-here/store"
    result = runner.invoke(app, ["ingest", LAB_FILES[0], "--store", missing])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"logpath: {missing}")
    assert "Traceback" not in result.stderr
    result = runner.invoke(app, ["flows", "--all", "--store", "s3://"])
    assert (result.exit_code, result.stderr) == (
        1,
        "logpath: s3://: not a store logpath can open (no bucket: s3://BUCKET/PREFIX)\n",
    )
    port = _free_port()  # nothing listens there
    result = runner.invoke(
        app,
        ["flows", "--all", "--store", f"s3://{BUCKET}/store"],
        env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"},
    )
    assert result.exit_code == 1
    assert result.stderr.startswith(f"logpath: s3://{BUCKET}/store")
    assert "cannot be reached" in result.stderr and "Traceback" not in result.stderr


@needs_dask
def test_the_fleet_in_s3_on_a_local_cluster_answers_as_here(
    s3: dict[str, str], fleet: list[str], tmp_path: Path
) -> None:
    here, there = str(tmp_path / "here"), f"s3://{BUCKET}/fleet/store"
    env = {"LOGPATH_WORKERS": "2"}
    for inputs in (fleet[:2], fleet):  # the second run: the other hosts, an incremental ingest
        ingested = run("ingest", *inputs, "--store", here, "--year", "2025", "--json")
        on_cluster = run(
            "ingest", *inputs, "--store", there, "--year", "2025", "--json",
            "--scheduler", "local", env=env,
        )  # fmt: skip
        assert on_cluster.stdout == ingested.stdout
    flows = run("flows", "--store", here, "--all", "--json").stdout
    assert run("flows", "--store", there, "--all", "--json").stdout == flows
    crossing = next(f["id"] for f in json.loads(flows) if len(f["hosts"]) > 1)
    assert answers(there, crossing, "--scheduler", "local") == answers(here, crossing)
    # the workers wrote the hop parts themselves: the committer names them, one per block
    # that had hops, numbered in the inputs' order within each run
    manifest = json.loads(read_object("fleet/store/manifest.json"))
    parts = manifest["parts"]
    assert all(re.fullmatch(r"hops-[0-9a-f]{12}-\d{6}\.parquet", p) for p in parts), parts
    assert len({p[:17] for p in parts}) == 2  # two runs
    assert objects("fleet/store/hops/") == sorted(parts)  # nothing left over
    assert len(json.loads(Path(here, "manifest.json").read_text())["parts"]) == 2


def read_object(key: str) -> bytes:
    import boto3

    body: bytes = boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return body


def test_without_boto3_an_s3_store_is_written_unlocked_and_says_so(
    s3: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 now fails
    result = runner.invoke(app, ["ingest", LAB_FILES[0], "--store", f"s3://{BUCKET}/open/store"])
    assert result.exit_code == 0, result.stderr
    assert f"logpath: s3://{BUCKET}/open/store: not locked" in result.stderr
    assert "run one writer at a time yourself" in result.stderr
    monkeypatch.undo()
    assert "manifest.json" in objects("open/store/")


def test_a_part_cut_short_in_the_bucket_is_named_by_its_url(s3: dict[str, str]) -> None:
    import boto3

    store = f"s3://{BUCKET}/cut/store"
    run("ingest", LAB_FILES[0], "--store", store)
    part = next(name for name in objects("cut/store/") if name.startswith("hops/"))
    client = boto3.client("s3")
    whole = read_object(f"cut/store/{part}")
    client.put_object(Bucket=BUCKET, Key=f"cut/store/{part}", Body=whole[: len(whole) // 2])
    result = runner.invoke(app, ["hops", "--store", store, "--json"])
    assert result.exit_code == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"logpath: {store}/{part}: this part of the store is damaged"), first
    assert "Traceback" not in result.stderr
