"""Multipart uploads (result files, screenshots): validate everything, then store, then index.

Nothing is stored unless the whole request is acceptable, so a refused upload changes nothing.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException

from goliat_monitor.errors import BadRequest, TooLarge

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


@dataclass(frozen=True)
class ScreenshotKey:
    """Screenshots are replaced in place: one blob per machine, agent and tab."""

    machine_id: str
    agent_id: str | None

    def blob_key(self, tab: str) -> str:
        digest = hashlib.sha256(f"{self.machine_id}\x00{self.agent_id or ''}".encode()).hexdigest()[:32]
        return f"screenshots/{digest}/{tab}"
