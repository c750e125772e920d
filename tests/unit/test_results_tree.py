"""The result-file explorer's tree built from flat (path, size) pairs."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from goliat_monitor.domain.results_tree import build_tree


def file(path: str, size: int) -> dict[str, Any]:
    return {"name": path.rsplit("/", 1)[-1], "type": "file", "path": path, "size": size}


def folder(path: str, *children: dict[str, Any]) -> dict[str, Any]:
    return {"name": path.rsplit("/", 1)[-1], "type": "directory", "path": path, "children": list(children)}


def test_no_files_no_tree() -> None:
    assert build_tree([]) == []


def test_top_level_files_are_leaves() -> None:
    assert build_tree([("b.txt", 2), ("a.txt", 1)]) == [file("a.txt", 1), file("b.txt", 2)]


def test_nested_folders_carry_their_full_path() -> None:
    tree = build_tree([("thelonious/700MHz/x_pos/sar.h5", 10), ("thelonious/700MHz/x_pos/log.txt", 3)])
    assert tree == [
        folder(
            "thelonious",
            folder(
                "thelonious/700MHz",
                folder(
                    "thelonious/700MHz/x_pos",
                    file("thelonious/700MHz/x_pos/log.txt", 3),
                    file("thelonious/700MHz/x_pos/sar.h5", 10),
                ),
            ),
        )
    ]


def test_folders_come_before_files_each_sorted_by_name() -> None:
    tree = build_tree([("z.txt", 1), ("b/x", 1), ("a.txt", 1), ("a/y", 1), ("B.txt", 1)])
    assert [(node["type"], node["name"]) for node in tree] == [
        ("directory", "a"),
        ("directory", "b"),
        ("file", "B.txt"),
        ("file", "a.txt"),
        ("file", "z.txt"),
    ]


def test_input_order_does_not_matter() -> None:
    files = [("a/b/c", 1), ("a/d", 2), ("e", 3), ("a/b/f", 4)]
    assert build_tree(files) == build_tree(reversed(files))


def test_a_file_and_a_folder_of_the_same_name_are_both_shown() -> None:
    """Two assignments of one study may upload `x` and `x/y`: the listing must not fail or drop one."""
    expected = [folder("x", file("x/y", 2)), file("x", 1)]
    assert build_tree([("x", 1), ("x/y", 2)]) == expected
    assert build_tree([("x/y", 2), ("x", 1)]) == expected


def test_unicode_names_are_kept() -> None:
    assert build_tree([("résultats/Ω.json", 5)]) == [folder("résultats", file("résultats/Ω.json", 5))]


segment = st.text(alphabet="abcAB.é", min_size=1, max_size=3)
paths = st.lists(segment, min_size=1, max_size=4).map("/".join)


def _leaves(nodes: list[dict[str, Any]]) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for node in nodes:
        if node["type"] == "directory":
            assert all(child["path"] == f"{node['path']}/{child['name']}" for child in node["children"])
            found.extend(_leaves(node["children"]))
        else:
            found.append((node["path"], node["size"]))
    return found


@given(st.dictionaries(paths, st.integers(min_value=0, max_value=10**9), max_size=20))
def test_every_file_appears_exactly_once_under_its_folders(files: dict[str, int]) -> None:
    tree = build_tree(sorted(files.items()))
    assert sorted(_leaves(tree)) == sorted(files.items())
