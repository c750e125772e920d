"""Uploaded result paths and names: whatever a worker sends, a file never lands outside its folder."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from pathlib import PurePosixPath, PureWindowsPath

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from goliat_monitor.domain.paths import (
    MAX_NAME_LENGTH,
    MAX_PATH_LENGTH,
    check_filename,
    check_relative_path,
    check_tab_name,
    tab_key,
    tab_label,
)

ROOT = "/srv/results/assignment"


# -- relativePath ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_path", "normalised"),
    [
        ("", ""),
        (".", ""),
        ("./", ""),
        ("results", "results"),
        ("a/b/c", "a/b/c"),
        ("a//b", "a/b"),  # empty segments are dropped, not kept as a root
        ("a/./b/", "a/b"),
        ("./a/.", "a"),
        ("...", "..."),  # three dots is an ordinary name
        ("..a/b..", "..a/b.."),
        ("~/x", "~/x"),  # no home expansion: a folder called "~"
        ("résultats/thelonious 700MHz/Ω", "résultats/thelonious 700MHz/Ω"),
        ("日本/файл", "日本/файл"),
    ],
)
def test_accepted_paths_are_normalised(given_path: str, normalised: str) -> None:
    assert check_relative_path(given_path) == normalised


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("..", "'..'"),
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("a/..", "'..'"),
        ("a//../b", "'..'"),
        ("./..", "'..'"),
        ("/etc/passwd", "must be relative"),
        ("//server/share", "must be relative"),
        ("C:", "must be relative"),
        ("c:/Windows", "must be relative"),
        ("C:relative", "must be relative"),
        ("a/C:/b", "':'"),
        ("file.txt:stream", "':'"),
        ("a\\..\\b", "contains a backslash"),
        ("\\\\server\\share", "contains a backslash"),
        ("a\\b", "contains a backslash"),
        ("a\x00b", "control character"),
        ("a/\x00", "control character"),
        ("\x1b[31m", "control character"),
        ("line\nbreak", "control character"),
        ("tab\there", "control character"),
        ("del\x7f", "control character"),
        ("x" * (MAX_PATH_LENGTH + 1), "too long"),
    ],
)
def test_refused_paths_say_why(bad: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_relative_path(bad)


def test_the_length_limit_is_inclusive() -> None:
    at_limit = "a/" * (MAX_PATH_LENGTH // 2 - 1) + "ab"
    assert len(at_limit) == MAX_PATH_LENGTH
    assert check_relative_path(at_limit) == at_limit


def _stays_inside(relative: str) -> bool:
    joined = posixpath.normpath(posixpath.join(ROOT, relative))
    return joined == ROOT or joined.startswith(ROOT + "/")


path_text = st.lists(
    st.sampled_from(["..", ".", "", "a", "b", "~", "C:", "c:", ":", "\\", "/", "\x00", "é", "..."])
    | st.text(max_size=6),
    max_size=8,
).map("/".join)


def _escapes_or_smuggles(value: str) -> bool:
    """The refusal rules stated independently: what a hostile or broken sender could try."""
    return (
        len(value) > MAX_PATH_LENGTH
        or any(ord(ch) < 32 or ch == "\x7f" for ch in value)
        or "\\" in value
        or value.startswith("/")
        or any(segment == ".." or ":" in segment for segment in value.split("/"))
    )


def _verdict(check: Callable[[str], str], value: str) -> str | None:
    """What `check` makes of `value`, or None when it refuses it."""
    try:
        return check(value)
    except ValueError:
        return None


@given(st.one_of(path_text, st.text(max_size=40)))
@example("../../etc/passwd")
@example("a/../..")
@example("/abs")
@example("C:/x")
@example("a\\..\\..\\x")
def test_a_path_is_refused_exactly_when_it_could_escape_and_is_safe_otherwise(value: str) -> None:
    safe = _verdict(check_relative_path, value)
    assert (safe is None) == _escapes_or_smuggles(value)
    if safe is not None:
        assert _stays_inside(safe)
        # Windows would read it the same way: no drive, no root, no parent step.
        windows = PureWindowsPath(safe)
        assert not windows.drive
        assert not windows.root
        assert ".." not in windows.parts
        assert not PurePosixPath(safe).is_absolute()
        assert safe == "" or all(part not in ("", ".", "..") for part in safe.split("/"))
        assert check_relative_path(safe) == safe  # normalising twice changes nothing


plain_segment = st.text(
    alphabet=st.characters(min_codepoint=32, blacklist_characters="/\\:\x7f"), min_size=1, max_size=20
).filter(lambda s: s not in (".", ".."))


@given(st.lists(plain_segment, min_size=1, max_size=5))
def test_ordinary_segments_are_kept_in_order(segments: list[str]) -> None:
    value = "/".join(segments)
    assert check_relative_path(value) == value


# -- file names --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sar.h5", "...", ".hidden", "Ω résumé.json", "a" * MAX_NAME_LENGTH])
def test_plain_file_names_pass_unchanged(name: str) -> None:
    assert check_filename(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "a/b",
        "../x",
        "/x",
        "a\\b",
        "..\\x",
        "C:x",
        "x:stream",
        "a\x00b",
        "a\nb",
        "\x7f",
        "a" * (MAX_NAME_LENGTH + 1),
    ],
)
def test_names_that_are_not_plain_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        check_filename(name)


@given(st.one_of(st.text(max_size=300), st.sampled_from([".", "..", "...", "a:b", "a\\b", "x" * 256])))
def test_a_file_name_is_refused_unless_it_is_one_plain_segment(name: str) -> None:
    accepted = _verdict(check_filename, name)
    plain = (
        0 < len(name) <= MAX_NAME_LENGTH
        and not any(ord(ch) < 32 or ch in "\x7f/\\:" for ch in name)
        and name not in (".", "..")
    )
    assert (accepted is not None) == plain
    if accepted is not None:
        assert accepted == name
        assert posixpath.dirname(posixpath.join(ROOT, accepted)) == ROOT
        assert PureWindowsPath(accepted).name == accepted


# -- screenshot tab names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["Timings", "Disk_I/O", "Time_Remaining", "GPU-1", "Übersicht", "../x", "C:\\x", "a.b", "<b>", "x" * 128],
)
def test_any_printable_tab_name_is_accepted(name: str) -> None:
    assert check_tab_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("x" * 129, "longer than 128"),
        ("tab\n", "control character"),
        ("a\x00", "control character"),
        ("a\u202eb", "control character"),  # a right-to-left override would disguise the label
        (".", "cannot be addressed"),
        ("..", "cannot be addressed"),
    ],
)
def test_unusable_tab_names_are_refused(name: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_tab_name(name)


@pytest.mark.parametrize(
    "name", ["Disk_I/O", "../x", "a/../../b", "C:\\x", "..\\..\\y", "/etc/passwd", "日本", "a\x00b", "."]
)
def test_tab_keys_are_one_plain_component(name: str) -> None:
    key = tab_key(name)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", key), key
    assert len(key) <= 57
    assert posixpath.basename(posixpath.join(ROOT, key)) == key == PureWindowsPath(key).name


def test_tab_keys_keep_apart_names_whose_slugs_are_equal() -> None:
    names = ["Disk_I/O", "Disk I/O", "disk-i-o", "DISK_I_O", "Disk_I\\O"]
    keys = {tab_key(name) for name in names}
    assert len(keys) == len(names)
    assert all(key.startswith("disk-i-o-") for key in keys)
    assert tab_key("Disk_I/O") == tab_key("Disk_I/O")


def test_labels_undo_goliats_spaces_to_underscores() -> None:
    for tab in [
        "Timings",
        "Timings Piecharts",
        "Time Remaining",
        "Overall Progress",
        "System Utilization",
        "Disk I/O",
    ]:
        assert tab_label(tab.replace(" ", "_")) == tab
