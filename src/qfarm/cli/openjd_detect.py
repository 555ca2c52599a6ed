"""Whether ``qfarm run ARGS`` names an Open Job Description template: the test that
``qfarm run`` and ``qfarm submit`` make before anything else about OpenJD is loaded (the
commands are in :mod:`qfarm.cli.openjd`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

TEMPLATE_SUFFIXES = (".yaml", ".yml", ".json")
# What a job template says first (or near it), in YAML or JSON.
_JOB_TEMPLATE = re.compile(r"""["']?specificationVersion["']?\s*:\s*["']?jobtemplate-""")


def is_template(args: Sequence[str] | None) -> bool:
    """Whether ``qfarm run ARGS`` names an OpenJD job template or job bundle folder.

    A bundle is a folder with ``template.yaml|yml|json``; a template is a ``.yaml``, ``.yml``
    or ``.json`` file that declares ``specificationVersion: jobtemplate-...``, or such a name
    that does not exist (so the loader says "no such file" rather than "not a program")."""
    if not args:
        return False
    path = Path(args[0])
    try:
        if path.is_dir():
            return any((path / f"template{s}").is_file() for s in TEMPLATE_SUFFIXES)
        if path.suffix.lower() not in TEMPLATE_SUFFIXES:
            return False
        if not path.exists():
            return True
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return False
    return _JOB_TEMPLATE.search(head) is not None
