"""Small templates written here, as files, for the OpenJD tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml


def job(steps: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """A minimal valid job template, with ``extra`` top-level fields."""
    doc: dict[str, Any] = {"specificationVersion": "jobtemplate-2023-09", "name": "Job"}
    doc["steps"] = steps or [step("A")]
    doc.update(extra)
    return doc


def step(name: str, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "script": {"actions": {"onRun": {"command": "echo", "args": ["hello"]}}},
    }
    doc.update(extra)
    return doc


def env_template(name: str, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "specificationVersion": "environment-2023-09",
        "environment": {"name": name, "variables": {"FROM": name}},
    }
    doc.update(extra)
    return doc


Writer = Callable[..., Path]


@pytest.fixture
def write(tmp_path: Path) -> Writer:
    """``write(doc, "name.yaml")`` puts ``doc`` in a file under tmp_path, as YAML or JSON."""

    def _write(doc: Any, name: str = "template.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".json"):
            path.write_text(json.dumps(doc))
        else:
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    return _write
