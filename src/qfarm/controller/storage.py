"""Cluster storage on the controller, for nodes without a shared disk.

A client uploads a job's inputs to the controller (``qfarm submit --upload``); the job then
runs with its working directory in that upload, as the controller sees it. Nodes download
it (see :mod:`qfarm.node.scratch`) and send the segments' outputs back here, from where
``qfarm fetch`` downloads them. Files are written under a temporary name and renamed when
complete.
"""

from __future__ import annotations

import shutil
import uuid
from contextlib import suppress
from pathlib import Path

from qfarm.domain.errors import InvalidRequest, NotFound
from qfarm.files import safe_relative


class ClusterStorage:
    """The controller's side: uploads by id, outputs by batch."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def new_upload(self) -> tuple[str, Path]:
        upload = uuid.uuid4().hex
        folder = self.root / "uploads" / upload
        folder.mkdir(parents=True)
        return upload, folder

    def upload_dir(self, upload: str) -> Path:
        folder = self.root / "uploads" / upload
        if not upload.isalnum() or not folder.is_dir():
            raise NotFound(f"no upload {upload}")
        return folder

    def outputs_dir(self, batch_id: int) -> Path:
        return self.root / "outputs" / f"batch-{batch_id}"

    def remove_batch_files(self, batch_id: int, uploads: set[str]) -> None:
        """Delete a removed batch's outputs and the uploads only it used."""
        shutil.rmtree(self.outputs_dir(batch_id), ignore_errors=True)
        for upload in uploads:
            with suppress(NotFound):  # gone already, or not an id we made
                shutil.rmtree(self.upload_dir(upload), ignore_errors=True)

    @staticmethod
    def remove_intermediate(folder: Path, rel: str) -> bool:
        """Delete a file or folder of qfarm's own (its name starts ``.qfarm-``) inside
        ``folder``; whether there was one."""
        path = folder / safe_relative(rel)
        if not path.name.startswith(".qfarm-"):
            raise InvalidRequest(f"{rel!r} is not an intermediate file of qfarm's (.qfarm-...)")
        if not path.resolve().is_relative_to(folder.resolve()) or not path.exists():
            return False
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        return True

    @staticmethod
    def file(folder: Path, rel: str) -> Path:
        """A file inside ``folder``: never outside it, through ``..`` or a symbolic link."""
        path = folder / safe_relative(rel)
        if not path.is_file():
            raise NotFound(f"no file {rel}")
        if not path.resolve().is_relative_to(folder.resolve()):
            raise InvalidRequest(f"path {rel!r} leads outside its folder")
        return path
