"""Reading OpenJD documents from disk: templates, job bundles and parameter values.

Parsing is openjd-model's (``document_string_to_object``); this module only finds the files a
job bundle holds, reads them, and turns the command line's ``NAME=VALUE`` and
``file://values.yaml`` forms into the ``name -> value`` input openjd-model checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openjd.model import DocumentType, document_string_to_object

from qfarm.domain.errors import InvalidRequest
from qfarm.openjd.plan import AssetReferences

_SUFFIXES = {".yaml": DocumentType.YAML, ".yml": DocumentType.YAML, ".json": DocumentType.JSON}
_BUNDLE_NAMES = ("template", "parameter_values", "asset_references")


def read_document(path: Path) -> dict[str, Any]:
    """The YAML or JSON object in ``path`` (by its suffix), or a usage error naming it."""
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InvalidRequest(f"{path}: not a .yaml, .yml or .json file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidRequest(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"{path}: cannot be read: {exc}") from None
    try:
        obj = document_string_to_object(document=text, document_type=kind)
    except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError, or the library's own
        raise InvalidRequest(
            f"{path}: not valid {kind.value}: {' '.join(str(exc).split())}"
        ) from None
    if not isinstance(obj, dict):
        raise InvalidRequest(f"{path}: not valid: the document must be a mapping")
    return obj


def _bundle_file(folder: Path, stem: str) -> Path | None:
    found = [
        folder / f"{stem}{s}"
        for s in (".yaml", ".yml", ".json")
        if (folder / f"{stem}{s}").is_file()
    ]
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise InvalidRequest(f"{folder}: job bundle has more than one {stem} file: {names}")
    return found[0] if found else None


@dataclass(frozen=True)
class Bundle:
    """Where a job's documents are: a lone template, or a Deadline Cloud style bundle folder."""

    template: Path
    parameter_values: Path | None = None
    asset_references: Path | None = None

    @property
    def folder(self) -> Path:
        return self.template.parent


def find_bundle(path: Path) -> Bundle:
    """A template file as given, or the ``template``/``parameter_values``/``asset_references``
    files of a bundle folder."""
    if path.is_dir():
        template = _bundle_file(path, _BUNDLE_NAMES[0])
        if template is None:
            raise InvalidRequest(f"{path}: not a job bundle: no template.yaml or template.json")
        return Bundle(
            template, _bundle_file(path, _BUNDLE_NAMES[1]), _bundle_file(path, _BUNDLE_NAMES[2])
        )
    if not path.exists():
        raise InvalidRequest(f"{path}: no such file or folder")
    return Bundle(path)


def _as_input(value: Any) -> str:
    """A parameter value as openjd-model's input form: strings as they are, lists (EXPR
    ``LIST[...]`` types) as JSON, booleans as ``true``/``false``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def read_values_file(path: Path) -> dict[str, Any]:
    """Parameter values from a file: a plain ``NAME: value`` mapping (the OpenJD CLI's
    ``file://`` form) or a Deadline bundle's ``parameterValues: [{name, value}]`` list."""
    doc = read_document(path)
    if "parameterValues" in doc:
        items = doc["parameterValues"]
        if not isinstance(items, list):
            raise InvalidRequest(f"{path}: parameterValues: must be a list of name/value items")
        values: dict[str, Any] = {}
        for i, item in enumerate(items):
            if not isinstance(item, dict) or "name" not in item or "value" not in item:
                raise InvalidRequest(f"{path}: parameterValues[{i}]: needs a name and a value")
            values[str(item["name"])] = item["value"]
        return values
    return {str(k): v for k, v in doc.items()}


def split_submitter_settings(values: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """Template parameter values apart from a submitter's own settings.

    Deadline Cloud writes queue settings such as ``deadline:priority`` into a bundle's
    parameter values; a name with a colon can never be a template parameter, so those are set
    aside (and recorded) rather than refused as unknown parameters.
    """
    params = {k: _as_input(v) for k, v in values.items() if ":" not in k}
    settings = {k: v for k, v in values.items() if ":" in k}
    return params, settings


def parse_parameter_args(args: list[str], cwd: Path) -> dict[str, Any]:
    """``NAME=VALUE`` and ``file://PATH`` arguments, in order, later ones overriding."""
    values: dict[str, Any] = {}
    for arg in args:
        if arg.startswith("file://"):
            file = Path(arg[len("file://") :])
            values.update(read_values_file(file if file.is_absolute() else cwd / file))
            continue
        name, sep, value = arg.partition("=")
        if not sep or not name.strip():
            raise InvalidRequest(f"-p {arg!r}: expected NAME=VALUE or file://values.yaml")
        values[name.strip()] = value
    return values


def read_asset_references(path: Path) -> AssetReferences:
    """A bundle's ``assetReferences`` (inputs.filenames/directories, outputs.directories,
    referencedPaths)."""
    doc = read_document(path)
    refs = doc.get("assetReferences", doc)
    if not isinstance(refs, dict):
        raise InvalidRequest(f"{path}: assetReferences: must be a mapping")

    def strings(section: str, key: str | None) -> tuple[str, ...]:
        node: Any = refs.get(section)
        if key is not None:
            node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return ()
        where = f"{section}.{key}" if key else section
        if not isinstance(node, list) or not all(isinstance(x, str) for x in node):
            raise InvalidRequest(f"{path}: assetReferences.{where}: must be a list of paths")
        return tuple(node)

    return AssetReferences(
        input_filenames=strings("inputs", "filenames"),
        input_directories=strings("inputs", "directories"),
        output_directories=strings("outputs", "directories"),
        referenced_paths=strings("referencedPaths", None),
    )
