"""What the agent makes of one assignment on disk, before and after GOLIAT runs it.

The loop (`loop.py`) decides when to run what; this module holds the pieces that only need the
assignment and a folder: a file-name-safe name, the config files GOLIAT reads (the split config
and its `extends` parents), the command line, the phases the config enables (so the output
parser weighs progress like GOLIAT), and `RunState`, the file that lets a restarted agent pick
up a run where the last one left it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from goliat_monitor.domain.campaign import ConfigError, merge_extends
from goliat_monitor.domain.models import PHASES

__all__ = ["STATE_FILE", "RunState", "build_command", "enabled_phases", "safe_name", "write_configs"]

STATE_FILE = "agent-run.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, default: str = "study") -> str:
    """A file-name-safe version of a study name (Windows forbids more than POSIX does)."""
    cleaned = _UNSAFE.sub("_", text).strip("._")
    return cleaned[:80] or default


def build_command(template: str, config: Path, run_dir: Path) -> list[str]:
    """Split the command template and fill in `{config}` and `{run_dir}`.

    Without `{config}` the config path is appended. The program is resolved on PATH first, so
    `goliat` finds `goliat.exe` or `goliat.cmd` on Windows.
    """
    posix = os.name != "nt"
    parts = shlex.split(template, posix=posix)
    if not posix:
        parts = [p[1:-1] if len(p) >= 2 and p[0] == p[-1] == '"' else p for p in parts]
    if not parts:
        raise ValueError("the study command is empty")
    if not any("{config}" in part for part in parts):
        parts.append("{config}")
    filled = [part.replace("{config}", str(config)).replace("{run_dir}", str(run_dir)) for part in parts]
    program = shutil.which(filled[0])
    if program is not None:
        filled[0] = program
    return filled


@dataclass
class RunState:
    """How far one attempt at an assignment got; survives an agent crash."""

    assignment_id: str
    attempt: int
    phase: str = "running"  # running -> exited -> done
    exit_code: int | None = None
    pid: int | None = None
    created: float | None = None
    uploaded: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> RunState | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except (OSError, ValueError, TypeError):
            return None

    def save(self, path: Path) -> None:
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self)), encoding="utf-8")
        os.replace(temporary, path)


def write_configs(work_dir: Path, assignment: dict[str, Any], name: str) -> Path:
    """The split config as `<work dir>/<name>.json`, its parents beside it so `extends` resolves."""
    for parent_name, parent in (assignment.get("parentConfigs") or {}).items():
        target = _parent_path(work_dir, str(parent_name))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(parent, indent=2), encoding="utf-8")
    path = work_dir / f"{name}.json"
    path.write_text(json.dumps(assignment.get("splitConfig") or {}, indent=2), encoding="utf-8")
    return path


def enabled_phases(assignment: dict[str, Any]) -> tuple[str, ...]:
    """The phases the (merged) config enables, so the parser weighs progress like GOLIAT."""
    try:
        merged = merge_extends(assignment.get("splitConfig") or {}, assignment.get("parentConfigs") or {})
    except ConfigError:
        return PHASES
    control = merged.get("execution_control") or {}
    if not isinstance(control, dict):
        return PHASES
    enabled = tuple(p for p in PHASES if control.get(f"do_{p}", True) is not False)
    return enabled or PHASES


def _parent_path(work_dir: Path, name: str) -> Path:
    """Where a parent config named `name` goes: as written if it stays inside the work dir."""
    relative = PurePosixPath(name.replace("\\", "/"))
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        return work_dir / safe_name(relative.name, "parent.json")
    return work_dir.joinpath(*relative.parts)
