"""Bad input and access: the API fuzzed from its own OpenAPI schema, paths that try to leave
cluster storage, job fields that try to reach a shell, broken media and batch files, and a
very large job. Real processes where the subject is one; rows go to the reliability record.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.controller.test_cluster import start_controller, stop
from tests.controller.test_reliability import record

pytestmark = pytest.mark.integration

QFARM = [sys.executable, "-m", "qfarm"]


@pytest.fixture(scope="module")
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("security")
    proc, url = start_controller(root)
    try:
        yield url, root
    finally:
        stop(proc)


# ------------------------------------------------------------------ the API, fuzzed

schemathesis = pytest.importorskip("schemathesis")


def test_the_api_answers_every_request_without_a_server_error(
    controller: tuple[str, Path],
) -> None:
    """Schemathesis makes requests from the API's own OpenAPI schema, valid and not: never
    a 5xx, and every error is JSON with a one-line message."""
    from hypothesis import HealthCheck, given, settings

    url, _ = controller
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    # Event streams never end by themselves; uploads stream files: both tested elsewhere.
    schema = schema.exclude(path_regex=r"(events|follow|uploads|outputs)")
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=40, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            nonlocal calls
            calls += 1
            response = case.call(base_url=url, timeout=30)
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, (where, response.text[:300])
            if response.status_code >= 400:
                kind = response.headers.get("content-type") or [""]
                kind = kind[0] if isinstance(kind, list) else kind
                assert kind.startswith("application/json"), (where, kind)
                message = response.json().get("error")
                assert isinstance(message, str) and message and "\n" not in message, where

        check()
    assert calls > 100
    record("the HTTP API fuzzed from its OpenAPI schema (schemathesis)",
           f"{calls} generated requests: no 5xx; every error a 4xx with a JSON message",
           None, "nothing")  # fmt: skip


# ------------------------------------------------------------------ cluster storage paths


def test_storage_paths_stay_inside_their_folder(controller: tuple[str, Path]) -> None:
    url, root = controller
    upload = httpx.post(url + "/api/v1/uploads").json()["upload"]
    folder = root / "controller" / "storage" / "uploads" / upload
    (folder / "leak").symlink_to("/etc/hostname")
    attempts = {
        "../../../../etc/hostname": "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/hostname",
        "/etc/hostname (absolute)": "%2Fetc%2Fhostname",
        "a link to /etc/hostname": "leak",
    }
    for what, rel in attempts.items():
        response = httpx.get(f"{url}/api/v1/uploads/{upload}/files/{rel}")
        assert response.status_code in (400, 404), (what, response.status_code)
        assert "error" in response.json()
    put = httpx.put(f"{url}/api/v1/uploads/{upload}/files/%2e%2e/escape.txt", content=b"x")
    assert put.status_code == 400 and not (folder.parent / "escape.txt").exists()
    assert httpx.get(f"{url}/api/v1/uploads/{upload}/files").json() == []  # the link is hidden
    record("cluster-storage paths with .., absolute paths, a symbolic link out",
           "refused with 400/404 and a JSON message; nothing read or written outside",
           None, "nothing")  # fmt: skip


# ------------------------------------------------------------------ no shell


def test_job_fields_never_reach_a_shell(tmp_path: Path) -> None:
    """A file name full of shell syntax fills one argument: nothing is run from it."""
    nasty = tmp_path / "clip; touch pwned $(touch pwned2) `touch pwned3`.txt"
    nasty.write_text("harmless\n")
    result = subprocess.run(
        [*QFARM, "run", "--data-dir", str(tmp_path / "data"), "--each", "*.txt", "-o",
         "out/{segment}.txt", "--", "cp", "{input}", "{output}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "1.txt").read_text() == "harmless\n"
    assert not list(tmp_path.glob("pwned*"))
    record("a file name with ; $( ) and backquotes as a job's input",
           "passed as one argument; no command in it ran", None, "nothing")  # fmt: skip


# ------------------------------------------------------------------ broken input


def test_corrupt_and_truncated_media_are_refused_before_queueing(tmp_path: Path) -> None:
    from qfarm.media.tool import ffmpeg

    good = tmp_path / "good.mp4"
    subprocess.run(
        [ffmpeg().path, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=duration=2",
         "-c:v", "libx264", str(good)],
        check=True,
    )  # fmt: skip
    data = good.read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (tmp_path / "garbage.mov").write_bytes(os.urandom(4096))
    for name in ("truncated.mp4", "garbage.mov"):
        result = subprocess.run(
            [*QFARM, "run", "transcode", name, "-p", "h264", "--data-dir", str(tmp_path / "d")],
            capture_output=True, text=True, cwd=tmp_path, timeout=120,
        )  # fmt: skip
        assert result.returncode == 2, (name, result.stderr)
        assert name in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*-h264.mp4"))
    record(
        "a truncated MP4 and a file of random bytes as transcode sources",
        "usage error (exit 2) naming the file, before anything was queued",
        None,
        "nothing",
    )


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('priority = []\n[[jobs]]\ncommand = ["true"]\n', "priority"),
        ('jobs = "all of them"\n', "no jobs"),
        ('[[jobs]]\ncommand = ["true"]\nretries = "two"\n', "retries must be a whole number"),
        ('[[jobs]]\ncommand = ["true"]\ndepends_on = 3\n', "depends_on must be a list"),
        ('[[jobs]]\ncommand = "true"\n', "must be a list of arguments"),
        ('[[jobs]]\ntype = "transcode"\ninput = 5\npreset = "h264"\n', "needs an input file"),
        ("[[jobs]\n", "not valid TOML"),
    ],
)
def test_batch_files_with_wrong_types_are_usage_errors(
    tmp_path: Path, toml: str, message: str
) -> None:
    (tmp_path / "bad.toml").write_text(toml)
    result = subprocess.run(
        [*QFARM, "run", "--data-dir", str(tmp_path / "d"), "bad.toml"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# Plans and stores a job of 100,000 segments in a process of its own, and prints its peak
# resident memory before and after (MiB). In a child the peak is that work's alone, and
# nothing slows it: tracemalloc made the same work six times slower. The peak is VmHWM, the
# high-water mark of this program's own memory: getrusage's ru_maxrss also counts the
# parent's memory at the fork (Linux keeps the larger across exec), a pytest worker's.
BIG_JOB = """
import json, sys
from qfarm.controller.planning import plan_batch
from qfarm.domain.model import BatchRequest, JobRequest
from qfarm.store import Store

def peak_mib():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024  # kB

folder = sys.argv[1]
request = BatchRequest(jobs=(JobRequest("command", {"command": ["true"], "frames": "1-100000",
                                                    "cwd": folder}),))
store = Store(f"sqlite:///{folder}/big.db")
before = peak_mib()
batch_id = store.add_batch(request, plan_batch(request))
print(json.dumps({"total": store.counts(batch_id).total, "before": before, "peak": peak_mib()}))
store.close()
"""


def test_a_job_of_100000_segments_is_planned_and_stored_in_bounded_memory(
    tmp_path: Path,
) -> None:
    ran = subprocess.run(
        [sys.executable, "-c", BIG_JOB, str(tmp_path)], capture_output=True, text=True, timeout=240
    )
    assert ran.returncode == 0, ran.stderr
    found = json.loads(ran.stdout)
    assert found["total"] == 100_000
    assert found["peak"] < 400, f"planning and storing peaked at {found['peak']:.0f} MiB resident"
    record(
        "a job of 100,000 segments",
        f"planned and stored; peak resident memory {found['peak']:.0f} MiB, "
        f"{found['peak'] - found['before']:.0f} MiB of it for the job",
        None,
        "nothing",
    )
