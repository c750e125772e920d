"""`goliat-monitor artifacts migrate`: copy every blob the database indexes into an object store.

The copy is checked object by object against what the database recorded (size, and SHA-256 for
result files; screenshots have no recorded hash, so theirs is the source file's), by reading the
object back from the bucket. Nothing is switched here: the operator points the servers at the
bucket only once every object verified. A rerun copies only what is missing or differs, and verifies
everything again, so it is safe to repeat (for instance just before switching).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import closing
from dataclasses import dataclass
from typing import Literal

from goliat_monitor.blobs import BlobStore, S3Store, iter_chunks


@dataclass(frozen=True)
class IndexedBlob:
    """A blob as the database knows it."""

    key: str
    size: int
    sha256: str | None


@dataclass(frozen=True)
class Outcome:
    blob: IndexedBlob
    status: Literal["copied", "present", "failed"]
    reason: str = ""


def unique_blobs(rows: Iterable[tuple[str, int, str | None]]) -> list[IndexedBlob]:
    """One entry per key, in key order (a key rewritten in place is one object)."""
    by_key = {key: IndexedBlob(key, int(size), sha256) for key, size, sha256 in rows}
    return [by_key[key] for key in sorted(by_key)]


def _measure(store: BlobStore, key: str) -> tuple[int, str]:
    """(size, SHA-256) of a stored blob, streamed through."""
    digest = hashlib.sha256()
    size = 0
    for chunk in iter_chunks(store.open(key)):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def migrate_one(blob: IndexedBlob, source: BlobStore, target: S3Store) -> Outcome:
    """Copy one blob unless the bucket already holds it intact, then verify it by reading it back."""
    expected_sha = blob.sha256
    try:
        if target.size(blob.key) == blob.size:
            expected_sha = expected_sha or _measure(source, blob.key)[1]
            if _measure(target, blob.key) == (blob.size, expected_sha):
                return Outcome(blob, "present")
        with closing(source.open(blob.key)) as handle:
            stored = target.put(blob.key, handle)
        expected_sha = expected_sha or stored.sha256
        size, sha256 = _measure(target, blob.key)
    except FileNotFoundError as exc:
        return Outcome(blob, "failed", f"missing: {exc}")
    except Exception as exc:
        return Outcome(blob, "failed", f"{type(exc).__name__}: {exc}")
    if size != blob.size:
        return Outcome(blob, "failed", f"the bucket holds {size} bytes, the database recorded {blob.size}")
    if sha256 != expected_sha:
        return Outcome(blob, "failed", f"SHA-256 {sha256} in the bucket, expected {expected_sha}")
    return Outcome(blob, "copied")


def migrate_all(
    blobs: Sequence[IndexedBlob],
    source: BlobStore,
    target: S3Store,
    *,
    threads: int,
    on_done: Callable[[Outcome], None],
) -> list[Outcome]:
    """Every blob through `migrate_one`, `threads` at a time (object stores reward parallel requests)."""
    outcomes = []
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="artifacts-migrate") as pool:
        for future in as_completed([pool.submit(migrate_one, blob, source, target) for blob in blobs]):
            outcome = future.result()
            on_done(outcome)
            outcomes.append(outcome)
    return sorted(outcomes, key=lambda outcome: outcome.blob.key)
