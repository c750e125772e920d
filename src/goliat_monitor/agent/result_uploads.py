"""Which result folders the agent uploads, and when: each as soon as its simulation is extracted.

GOLIAT uploads a simulation's folder right after its extraction (`BaseStudy.
_upload_results_if_assignment`), so the campaign's results table fills in simulation by
simulation; a plain `goliat study` sends them only to GOLIAT's own dashboard, so the agent does it
instead. A folder is finished when GOLIAT's metadata `config.json` there says `extract_done`
(written once the extract deliverables are verified). Folders still being written, and what a
study leaves when it fails, go up after the study exits, as before; a folder already sent whose
files have not changed since is not sent again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

__all__ = ["SKIP_SUFFIXES", "EarlyUploads", "folder_files", "is_extracted", "result_folders"]

SKIP_SUFFIXES = frozenset({".h5", ".smash"})
"""Sim4Life projects and field data: gigabytes, not results."""

Signature = tuple[tuple[str, int, int], ...]


def result_folders(root: Path) -> Iterator[tuple[Path, str]]:
    """Every folder under `root` that holds files, with its path relative to `root` (forward slashes)."""
    if not root.is_dir():
        return
    folders = sorted({path.parent for path in root.rglob("*") if path.is_file()})
    for folder in folders:
        yield folder, folder.relative_to(root).as_posix().strip(".")


def folder_files(folder: Path, limit: int) -> tuple[list[Path], list[Path]]:
    """(the folder's files to upload, those larger than `limit` bytes), by name."""
    kept: list[Path] = []
    too_large: list[Path] = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        if path.suffix.lower() in SKIP_SUFFIXES:
            continue
        (too_large if path.stat().st_size > limit else kept).append(path)
    return kept, too_large


def is_extracted(folder: Path) -> bool:
    """GOLIAT's metadata in the folder says the simulation's extraction is done."""
    try:
        metadata = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(metadata, dict) and metadata.get("extract_done") is True


def _signature(files: list[Path]) -> Signature:
    out = []
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            continue
        out.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(out)


class EarlyUploads:
    """The folders of one run uploaded while the study ran, with what their files were then."""

    def __init__(self, root: Path, limit: int) -> None:
        self.root = root
        self.limit = limit
        self._sent: dict[str, Signature] = {}

    def due(self) -> Iterator[tuple[str, list[Path]]]:
        """Extracted folders not uploaded yet: (relative path, files)."""
        for folder, relative in result_folders(self.root):
            if relative in self._sent or not is_extracted(folder):
                continue
            files, _ = folder_files(folder, self.limit)
            if files:
                yield relative, files

    def sent(self, relative: str, files: list[Path]) -> None:
        self._sent[relative] = _signature(files)

    def unchanged(self, relative: str, files: list[Path]) -> bool:
        """Was this folder uploaded early with exactly these files?"""
        return self._sent.get(relative) == _signature(files)
