"""The specification's conformance suite, run against qfarm: the "check" half through our
loader, the "run" half through ``qfarm openjd run`` on the embedded cluster.

Nothing of the suite is copied here: point ``QFARM_OPENJD_SPEC`` at an extracted checkout of
OpenJobDescription/openjd-specifications (``scripts/openjd-spec`` extracts one from a fetched
mirror). For each feature folder under ``conformance-tests/2023-09``:

* ``job_templates/*`` and ``env_templates/*``: ``check`` must find no problem, or at least one
  for a ``.invalid`` file;
* ``jobs/*.test.yaml``: the embedded template, ``parameters`` and ``environments`` must load
  into a plan; a ``.invalid.test.yaml`` passes when loading refuses it, and is skipped when
  loading accepts it, since what it expects to fail then happens when the job runs (the run
  half's to see). ``proposed/`` folders are proposals, not the suite.

The run half (``test_run``, integration) runs each ``jobs/*.test.yaml`` as a user would:
its template, ``parameters``, ``environments`` and ``pathMapping`` written to files, then
``python -m qfarm openjd run TEMPLATE -p file://... --env ... --path-map ...`` in a subprocess
with its own data folder. What the file expects is checked against the command's output, as the
suite's README describes its runner: every ``expected.output`` (and ``output_posix``) line is in
it, no ``forbidden`` one is, ``outputSequence`` chains appear in order, ``taskCount`` is the
number of task banners, ``taskFailure`` means the run failed (with the failing action's
``exitCode`` when given), and a ``.invalid.test.yaml`` must be refused (exit 2) or fail (exit 1),
for the reason its ``expectedError`` names when it has one. A run that expects no failure must
exit 0. ``runOn`` cases for other systems are skipped.

``KNOWN`` (check half) and ``KNOWN_RUN`` (run half) list each case we fail and why;
docs/openjd.md records them and the pass rates.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from qfarm.domain.errors import InvalidRequest
from qfarm.openjd import check, load_plan

ENV = "QFARM_OPENJD_SPEC"
# The suite's name for this system, as runOn lists it.
OS_NAME = "windows" if sys.platform == "win32" else "posix"

# "FEATURE/folder/file": why we fail it. Each is strict: a fix makes the test say so.
KNOWN: dict[str, str] = {}

# "FEATURE/jobs/file": why ``qfarm openjd run`` fails it. Strict as well.
KNOWN_RUN: dict[str, str] = {
    "WRAP_ACTIONS/jobs/wrap-openjd-env-task-grand-child-visible-next-task.test.yaml": (
        "openjd-sessions 0.14 drops an openjd_env line that a task's onRun (or the "
        "onWrapTaskRun hook standing in for it) prints, on purpose (its _session.py: 'a "
        "known divergence from openjd-rs', filed upstream), so task 2's WrappedAction."
        "Environment never holds TASK1_VAR, though both tasks run in one session here"
    ),
}

# How long one job test may take to run on the embedded cluster.
RUN_TIMEOUT_S = 180


def suite_root() -> Path | None:
    value = os.environ.get(ENV)
    if not value:
        return None
    root = Path(value)
    for candidate in (root / "conformance-tests" / "2023-09", root / "2023-09", root):
        kinds = ("job_templates", "env_templates", "jobs")
        if any(folder.name in kinds for folder in candidate.glob("*/*") if folder.is_dir()):
            return candidate
    return root


def cases(kinds: tuple[str, ...] = ("job_templates", "env_templates", "jobs")) -> list[Any]:
    root = suite_root()
    if root is None:
        return [pytest.param(None, id="suite", marks=pytest.mark.skip(reason=f"{ENV} is unset"))]
    known = KNOWN_RUN if kinds == ("jobs",) else KNOWN
    found = []
    for path in sorted(root.glob("*/*/*")):
        kind = path.parent.name
        if not path.is_file() or path.suffix not in (".yaml", ".yml", ".json"):
            continue
        if kind not in kinds:
            continue
        if kind == "jobs" and ".test." not in path.name:
            continue
        key = str(path.relative_to(root))
        marks = [pytest.mark.xfail(reason=known[key], strict=True)] if key in known else []
        found.append(pytest.param(path, id=key, marks=marks))
    if not found:
        reason = f"{ENV}={os.environ[ENV]} holds no conformance-tests/2023-09 cases"
        return [pytest.param(None, id="suite", marks=pytest.mark.skip(reason=reason))]
    return found


def _write(doc: Any, path: Path) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _chunks_as_expected(doc: dict[str, Any], plan: Any) -> None:
    """TASK_CHUNKING job tests print ``CHUNK:{{Task.Param.X}}`` per chunk; the chunks they
    expect must be exactly our segments (which are openjd-model's)."""
    expected = (doc.get("expected") or {}).get("output") or []
    if not expected or not all(str(line).startswith("CHUNK:") for line in expected):
        return
    [step] = plan.steps
    assert step.chunking is not None
    got = [f"CHUNK:{seg.value(step.chunking.parameter)}" for seg in step.segments]
    assert got == [str(line) for line in expected]


def _load_job_test(case: Path, tmp_path: Path) -> None:
    doc = yaml.safe_load(case.read_text())
    template = _write(doc["template"], tmp_path / "template.yaml")
    params = [f"{k}={v}" for k, v in (doc.get("parameters") or {}).items()]
    if doc.get("parameters"):
        params = [f"file://{_write(doc['parameters'], tmp_path / 'values.yaml')}"]
    envs = [
        _write(env, tmp_path / f"env{i}.yaml")
        for i, env in enumerate(doc.get("environments") or [])
    ]
    _chunks_as_expected(doc, load_plan(template, params, envs, cwd=tmp_path))


@pytest.mark.parametrize("case", cases())
def test_conformance(case: Path | None, tmp_path: Path) -> None:
    assert case is not None
    invalid = ".invalid." in case.name
    if case.parent.name == "jobs":
        try:
            _load_job_test(case, tmp_path)
        except InvalidRequest as exc:
            assert invalid, f"refused at load: {exc}"
            return
        run_on = yaml.safe_load(case.read_text()).get("runOn")
        if invalid and run_on is not None and OS_NAME not in run_on:
            # A Windows PATH default ("D:\\output", "a\\..\\b") is a plain relative name here.
            pytest.skip(f"accepted at load on {OS_NAME}; the case is for runOn {run_on}")
        if invalid:
            pytest.skip("accepted at load; the failure it expects comes when the job runs")
        return
    problems = check(case)
    if invalid:
        assert problems, "accepted, but the suite says it must be refused"
    else:
        assert problems == [], "refused, but the suite says it is valid"


# ------------------------------------------------------------------------ the run half

# The banner openjd-sessions logs once per task run (not for environment actions).
TASK_BANNER = "--------- Running Task"
# A process's exit line in a session log: "Process pid N exited with code: C (unsigned) ...".
EXIT_CODE = re.compile(r"exited with code:\s*(-?\d+)")


def _run_command(doc: dict[str, Any], tmp_path: Path) -> list[str]:
    """``qfarm openjd run`` with the test's template and inputs written under ``tmp_path``."""
    # One node with one instance, so that the job's tasks run one after another in the one
    # session that node keeps for the job, as the OpenJD CLI runs them (each instance that
    # runs a task of the job at the same time has a session of its own, which the
    # specification allows but some WRAP_ACTIONS cases, reading what an earlier task exported,
    # do not expect). No retries: a task the test expects to fail fails once, and its log is
    # the one shown. Host requirements are ignored, as the OpenJD CLI ignores them: a step that
    # asks for amount.custom.licenses runs on the local node instead of being refused.
    command = [sys.executable, "-m", "qfarm", "openjd", "run", "--nodes", "1", "--instances"]
    command += ["1", "--retries", "0", "--ignore-host-requirements"]
    command.append("--quiet")
    command.append(str(_write(doc["template"], tmp_path / "template.yaml")))
    if "parameters" in doc:
        values = _write(doc["parameters"] or {}, tmp_path / "parameters.yaml")
        command += ["-p", f"file://{values}"]
    for i, env in enumerate(doc.get("environments") or []):
        command += ["--env", str(_write(env, tmp_path / f"env{i}.yaml"))]
    for rule in doc.get("pathMapping") or []:
        if rule.get("source_path_format", "POSIX").upper() != "POSIX":
            pytest.fail(f"--path-map takes POSIX source paths only: {rule}")
        command += ["--path-map", f"{rule['source_path']}={rule['destination_path']}"]
    return command


def _first_failure_code(output: str) -> int | None:
    """The failing action's exit code: the first non-zero one (teardown actions come later)."""
    codes = [int(code) for code in EXIT_CODE.findall(output)]
    return next((code for code in codes if code != 0), None)


def _in_order(chain: list[str], output: str) -> str | None:
    """None when ``chain``'s entries appear in ``output`` in that order, else the first missing."""
    at = 0
    for entry in chain:
        found = output.find(entry, at)
        if found < 0:
            return entry
        at = found + len(entry)
    return None


def _expectations_met(expected: dict[str, Any], rc: int, output: str) -> None:
    failure = expected.get("taskFailure")
    if failure is not None:
        assert rc == 1, f"expected a failed task (exit 1), got exit {rc}"
        if failure.get("exitCode") is not None:
            assert _first_failure_code(output) == failure["exitCode"], "wrong failing exit code"
    else:
        assert rc == 0, f"expected success, got exit {rc}"
    for line in expected.get("output", []) + expected.get(f"output_{OS_NAME}", []):
        if isinstance(line, dict):
            assert any(str(alt) in output for alt in line["anyOf"]), f"none of {line['anyOf']}"
        else:
            assert str(line) in output, f"missing expected output {line!r}"
    for line in expected.get("forbidden", []) + expected.get(f"forbidden_{OS_NAME}", []):
        assert str(line) not in output, f"forbidden output {line!r} is there"
    for key in ("outputSequence", f"outputSequence_{OS_NAME}"):
        chains = expected.get(key)
        if not chains:
            continue
        for chain in chains if all(isinstance(c, list) for c in chains) else [chains]:
            missing = _in_order([str(entry) for entry in chain], output)
            assert missing is None, f"{key}: {missing!r} is not where {chain} says"
    if "taskCount" in expected:
        assert output.count(TASK_BANNER) == expected["taskCount"], "wrong number of tasks run"


def _error_as_expected(spec: Any, output: str) -> None:
    if isinstance(spec, str):
        spec = {"contains": spec}
    contains = spec.get("contains", [])
    for text in [contains] if isinstance(contains, str) else contains:
        assert text in output, f"refused, but not for {text!r}"
    if "anyOf" in spec:
        assert any(text in output for text in spec["anyOf"]), f"refused, not for {spec['anyOf']}"


@pytest.mark.integration
@pytest.mark.parametrize("case", cases(("jobs",)))
def test_run(case: Path | None, tmp_path: Path) -> None:
    assert case is not None
    doc = yaml.safe_load(case.read_text())
    if doc.get("runOn") is not None and OS_NAME not in doc["runOn"]:
        pytest.skip(f"runOn {doc['runOn']}: not for {OS_NAME}")
    # The sessions' working directories under this test's folder too: runs of other tests at
    # the same time number their batches and segments alike.
    env = {
        **os.environ,
        "QFARM_DATA_DIR": str(tmp_path / "data"),
        "QFARM_OPENJD_ROOT": str(tmp_path / "sessions"),
    }
    done = subprocess.run(
        _run_command(doc, tmp_path),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    output = done.stdout + done.stderr
    assert "Traceback (most recent call last)" not in output, output
    if ".invalid." in case.name:
        assert done.returncode in (1, 2), (
            f"expected a refusal or a failure, got exit {done.returncode}"
        )
        if "expectedError" in doc:
            _error_as_expected(doc["expectedError"], output)
        return
    try:
        _expectations_met(doc.get("expected") or {}, done.returncode, output)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- output ---\n{output}") from None
