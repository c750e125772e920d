"""`S3Store` against a real S3-compatible server: streamed multipart uploads, reads, deletes, keys."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import pytest

from goliat_monitor.blobs import LocalDirStore, S3Store, iter_chunks, open_store
from goliat_monitor.blobs import s3 as s3_module
from goliat_monitor.blobs.s3 import MIN_PART_SIZE
from tests.blobs.conftest import object_keys


@pytest.fixture
def store(bucket: str) -> S3Store:
    return S3Store(bucket, "campaign", part_size=MIN_PART_SIZE)


class TrickleReader(io.RawIOBase):
    """Hands out at most 64 KiB per read, like a socket: parts must still be filled to size."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(min(size, 64 * 1024) if size >= 0 else 64 * 1024)


class FailingReader(io.RawIOBase):
    """Breaks after `good` bytes, as a client that disconnects mid-upload."""

    def __init__(self, good: int) -> None:
        self._left = good

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            raise OSError("connection reset")
        take = min(size, self._left)
        self._left -= take
        return b"x" * take


@pytest.mark.parametrize("size", [0, 10, MIN_PART_SIZE, 2 * MIN_PART_SIZE + 17])
def test_put_hashes_and_counts_what_it_streams(
    store: S3Store, s3_client: Any, bucket: str, size: int
) -> None:
    data = os.urandom(size)
    stored = store.put("results/a1/run/sar.bin", TrickleReader(data))
    assert (stored.size, stored.sha256) == (size, hashlib.sha256(data).hexdigest())
    assert b"".join(iter_chunks(store.open("results/a1/run/sar.bin"))) == data
    etag = s3_client.head_object(Bucket=bucket, Key="campaign/results/a1/run/sar.bin")["ETag"]
    parts = -(-size // MIN_PART_SIZE) if size >= MIN_PART_SIZE else 0
    # A multipart object's ETag ends in -<number of parts>; a plain PUT's has no dash.
    assert etag.strip('"').endswith(f"-{parts}") if parts else "-" not in etag


def test_a_broken_upload_leaves_no_object_and_no_open_multipart_upload(
    store: S3Store, s3_client: Any, bucket: str
) -> None:
    with pytest.raises(OSError, match="connection reset"):
        store.put("results/a1/big.bin", FailingReader(MIN_PART_SIZE + 100))
    assert object_keys(s3_client, bucket) == set()
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_replacing_an_object_keeps_the_old_bytes_until_the_new_ones_are_complete(store: S3Store) -> None:
    store.put("screenshots/w/tab", io.BytesIO(b"old"))
    with pytest.raises(OSError):
        store.put("screenshots/w/tab", FailingReader(MIN_PART_SIZE + 1))
    assert store.open("screenshots/w/tab").read() == b"old"


def test_delete_prefix_removes_the_key_and_everything_below_it_only(
    store: S3Store, s3_client: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "DELETE_BATCH", 2)  # several pages of keys
    doomed = ["results/a1", *(f"results/a1/run/{n}.json" for n in range(5))]
    kept = ["results/a10/x.json", "results/a1.json", "screenshots/w/tab"]
    for key in doomed + kept:
        store.put(key, io.BytesIO(key.encode()))
    store.delete_prefix("results/a1")
    assert object_keys(s3_client, bucket) == {f"campaign/{key}" for key in kept}


def test_missing_objects_are_file_not_found(store: S3Store) -> None:
    with pytest.raises(FileNotFoundError):
        store.open("results/nothing/here.json")
    assert store.size("results/nothing/here.json") is None


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../outside", "results/../../x", "a\\b", "a\x00b"])
def test_keys_cannot_leave_the_prefix(store: S3Store, key: str) -> None:
    with pytest.raises(ValueError):
        store.put(key, io.BytesIO(b"x"))


def test_open_store_picks_the_store_by_url(tmp_path: Path, bucket: str) -> None:
    default = open_store(None, tmp_path / "artifacts")
    assert isinstance(default, LocalDirStore) and default.root == (tmp_path / "artifacts").resolve()
    folder = open_store(f"file://{tmp_path}/elsewhere", tmp_path / "artifacts")
    assert isinstance(folder, LocalDirStore) and folder.root == (tmp_path / "elsewhere").resolve()
    store = open_store(f"s3://{bucket}/goliat/campaign/", tmp_path)
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix, store.url) == (
        bucket,
        "goliat/campaign",
        f"s3://{bucket}/goliat/campaign",
    )
    for wrong in ("ftp://host/x", "s3:///no-bucket", "file://otherhost/x"):
        with pytest.raises(ValueError):
            open_store(wrong, tmp_path)


def test_a_bucket_that_cannot_be_used_stops_the_server_at_start(tmp_path: Path, s3_env: str) -> None:
    with pytest.raises(ConnectionError, match="'no-such-bucket' does not exist"):
        open_store("s3://no-such-bucket/x", tmp_path)
