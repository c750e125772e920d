"""`LocalDirStore` keeps blobs as plain files under one folder, laid out by key, so an operator can
also browse results with a file manager. Replicas that share a database need a shared folder (or
an object store: `S3Store`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import BinaryIO

from goliat_monitor.blobs.common import CHUNK, Readable, StoredBlob, check_key
from goliat_monitor.errors import InsufficientStorage


class LocalDirStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """The file for `key`, refusing any key that would resolve outside the root."""
        candidate = (self.root / check_key(key)).resolve()
        if not candidate.is_relative_to(self.root):
            raise ValueError(f"blob key {key!r} leaves the store")
        return candidate

    def put(self, key: str, source: Readable) -> StoredBlob:
        """Copy `source` under `key` atomically (temp file + rename), hashing on the way.

        A full disk (ENOSPC) leaves nothing behind and raises `InsufficientStorage` (507).
        """
        try:
            return self._put(key, source)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise InsufficientStorage("data folder", path=str(self.root)) from exc
            raise

    def _put(self, key: str, source: Readable) -> StoredBlob:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{uuid.uuid4().hex}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return StoredBlob(key, size, digest.hexdigest())

    def open(self, key: str) -> BinaryIO:
        path = self.path(key)
        if not path.is_file():  # a folder is no blob either
            raise FileNotFoundError(f"no blob {key!r}")
        return path.open("rb")

    def delete_prefix(self, prefix: str) -> None:
        target = self.path(prefix)
        if target == self.root:
            raise ValueError("refusing to delete the whole store")
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)
