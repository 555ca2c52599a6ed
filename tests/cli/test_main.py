"""The ``qfarm`` command as users run it: a real process, a real embedded cluster."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from qfarm import __version__
from tests.helpers import gone, wait_until_sync

pytestmark = pytest.mark.integration

QFARM = [sys.executable, "-m", "qfarm"]


def qfarm(
    *args: str, data_dir: Path, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QFARM_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    return subprocess.run(
        [*QFARM, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


def test_version(tmp_path: Path) -> None:
    result = qfarm("--version", data_dir=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"qfarm {__version__}"


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"]])
def test_help_has_examples(tmp_path: Path, args: list[str]) -> None:
    result = qfarm(*args, data_dir=tmp_path)
    assert result.returncode == 0
    assert "qfarm run --frames" in result.stdout


def help_example(args: list[str], starting: str, data_dir: Path) -> list[str]:
    """The arguments of the example in ``qfarm ARGS --help`` whose line starts so."""
    shown = qfarm(*args, "--help", data_dir=data_dir).stdout
    [line] = [ln.strip() for ln in shown.splitlines() if ln.strip().startswith(starting)]
    return shlex.split(line)[1:]


@pytest.mark.parametrize("args", [[], ["run"]])
def test_the_each_example_of_the_help_works_on_a_file_name_with_a_space(
    tmp_path: Path, args: list[str]
) -> None:
    example = help_example(args, "qfarm run --each", tmp_path / "data")
    (tmp_path / "my clip.mov").write_bytes(b"eleven byte")
    result = qfarm(*example, data_dir=tmp_path / "data", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "my clip.txt").read_text().strip() == "11"


def test_the_exit_codes_are_documented_in_the_help_as_defined(tmp_path: Path) -> None:
    from qfarm.cli.common import ExitCode

    result = qfarm("--help", data_dir=tmp_path)
    assert result.returncode == ExitCode.DONE
    shown = " ".join(result.stdout.split())
    assert "Exit codes: 0 done, 1 failed (or canceled), 2 usage error, 3 cannot reach" in shown
    assert [int(code) for code in ExitCode] == [0, 1, 2, 3, 4, 130]


def test_run_quick_start_succeeds(tmp_path: Path) -> None:
    result = qfarm(
        "run",
        "--frames",
        "1-100",
        "--segment-size",
        "10",
        "--",
        "sh",
        "-c",
        "echo rendering {start}-{end}",
        data_dir=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "10 done, 0 failed, 0 canceled of 10" in result.stderr
    assert "10 done of 10 segments" in result.stderr  # the progress bar's last state


def test_a_failed_runs_progress_bar_does_not_count_the_failure_as_done(tmp_path: Path) -> None:
    result = qfarm(
        "run", "--retries", "0", "--frames", "1-3", "--", "sh", "-c", "[ {start} -ne 2 ]",
        data_dir=tmp_path, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "2 done · 1 failed of 3 segments" in result.stderr


def test_follow_streams_every_segments_output_on_stdout_prefixed(tmp_path: Path) -> None:
    result = qfarm(
        "run", "-v", "--frames", "1-3", "--", "sh", "-c",
        "echo start {start}; echo end {start}; printf 'no newline {start}'",
        data_dir=tmp_path, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for segment in (1, 2, 3):
        mine = [line for line in lines if line.startswith(f"[{segment}] ")]
        assert mine == [
            f"[{segment}] start {segment}",
            f"[{segment}] end {segment}",
            f"[{segment}] no newline {segment}",
        ]
    assert "3 done of 3 segments" in result.stderr  # the bar, on stderr as ever

    as_json = qfarm(
        "run", "--follow", "--json", "--", "echo", "hi", data_dir=tmp_path, cwd=tmp_path
    )  # fmt: skip
    assert json.loads(as_json.stdout)["state"] == "done"  # nothing else on stdout


def test_the_run_summary_says_what_each_job_does(tmp_path: Path) -> None:
    result = qfarm(
        "run", "--frames", "1-5", "--segment-size", "2", "--", "sh", "-c", "echo {start}",
        data_dir=tmp_path, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "job 1: 3 segments of up to 2 frames (5 frames: 1-5)" in result.stderr
    assert "job 1: runs: sh -c 'echo {start}'" in result.stderr
    as_json = qfarm("run", "--json", "--name", "one", "--", "true", data_dir=tmp_path)
    assert json.loads(as_json.stdout)["jobs"] == [
        {"name": "one", "summary": ["1 segment: the whole job", "runs: true"]}
    ]


def test_a_job_type_without_describe_has_no_summary() -> None:
    from qfarm.jobtypes import job_summary

    assert job_summary("no-such-type", {"command": ["true"]}) == []


def test_run_json_reports_the_outcome(tmp_path: Path) -> None:
    result = qfarm(
        "run", "--json", "--frames", "1-4", "--", "true", data_dir=tmp_path, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["state"] == "done"
    assert report["segments"] == {"total": 4, "done": 4, "failed": 0, "canceled": 0}
    assert report["failed"] == []


def test_run_failure_names_segment_node_and_log_tail(tmp_path: Path) -> None:
    result = qfarm(
        "run",
        "--frames",
        "1-3",
        "--retries",
        "1",
        "--",
        "sh",
        "-c",
        "echo checking frame {frame}; [ {frame} -ne 2 ] || {{ echo frame 2 is broken; exit 7; }}",
        data_dir=tmp_path,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "segment 2 (frames 2) failed on local-" in result.stderr
    assert "after 2 attempt(s): command sh exited with code 7" in result.stderr
    assert "frame 2 is broken" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--frames", "1-x", "--", "true"], "malformed frame range '1-x'"),
        (["--frames", "1-4", "--", "echo", "{colour}"], "unknown placeholder {colour}"),
        (["--each", "nothing/*.mov", "--", "echo", "{input}"], "matches no file"),
        (["--frames", "1-4"], "no command given"),
        (["--frames", "1-4", "--segment-size", "0", "--", "true"], "--segment-size must be"),
        (["--priority", "urgent", "--", "true"], "priority 'urgent'"),
        (["--env", "NOEQUALS", "--", "true"], "--env 'NOEQUALS' is not NAME=VALUE"),
        (["--preflight", "echo 'unclosed", "--", "true"], "--preflight"),
        (["--db", "nonsense://x", "--", "true"], "cannot use database URL 'nonsense://x'"),
        (["--db", "sqlite:////no/such/dir/q.db", "--", "true"], "cannot open database"),
        (["--retries", "-1", "--", "true"], "retries cannot be negative"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(tmp_path: Path, args: list[str], message: str) -> None:
    result = qfarm("run", *args, data_dir=tmp_path, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("qfarm: error:")
    assert message in lines[0]
    assert not list(tmp_path.glob("*.db")), "a bad job must not reach the store"


def test_interrupt_cancels_the_batch_and_ends_its_processes(tmp_path: Path) -> None:
    env = {**os.environ, "QFARM_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [
            *QFARM,
            "run",
            "-q",
            "--frames",
            "1-2",
            "--",
            "sh",
            "-c",
            "echo $$ > {start}.pid; sleep 300",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_sync(
            lambda: all(
                (tmp_path / f"{i}.pid").exists() and (tmp_path / f"{i}.pid").read_text()
                for i in (1, 2)
            ),
            timeout=60,
            what="both segments to start",
        )
        pids = [int((tmp_path / f"{i}.pid").read_text()) for i in (1, 2)]
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert all(gone(pid) for pid in pids)
    with sqlite3.connect(tmp_path / "runs.db") as db:
        [(state,)] = db.execute("select state from batches").fetchall()
    assert state == "canceled"


def test_user_text_with_brackets_is_printed_as_text(tmp_path: Path) -> None:
    # Square brackets are Rich markup; in names and file names they are plain text.
    result = qfarm(
        "run", "--name", "cp a[/b] [final]", "--retries", "0", "--",
        "sh", "-c", "echo '[bold]x[/]'; exit 3",
        data_dir=tmp_path, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "cp a[/b] [final]" in result.stderr
    assert "[bold]x[/]" in result.stderr


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[[jobs]]\ncommand = ["true"]\nenv = "A=1"', "env must be a table"),
        ('[[jobs]]\ncommand = ["true"]\nok_exit = 1', "ok_exit must be a list"),
        ("[[jobs]]\ncommand = 5", "command must be a list"),
        ('[[jobs]]\ncommand = ["true"]\neach = 5', "each must be a list"),
        ('priority = 7.5\n[[jobs]]\ncommand = ["true"]', "priority 7.5"),
    ],
)
def test_wrong_types_in_a_batch_file_are_usage_errors(
    tmp_path: Path, toml: str, message: str
) -> None:
    (tmp_path / "b.toml").write_text(toml)
    result = qfarm("run", "b.toml", data_dir=tmp_path, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("qfarm: error: ") and message in result.stderr


def count_runs(path: Path) -> dict[str, int]:
    """How many times each segment ran: each run appends its first frame to the file."""
    counts: dict[str, int] = {}
    for line in path.read_text().split():
        counts[line] = counts.get(line, 0) + 1
    return counts


def done_segments(data_dir: Path) -> int:
    if not (data_dir / "runs.db").exists():
        return 0
    try:
        with sqlite3.connect(data_dir / "runs.db") as db:
            [(count,)] = db.execute("select count(*) from segments where state = 'done'").fetchall()
    except sqlite3.OperationalError:  # the run is making its tables right now
        return 0
    return int(count)


def start_half_done_run(tmp_path: Path, args: list[str]) -> subprocess.Popen[str]:
    """`qfarm run ARGS` in a session of its own (so a signal can go to its whole process
    group, as a terminal's Ctrl-C does), returned once frames 1 and 2 are done and 3 and 4
    are running: the scripts of these tests wait for a file `go` past frame 2."""
    env = {**os.environ, "QFARM_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    proc = subprocess.Popen(
        [*QFARM, *args], cwd=tmp_path, env=env, text=True, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_until_sync(
            lambda: (
                (tmp_path / "runs.txt").exists()
                and len((tmp_path / "runs.txt").read_text().split()) == 4
                and done_segments(tmp_path) == 2
            ),
            timeout=60,
            what="two segments done and two running",
        )
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return proc


def test_ctrl_c_prints_one_line_and_the_same_command_resumes(tmp_path: Path) -> None:
    # Frames 1 and 2 end at once; 3 and 4 wait until the file `go` exists.
    args = ["run", "-q", "--frames", "1-4", "--", "sh", "-c",
            "echo {start} >> runs.txt; [ -e go ] || [ {start} -le 2 ] || sleep 300"]  # fmt: skip
    proc = start_half_done_run(tmp_path, args)
    try:
        os.killpg(proc.pid, signal.SIGINT)  # the worker processes get it too
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr + stdout
    assert stderr.strip().splitlines() == [
        "interrupted: batch 1 stopped; run the same command again to resume it "
        "(Ctrl-C again to leave now)"
    ]

    (tmp_path / "go").touch()
    again = qfarm(*args, data_dir=tmp_path, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "resuming batch 1: 2 of 4 segments already done" in again.stderr
    # Done segments ran once; the two that were interrupted ran again.
    assert count_runs(tmp_path / "runs.txt") == {"1": 1, "2": 1, "3": 2, "4": 2}


def test_a_failed_run_resumes_its_newest_batch_and_fresh_starts_over(tmp_path: Path) -> None:
    args = ["run", "-q", "--retries", "0", "--frames", "1-3", "--", "sh", "-c",
            "echo {start} >> runs.txt; [ -e fixed ] || [ {start} -ne 2 ]"]  # fmt: skip
    first = qfarm(*args, data_dir=tmp_path, cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    fresh = qfarm("run", "--fresh", *args[1:], data_dir=tmp_path, cwd=tmp_path)
    assert fresh.returncode == 1, fresh.stderr
    assert "resuming" not in fresh.stderr
    assert count_runs(tmp_path / "runs.txt") == {"1": 2, "2": 2, "3": 2}

    (tmp_path / "fixed").touch()
    resumed = qfarm(*args, data_dir=tmp_path, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming batch 2: 2 of 3 segments already done" in resumed.stderr
    assert count_runs(tmp_path / "runs.txt") == {"1": 2, "2": 3, "3": 2}

    # A batch that ended done is not resumed: the same command runs it all again.
    done_again = qfarm(*args, data_dir=tmp_path, cwd=tmp_path)
    assert done_again.returncode == 0, done_again.stderr
    assert "resuming" not in done_again.stderr
    assert count_runs(tmp_path / "runs.txt") == {"1": 3, "2": 4, "3": 3}


def test_another_command_is_not_resumed(tmp_path: Path) -> None:
    failing = qfarm("run", "-q", "--retries", "0", "--", "false", data_dir=tmp_path, cwd=tmp_path)
    assert failing.returncode == 1
    other = qfarm("run", "-q", "--", "true", data_dir=tmp_path, cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    assert "resuming" not in other.stderr


def test_a_word_that_is_neither_a_job_type_nor_a_program_is_a_usage_error(
    tmp_path: Path,
) -> None:
    result = qfarm("run", "movie", "--help", data_dir=tmp_path, cwd=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("qfarm: error: 'movie' is neither a job type (render, transcode)")
    assert "nor a program on PATH" in line
    assert not (tmp_path / "runs.db").exists(), "nothing may start"


def test_no_library_warning_reaches_the_terminal_while_port_8787_is_taken(
    tmp_path: Path,
) -> None:
    # Dask's default dashboard port, taken here unless something else already holds it
    # (which makes the same point).
    with contextlib.ExitStack() as stack:
        with contextlib.suppress(OSError):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 8787))
            sock.listen()
        result = qfarm("run", "--frames", "1-2", "--", "true", data_dir=tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "arning" not in result.stderr, result.stderr
    assert "8787" not in result.stderr + result.stdout
    # Nor in the log: the embedded scheduler no longer asks for Dask's dashboard port.
    assert "8787" not in (tmp_path / "logs" / "engine.log").read_text()


def attempts_by_segment(data_dir: Path) -> dict[str, tuple[str, int]]:
    with sqlite3.connect(data_dir / "runs.db") as db:
        rows = db.execute(
            "select s.label, s.state, count(a.id) from segments s"
            " left join attempts a on a.segment_id = s.id group by s.id"
        ).fetchall()
    return {label: (state, count) for label, state, count in rows}


def test_an_interrupted_transcode_resumes_with_the_chunks_it_had(tmp_path: Path) -> None:
    import imageio_ffmpeg

    source = tmp_path / "src.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
         "testsrc2=size=320x240:rate=25:duration=30", "-f", "lavfi", "-i", "sine=duration=30",
         "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(source)],
        check=True,
    )  # fmt: skip
    args = ["run", "transcode", "-q", str(source), "-p", "h264", "-o", str(tmp_path / "out")]
    env = {**os.environ, "QFARM_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "200"}
    proc = subprocess.Popen(
        [*QFARM, *args], cwd=tmp_path, env=env, text=True, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_until_sync(
            lambda: done_segments(tmp_path / "data") >= 1, timeout=120, what="a chunk done"
        )
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, stderr
    before = attempts_by_segment(tmp_path / "data")
    kept = {label for label, (state, _) in before.items() if state == "done"}
    assert kept and len(kept) < len(before)

    again = qfarm(*args, data_dir=tmp_path / "data", cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resuming batch 1: {len(kept)} of {len(before)} segments already done" in again.stderr
    after = attempts_by_segment(tmp_path / "data")
    # Done chunks were not made again: one attempt each, and the assembly used them.
    assert all(after[label] == ("done", 1) for label in kept)
    assert all(state == "done" for state, _ in after.values())
    assert (tmp_path / "out" / "src-h264.mp4").stat().st_size > 0


def test_a_killed_run_resumes_and_its_leftover_processes_are_ended(tmp_path: Path) -> None:
    args = ["run", "-q", "--frames", "1-4", "--", "sh", "-c",
            "echo $$ > {start}.pid; echo {start} >> runs.txt;"
            " [ -e go ] || [ {start} -le 2 ] || sleep 300"]  # fmt: skip
    proc = start_half_done_run(tmp_path, args)
    try:
        left = [int((tmp_path / f"{i}.pid").read_text()) for i in (3, 4)]
        proc.kill()  # kill -9 of `qfarm run` alone: no handler of its runs
        proc.communicate(timeout=60)
        # Its segment processes live in sessions of their own and outlive it.
        assert not any(gone(pid) for pid in left)

        (tmp_path / "go").touch()
        again = qfarm(*args, data_dir=tmp_path, cwd=tmp_path)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert again.returncode == 0, again.stderr
    assert "resuming batch 1: 2 of 4 segments already done" in again.stderr
    assert all(gone(pid) for pid in left), "the killed run's segments were ended"
    assert count_runs(tmp_path / "runs.txt") == {"1": 1, "2": 1, "3": 2, "4": 2}
