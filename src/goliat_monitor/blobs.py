"""Where uploaded bytes live. The database indexes them; the store only keeps bytes under keys.

`LocalDirStore` keeps them as plain files under one folder, laid out by key, so an operator can
also browse results with a file manager. Replicas that share a database need a shared folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StoredBlob:
    key: str
    size: int
    sha256: str


class BlobStore(Protocol):
    def put(self, key: str, source: BinaryIO) -> StoredBlob: ...
    def open(self, key: str) -> BinaryIO: ...
    def iter_bytes(self, key: str) -> Iterator[bytes]: ...
    def exists(self, key: str) -> bool: ...
    def delete_prefix(self, prefix: str) -> None: ...


class LocalDirStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """The file for `key`, refusing any key that would resolve outside the root."""
        pure = PurePosixPath(key)
        if pure.is_absolute() or ".." in pure.parts or "\\" in key or "\x00" in key:
            raise ValueError(f"invalid blob key {key!r}")
        candidate = (self.root / pure).resolve()
        if not candidate.is_relative_to(self.root):
            raise ValueError(f"blob key {key!r} leaves the store")
        return candidate

    def put(self, key: str, source: BinaryIO) -> StoredBlob:
        """Copy `source` under `key` atomically (temp file + rename), hashing on the way."""
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
        return self.path(key).open("rb")

    def iter_bytes(self, key: str) -> Iterator[bytes]:
        with self.open(key) as handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete_prefix(self, prefix: str) -> None:
        target = self.path(prefix)
        if target == self.root:
            raise ValueError("refusing to delete the whole store")
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)
