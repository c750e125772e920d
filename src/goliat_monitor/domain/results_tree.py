"""The result-file explorer's tree, built from flat (path, size) pairs: directories first, by name."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def build_tree(files: Iterable[tuple[str, int]]) -> list[dict[str, Any]]:
    """Children are keyed by name and type: two assignments of a study may upload a file `x` and
    a folder `x/`, and the explorer shows both rather than losing one (or failing)."""
    root: dict[str, Any] = {"children": {}}
    for path, size in files:
        parts = path.split("/")
        node = root
        for depth, part in enumerate(parts[:-1]):
            node = node["children"].setdefault(
                part + "/",
                {"name": part, "type": "directory", "path": "/".join(parts[: depth + 1]), "children": {}},
            )
        node["children"][parts[-1]] = {"name": parts[-1], "type": "file", "path": path, "size": size}
    return _finish(root["children"])


def _finish(children: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    nodes = []
    for node in children.values():
        if node["type"] == "directory":
            node = {**node, "children": _finish(node["children"])}
        nodes.append(node)
    nodes.sort(key=lambda n: (n["type"] != "directory", n["name"]))
    return nodes
