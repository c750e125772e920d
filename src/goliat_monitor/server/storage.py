"""What the dashboard says about storage: the database's size, the artifact store's, and the free
space of the data folder (a full disk answers 507, see `errors.InsufficientStorage`).

- Database: SQLite's file (page count x page size), PostgreSQL's `pg_database_size`.
- Artifacts in a folder: the folder walked on a worker thread, at most once per
  `FOLDER_SIZE_TTL_S` (one walk at a time; pages in between show the last figure and its age).
- Artifacts in an S3 bucket: the sizes the database records for the result files and
  screenshots uploaded through the server, summed. The bucket itself is never listed: that costs
  one request per 1,000 objects, and anything else put in the bucket is not ours to count.
- Free space: `shutil.disk_usage` of the data folder, read on every call (a statfs).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Any

from anyio import to_thread
from sqlalchemy import Connection

from goliat_monitor.blobs import LocalDirStore
from goliat_monitor.db.queries import storage as storage_queries
from goliat_monitor.server.context import ServerContext
from goliat_monitor.server.views import iso

FOLDER_SIZE_TTL_S = 300.0


def folder_bytes(root: Path) -> int:
    """Bytes of every file under `root` (sizes as listed, no file opened), iteratively."""
    total = 0
    pending = [root]
    while pending:
        try:
            entries = os.scandir(pending.pop())
        except OSError:  # vanished or unreadable while walking
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
    return total


class StorageProbe:
    """The cached size of a local artifact folder: one walk at a time, at most every TTL."""

    def __init__(self, ttl_s: float = FOLDER_SIZE_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._bytes: int | None = None
        self._measured_at = 0.0
        self._walk: asyncio.Future[int] | None = None

    async def folder_bytes(self, root: Path) -> tuple[int, float]:
        """(bytes, wall-clock time measured)."""
        if self._bytes is None or time.time() - self._measured_at > self.ttl_s:
            if self._walk is None or self._walk.get_loop() is not asyncio.get_running_loop():
                self._walk = asyncio.ensure_future(to_thread.run_sync(folder_bytes, root))
            try:
                self._bytes = await asyncio.shield(self._walk)
                self._measured_at = time.time()
            finally:
                if self._walk is not None and self._walk.done():
                    self._walk = None
        return self._bytes, self._measured_at


def human_bytes(count: int | None) -> str:
    if count is None:
        return "?"
    value = float(count)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def get_probe(app: Any) -> StorageProbe:
    probe: StorageProbe | None = getattr(app.state, "storage_probe", None)
    if probe is None:
        probe = app.state.storage_probe = StorageProbe()
    return probe


async def report(context: ServerContext, probe: StorageProbe) -> dict[str, Any]:
    """`GET /api/storage`, and the overview's Storage strip."""

    def read(conn: Connection) -> tuple[int, int]:
        return storage_queries.database_bytes(conn), storage_queries.recorded_artifact_bytes(conn)

    database, recorded = await context.db.read(read)
    store = context.blobs
    if isinstance(store, LocalDirStore):
        artifacts, measured = await probe.folder_bytes(store.root)
        artifacts_info = {
            "kind": "folder",
            "location": str(store.root),
            "bytes": artifacts,
            "measuredAt": measured,
        }
    else:
        artifacts_info = {
            "kind": "object store",
            "location": context.settings.artifacts_url,
            "bytes": recorded,
            "measuredAt": iso(time.time()),
            "note": "the sizes of the uploads the database records; the bucket is not listed",
        }
    data_dir = context.settings.data_dir.resolve()
    usage = shutil.disk_usage(data_dir)
    return {
        "database": {"kind": "sqlite" if context.db.is_sqlite else "postgresql", "bytes": database},
        "artifacts": artifacts_info,
        "dataDir": {"path": str(data_dir), "freeBytes": usage.free, "totalBytes": usage.total},
    }
