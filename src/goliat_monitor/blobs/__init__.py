"""Where uploaded bytes live. The database indexes them; a store only keeps bytes under keys.

Two stores: `LocalDirStore` (a folder, the default) and `S3Store` (any S3-compatible object
store), picked by `open_store` from the server's `artifacts_url`. Both stream: bytes go in and come
out in chunks, so no file is ever held whole in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from goliat_monitor.blobs.common import CHUNK, BlobStore, Readable, StoredBlob, check_key
from goliat_monitor.blobs.local import LocalDirStore
from goliat_monitor.blobs.s3 import S3Store

__all__ = [
    "CHUNK",
    "BlobStore",
    "LocalDirStore",
    "Readable",
    "S3Store",
    "StoredBlob",
    "check_key",
    "iter_chunks",
    "open_store",
]


def open_store(url: str | None, default_folder: Path) -> BlobStore:
    """The store an `artifacts_url` names: `s3://BUCKET/PREFIX`, `file:///FOLDER`, or None for the folder.

    A bucket is checked at once (ConnectionError), so a server with a wrong setting does not start.
    """
    if not url:
        return LocalDirStore(default_folder)
    parts = urlsplit(url)
    if parts.scheme == "s3":
        store = S3Store.from_url(url)
        store.check()
        return store
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"a file:// artifacts URL names a local folder, not host {parts.netloc!r}")
        return LocalDirStore(Path(unquote(parts.path)))
    raise ValueError(f"unsupported artifacts URL {url!r}: use s3://BUCKET/PREFIX or file:///FOLDER")


def iter_chunks(handle: Readable) -> Iterator[bytes]:
    """The bytes of an opened blob in `CHUNK`s, closing it at the end (or when the consumer stops)."""
    try:
        while chunk := handle.read(CHUNK):
            yield chunk
    finally:
        handle.close()
