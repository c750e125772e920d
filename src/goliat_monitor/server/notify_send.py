"""Sending one notification to one apprise URL, off the event loop, with a deadline.

The only module that imports apprise, and only when something is sent or a URL is checked:
nothing on the ingest path imports this module (`tests/api/test_notifications.py` checks that
a server that ingests GOLIAT messages never loads apprise).

Apprise sends synchronously (an HTTP request, an SMTP session), so each send runs on a daemon
thread of its own and the loop waits for it at most `timeout_s` (plus a little): a stuck service
costs one idle thread, never the loop or a shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

T = TypeVar("T")

ERROR_CHARS = 1000


@functools.cache
def _apprise() -> ModuleType:
    """apprise, with its plugins loaded once (they load on first use, one of them through the
    standard library's deprecated `imghdr`: that warning is apprise's, not ours to fail on)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise

        apprise.Apprise.instantiate("json://localhost")
    return apprise


def masked(url: str) -> str | None:
    """Apprise's privacy form of `url` without its query (secrets shown as `****`), or None
    when apprise cannot read the URL."""
    apprise = _apprise()
    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        return None
    shown: str = plugin.url(privacy=True)
    return shown.split("?", 1)[0]


def send(url: str, title: str, body: str, timeout_s: float) -> str | None:
    """Send now, in the calling thread; None when delivered, else what went wrong (without the URL)."""
    apprise = _apprise()
    sender = apprise.Apprise()
    if not sender.add(url):
        return "apprise cannot read this URL"
    result = sender.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT, timeout=timeout_s)
    if result:
        return None
    messages: list[str] = []
    with contextlib.suppress(Exception):  # the logs are a courtesy; the outcome is known
        for entry in result.logs():
            if entry.level in ("WARNING", "ERROR", "CRITICAL") and entry.message not in messages:
                messages.append(str(entry.message))
    status = getattr(getattr(result, "status", None), "name", "FAILURE")
    error = "; ".join(messages) or f"not delivered ({status})"
    return error.replace(url, "<url>")[:ERROR_CHARS]


async def in_thread(fn: Callable[[], T], timeout_s: float) -> T:
    """`fn()` on a daemon thread of its own; TimeoutError after `timeout_s` (the thread runs on)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def run() -> None:
        try:
            outcome: tuple[bool, Any] = (True, fn())
        except BaseException as exc:
            outcome = (False, exc)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=run, name="notify-send", daemon=True).start()
    return await asyncio.wait_for(future, timeout_s)


async def deliver(url: str, title: str, body: str, timeout_s: float) -> str | None:
    """`send` off the loop; None when delivered, else the error."""
    try:
        return await in_thread(lambda: send(url, title, body, timeout_s), timeout_s + 5.0)
    except TimeoutError:
        return f"no answer within {timeout_s:.0f} s"
    except Exception as exc:  # a plugin's own bug must not end the delivery loop
        return f"{type(exc).__name__}: {exc}".replace(url, "<url>")[:ERROR_CHARS]
