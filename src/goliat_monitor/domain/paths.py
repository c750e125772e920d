"""Which uploaded paths are acceptable: result files must never leave their assignment's folder."""

from __future__ import annotations

import re

_DRIVE = re.compile(r"^[A-Za-z]:")
MAX_PATH_LENGTH = 1024
MAX_NAME_LENGTH = 255


def check_relative_path(value: str) -> str:
    """A safe, normalised `relativePath` ("" allowed), or ValueError saying what is wrong.

    Refuses absolute paths, `..`, drive letters, NUL and other control bytes, and backslashes
    (GOLIAT always sends forward slashes; a backslash can only be an escape attempt on Windows).
    """
    if len(value) > MAX_PATH_LENGTH:
        raise ValueError("relativePath is too long")
    if any(ord(ch) < 32 or ch == "\x7f" for ch in value):
        raise ValueError("relativePath contains a control character")
    if "\\" in value:
        raise ValueError("relativePath contains a backslash")
    if value.startswith("/") or _DRIVE.match(value):
        raise ValueError("relativePath must be relative")
    parts = [part for part in value.split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts):
        raise ValueError("relativePath must not contain '..'")
    if any(":" in part for part in parts):
        raise ValueError("relativePath must not contain ':'")
    return "/".join(parts)


def check_filename(value: str) -> str:
    """A plain file name: no folders, no escapes."""
    if not value or len(value) > MAX_NAME_LENGTH:
        raise ValueError("file name is empty or too long")
    if any(ord(ch) < 32 or ch == "\x7f" for ch in value):
        raise ValueError("file name contains a control character")
    if "/" in value or "\\" in value or ":" in value or value in (".", ".."):
        raise ValueError(f"file name {value!r} is not a plain name")
    return value


def check_tab_name(value: str) -> str:
    """A GUI tab name as a screenshot field name (letters, digits, `_`, `-`, space)."""
    if not value or len(value) > 128 or not re.fullmatch(r"[\w\- ]+", value):
        raise ValueError(f"screenshot field {value!r} is not a tab name")
    return value
