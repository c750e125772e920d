"""What every blob store shares: the interface, the receipt of a stored blob, the key rules."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StoredBlob:
    """What was stored: hashed and counted while it streamed in, so nothing reads it twice."""

    key: str
    size: int
    sha256: str


class Readable(Protocol):
    """An opened blob: a local file or an object store's response body."""

    def read(self, size: int = -1, /) -> bytes: ...
    def close(self) -> None: ...


class BlobStore(Protocol):
    def put(self, key: str, source: Readable) -> StoredBlob:
        """Store `source` under `key`, replacing what was there only once it is complete."""
        ...

    def open(self, key: str) -> Readable:
        """The blob for reading; FileNotFoundError when there is none."""
        ...

    def delete_prefix(self, prefix: str) -> None:
        """Remove the blob `prefix` and every blob below `prefix/`."""
        ...


def check_key(key: str) -> PurePosixPath:
    """A key is a relative POSIX path that cannot climb out of its store, in any store."""
    pure = PurePosixPath(key)
    if not key or pure.is_absolute() or ".." in pure.parts or "\\" in key or "\x00" in key:
        raise ValueError(f"invalid blob key {key!r}")
    return pure
