"""The import rules of docs/architecture.md, checked on the source so a shortcut cannot creep in."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "goliat_monitor"
STDLIB_ONLY = ("delivery", "outbox", "bridge")


def _imports(path: Path) -> set[str]:
    """Top-level module names `path` imports, with `goliat_monitor.x` kept as `goliat_monitor.x`."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: `from . import delivery` inside the package
                names.update(f"goliat_monitor.{alias.name}" for alias in node.names)
            elif node.module:
                names.add(node.module)
    return {".".join(name.split(".")[:2]) if name.startswith("goliat_monitor") else name for name in names}


def _modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def _ours(names: set[str]) -> set[str]:
    return {name.removeprefix("goliat_monitor.") for name in names if name.startswith("goliat_monitor")}


def _third_party(names: set[str]) -> set[str]:
    return {
        name
        for name in names
        if not name.startswith("goliat_monitor")
        and name.split(".")[0] not in sys.stdlib_module_names
        and name not in STDLIB_ONLY  # the plain-sibling-file fallback: `import delivery`
    }


@pytest.mark.parametrize("path", _modules("domain"), ids=lambda p: p.name)
def test_the_domain_imports_only_the_standard_library_and_itself(path: Path) -> None:
    names = _imports(path)
    assert not _third_party(names), f"{path.name} imports {_third_party(names)}"
    assert _ours(names) <= {"domain"}, f"{path.name} imports {_ours(names) - {'domain'}}"


@pytest.mark.parametrize("name", STDLIB_ONLY)
def test_the_bridge_and_its_delivery_core_need_nothing_but_the_standard_library(name: str) -> None:
    names = _imports(PACKAGE / f"{name}.py")
    assert not _third_party(names), f"{name}.py imports {_third_party(names)}"
    assert _ours(names) <= set(STDLIB_ONLY), f"{name}.py imports {_ours(names) - set(STDLIB_ONLY)}"


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [("server", {"agent", "cli", "demo"}), ("agent", {"server", "db", "cli"}), ("db", {"server", "agent"})],
)
def test_layers_import_one_way(folder: str, forbidden: set[str]) -> None:
    for path in _modules(folder):
        wrong = _ours(_imports(path)) & forbidden
        assert not wrong, f"{folder}/{path.name} imports {wrong}"
