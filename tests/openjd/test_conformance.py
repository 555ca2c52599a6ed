"""The specification's conformance suite, the "check" half, run through our loader.

Nothing of the suite is copied here: point ``QFARM_OPENJD_SPEC`` at an extracted checkout of
OpenJobDescription/openjd-specifications (``scripts/openjd-spec`` extracts one from a fetched
mirror). For each feature folder under ``conformance-tests/2023-09``:

* ``job_templates/*`` and ``env_templates/*``: ``check`` must find no problem, or at least one
  for a ``.invalid`` file;
* ``jobs/*.test.yaml``: the embedded template, ``parameters`` and ``environments`` must load
  into a plan; a ``.invalid.test.yaml`` passes when loading refuses it, and is skipped when
  loading accepts it, since what it expects to fail then happens when the job runs (sessions
  on nodes, not in this slice). ``proposed/`` folders are proposals, not the suite.

``KNOWN`` lists each case we fail and why; docs/openjd.md records them and the pass rates.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from qfarm.domain.errors import InvalidRequest
from qfarm.openjd import check, load_plan

ENV = "QFARM_OPENJD_SPEC"

# "FEATURE/folder/file": why we fail it. Each is strict: a fix makes the test say so.
KNOWN: dict[str, str] = {}


def suite_root() -> Path | None:
    value = os.environ.get(ENV)
    if not value:
        return None
    root = Path(value)
    for candidate in (root / "conformance-tests" / "2023-09", root / "2023-09", root):
        if any((candidate / feature / "job_templates").is_dir() for feature in ("base", "EXPR")):
            return candidate
    return root


def cases() -> list[Any]:
    root = suite_root()
    if root is None:
        return [pytest.param(None, id="suite", marks=pytest.mark.skip(reason=f"{ENV} is unset"))]
    found = []
    for path in sorted(root.glob("*/*/*")):
        kind = path.parent.name
        if not path.is_file() or path.suffix not in (".yaml", ".yml", ".json"):
            continue
        if kind not in ("job_templates", "env_templates", "jobs"):
            continue
        if kind == "jobs" and ".test." not in path.name:
            continue
        key = str(path.relative_to(root))
        marks = [pytest.mark.xfail(reason=KNOWN[key], strict=True)] if key in KNOWN else []
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
        if invalid:
            pytest.skip("accepted at load; the failure it expects comes when the job runs")
        return
    problems = check(case)
    if invalid:
        assert problems, "accepted, but the suite says it must be refused"
    else:
        assert problems == [], "refused, but the suite says it is valid"
