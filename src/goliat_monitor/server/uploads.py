"""Multipart uploads (result files, screenshots): validate, then store, then index.

A result upload is all or nothing: nothing is stored unless the whole request is acceptable, so a
refused upload changes nothing. A screenshot upload is judged part by part (`sort_screenshot_parts`):
each tab is its own latest image, and GOLIAT's client cannot resend a single tab.
"""

from __future__ import annotations

import errno
import hashlib
import mimetypes
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException

from goliat_monitor.domain.paths import MAX_TAB_FIELD_LENGTH, check_tab_name, tab_key
from goliat_monitor.errors import BadRequest, InsufficientStorage, TooLarge

MAX_PARTS = 2000


async def close_form_afterwards(request: Request) -> AsyncIterator[None]:
    """A route dependency that closes the parsed form's spooled files once the request is done.

    `read_form` parses the body by hand (so a 404 can come before the parse), which FastAPI does
    not know to clean up; without this every upload left its temporary files to the GC.
    """
    try:
        yield
    finally:
        await request.close()


async def read_form(request: Request) -> FormData:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise BadRequest("Expected a multipart/form-data body")
    try:
        return await request.form(max_files=MAX_PARTS, max_fields=MAX_PARTS)
    except HTTPException:  # 413 from the body limit
        raise
    except OSError as exc:  # parts past 1 MiB are spooled to the temporary folder
        if exc.errno == errno.ENOSPC:
            raise InsufficientStorage("temporary folder", path=tempfile.gettempdir()) from exc
        raise BadRequest(f"Malformed multipart body: {exc}") from exc
    except Exception as exc:  # malformed multipart is the client's fault, never a 500
        raise BadRequest(f"Malformed multipart body: {exc}") from exc


def form_text(form: FormData, name: str, *, required: bool = True, max_length: int = 1024) -> str | None:
    value = form.get(name)
    if value is None or (isinstance(value, str) and value == ""):
        if required:
            raise BadRequest(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a text field")
    if len(value) > max_length:
        raise BadRequest(f"{name} is too long")
    return value


def check_file_sizes(files: list[UploadFile], *, max_file_bytes: int) -> None:
    for upload in files:
        if upload.size is not None and upload.size > max_file_bytes:
            raise TooLarge(f"{upload.filename!r} is larger than {max_file_bytes} bytes")


def guess_content_type(name: str) -> str:
    kind, _ = mimetypes.guess_type(name)
    if name.endswith((".log", ".txt")):
        return "text/plain; charset=utf-8"
    if name.endswith(".json"):
        return "application/json"
    return kind or "application/octet-stream"


JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def image_type(head: bytes) -> str | None:
    """The content type an image's first bytes prove (JPEG or PNG), or None.

    Screenshots are served from our own origin, so the type a client declares is never trusted.
    """
    if head.startswith(JPEG_MAGIC):
        return "image/jpeg"
    if head.startswith(PNG_MAGIC):
        return "image/png"
    return None


@dataclass(frozen=True)
class ScreenshotPart:
    """A part worth storing: its field name (the tab) and the image type its bytes prove."""

    field: str
    upload: UploadFile
    content_type: str


@dataclass(frozen=True)
class DroppedPart:
    field: str
    reason: str


async def sort_screenshot_parts(
    parts: list[tuple[str, UploadFile]], *, max_file_bytes: int
) -> tuple[list[ScreenshotPart], list[DroppedPart]]:
    """Judge each file part of a screenshot upload alone: the ones to store, and the dropped with why.

    One bad part must never cost the good ones their place. A field sent twice keeps its last part,
    as a newer screenshot of a tab replaces the older one.
    """
    last_index = {field: index for index, (field, _) in enumerate(parts)}
    kept: list[ScreenshotPart] = []
    dropped: list[DroppedPart] = []
    for index, (field, upload) in enumerate(parts):
        shown = field[:MAX_TAB_FIELD_LENGTH]  # the answer never echoes an unbounded name back
        try:
            check_tab_name(field)
        except ValueError as exc:
            dropped.append(DroppedPart(shown, str(exc)))
            continue
        if last_index[field] != index:
            dropped.append(DroppedPart(field, "sent again in this request: the later part is kept"))
            continue
        if upload.size is not None and upload.size > max_file_bytes:
            dropped.append(DroppedPart(field, f"file is larger than {max_file_bytes} bytes"))
            continue
        await upload.seek(0)
        head = await upload.read(len(PNG_MAGIC))
        await upload.seek(0)
        kind = image_type(head)
        if not head:
            dropped.append(DroppedPart(field, "file is empty"))
        elif kind is None:
            dropped.append(DroppedPart(field, "not a JPEG or PNG image"))
        else:
            kept.append(ScreenshotPart(field, upload, kind))
    return kept, dropped


@dataclass(frozen=True)
class ScreenshotKey:
    """Screenshots are replaced in place: one blob per machine, agent and tab.

    The blob key is built from `tab_key`, never from the field name itself, so a tab called
    `Disk_I/O` or `../x` is one plain file inside the screenshots folder.
    """

    machine_id: str
    agent_id: str | None

    def blob_key(self, tab: str) -> str:
        digest = hashlib.sha256(f"{self.machine_id}\x00{self.agent_id or ''}".encode()).hexdigest()[:32]
        return f"screenshots/{digest}/{tab_key(tab)}"
