"""Which uploaded names are acceptable.

Result files never leave their assignment's folder; a screenshot's tab name is a label that never
becomes a path.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

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


MAX_TAB_FIELD_LENGTH = 128
TAB_SLUG_LENGTH = 40
TAB_DIGEST_LENGTH = 16


def check_tab_name(value: str) -> str:
    """A screenshot part's field name, the tab's identity; ValueError saying why it is unusable.

    A tab name is a label, never a path: GOLIAT sends its `Disk I/O` tab as field `Disk_I/O`, so
    slashes, dots, backslashes and any script are all fine here; nothing is ever stored under the
    name itself (see `tab_key`). Refused are only names that cannot be shown or addressed: empty,
    too long, with control or invisible formatting characters, or `.`/`..` (a URL path segment
    that browsers and HTTP clients resolve away, even percent-encoded).
    """
    if not value:
        raise ValueError("field name is empty")
    if len(value) > MAX_TAB_FIELD_LENGTH:
        raise ValueError(f"field name is longer than {MAX_TAB_FIELD_LENGTH} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value):
        raise ValueError("field name contains a control character")
    if value in (".", ".."):
        raise ValueError(f"field name {value!r} cannot be addressed in a URL")
    return value


def tab_key(field: str) -> str:
    """A storage key for a tab: a readable ASCII slug plus a digest of the exact field name.

    Only `[a-z0-9-]`, so it is safe as one path component on every filesystem and object store;
    the digest keeps two field names apart even when their slugs are equal (`Disk_I/O`, `Disk I-O`).
    """
    ascii_name = unicodedata.normalize("NFKD", field).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:TAB_SLUG_LENGTH].strip("-")
    digest = hashlib.sha256(field.encode("utf-8", "surrogatepass")).hexdigest()[:TAB_DIGEST_LENGTH]
    return f"{slug or 'tab'}-{digest}"


def tab_label(field: str) -> str:
    """The tab name GOLIAT shows: its client sends the tab name with each space replaced by `_`."""
    return field.replace("_", " ")
