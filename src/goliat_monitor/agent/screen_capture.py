"""Screenshots of the GOLIAT window, taken by the agent itself, and the thread that sends them.

GOLIAT's GUI sends its tab screenshots only to the dashboard address it hard-codes, so behind our
agent none reach our server. With `--screenshots SECONDS` the agent grabs the GOLIAT window (the
first visible top-level window whose title contains "GOLIAT"; the whole screen when there is
none) with `mss`, scales it down and JPEG-compresses it under a size cap with Pillow, and sends it
as one GUI tab through `POST /api/gui-screenshots`.

Screenshots are state, not history: a send that fails is skipped and never spooled, the next
capture replaces it. Capturing needs a display; without one (a service session, no $DISPLAY)
the sender says so once and stops, and the agent runs on.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mss
from PIL import Image

from goliat_monitor.agent.client import AgentHTTPError, ServerClient

__all__ = [
    "MAX_JPEG_BYTES",
    "MAX_SIDE_PX",
    "SCREENSHOT_TAB",
    "WINDOW_TITLE",
    "CaptureUnavailable",
    "Region",
    "ScreenshotSender",
    "capture_goliat",
    "capture_goliat_jpeg",
    "encode_jpeg",
    "find_window",
]

log = logging.getLogger(__name__)

SCREENSHOT_TAB = "GOLIAT_window"
"""The form field (tab) the screenshots are sent as; the dashboard shows it as "GOLIAT window"."""
WINDOW_TITLE = "GOLIAT"
"""Text the GOLIAT window's title contains (GOLIAT's GUI puts its name in every title it sets)."""
MAX_SIDE_PX = 1600
MAX_JPEG_BYTES = 300 * 1024
_QUALITIES = (80, 65, 50, 35)
_SHRINK = 0.75  # when no quality fits, scale down by this much and try the qualities again


class CaptureUnavailable(Exception):
    """This machine has no display to capture: screenshots cannot work here at all."""


@dataclass(frozen=True)
class Region:
    """A rectangle in screen pixels (virtual-screen coordinates on Windows)."""

    left: int
    top: int
    width: int
    height: int

    def clipped(self, bounds: Region) -> Region | None:
        """The part of this region inside `bounds`, or None when they do not overlap."""
        left, top = max(self.left, bounds.left), max(self.top, bounds.top)
        right = min(self.left + self.width, bounds.left + bounds.width)
        bottom = min(self.top + self.height, bounds.top + bounds.height)
        if right <= left or bottom <= top:
            return None
        return Region(left, top, right - left, bottom - top)


# -- finding the GOLIAT window ---------------------------------------------------------------------

if sys.platform == "win32":
    import ctypes
    from ctypes import wintypes

    _WNDENUMPROC = ctypes.WINFUNCTYPE(wintypes.BOOL, wintypes.HWND, wintypes.LPARAM)

    def _find_window_windows(title_part: str) -> Region | None:
        """The topmost visible, not minimised top-level window whose title contains `title_part`."""
        user32 = ctypes.WinDLL("user32", use_last_error=True)
        found: list[Region] = []

        def visit(hwnd: int, _lparam: int) -> bool:
            if not user32.IsWindowVisible(hwnd) or user32.IsIconic(hwnd):
                return True
            length = user32.GetWindowTextLengthW(hwnd)
            title = ctypes.create_unicode_buffer(length + 1)
            user32.GetWindowTextW(hwnd, title, length + 1)
            if title_part not in title.value:
                return True
            rect = wintypes.RECT()
            if user32.GetWindowRect(hwnd, ctypes.byref(rect)):
                found.append(Region(rect.left, rect.top, rect.right - rect.left, rect.bottom - rect.top))
                return False  # EnumWindows goes from the top of the Z order: the first one wins
            return True

        user32.EnumWindows(_WNDENUMPROC(visit), 0)
        return found[0] if found else None


def _x11_title(window: Any) -> str:
    """A window's title: EWMH's UTF-8 `_NET_WM_NAME` when set, else the classic `WM_NAME`."""
    from Xlib import X

    net_name = window.get_full_property(window.display.get_atom("_NET_WM_NAME"), X.AnyPropertyType)
    if net_name is not None and net_name.value:
        value = net_name.value
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    name = window.get_wm_name()
    return name if isinstance(name, str) else ""


def _find_window_x11(title_part: str, display_name: str | None) -> Region | None:
    """The topmost viewable window whose title contains `title_part`, searched two levels deep.

    Without a window manager the application's window is a child of the root; with one, the
    child of the root is the manager's frame and the titled window sits inside it.
    """
    from Xlib import X, error
    from Xlib import display as xdisplay

    try:
        display = xdisplay.Display(display_name)
    except (error.DisplayError, OSError) as exc:  # mss could open it, so the screen still works
        log.debug("cannot list the X display's windows: %s", exc)
        return None
    try:
        root = display.screen().root
        frames = root.query_tree().children
        for frame in reversed(frames):  # query_tree lists bottom to top
            try:
                if frame.get_attributes().map_state != X.IsViewable:
                    continue
                candidates = [frame, *reversed(frame.query_tree().children)]
                for window in candidates:
                    if title_part in _x11_title(window):
                        origin = root.translate_coords(window, 0, 0)
                        geometry = window.get_geometry()
                        return Region(int(origin.x), int(origin.y), int(geometry.width), int(geometry.height))
            except error.XError:  # the window closed between the listing and the look
                continue
        return None
    finally:
        display.close()


def find_window(title_part: str = WINDOW_TITLE, display: str | None = None) -> Region | None:
    """Where the GOLIAT window is on the screen, or None (not found, or unsupported platform)."""
    if sys.platform == "win32":
        return _find_window_windows(title_part)
    if sys.platform == "darwin":
        return None  # listing other applications' windows needs screen-recording rights: use the screen
    return _find_window_x11(title_part, display)


# -- capture and encoding --------------------------------------------------------------------------


@dataclass(frozen=True)
class Screenshot:
    image: Image.Image
    window: Region | None
    """The GOLIAT window captured, or None when this is the whole screen."""


def _open_grabber(display: str | None) -> mss.MSS:
    if sys.platform in ("win32", "darwin"):
        return mss.MSS()  # `display` names an X11 display: the others have one desktop
    return mss.MSS(display=display)


def capture_goliat(title_part: str = WINDOW_TITLE, display: str | None = None) -> Screenshot:
    """Grab the GOLIAT window, or the whole (virtual) screen when no such window is shown.

    `display` is an X display name (default: $DISPLAY); other platforms have one screen.
    Raises CaptureUnavailable when there is no display at all, mss.ScreenShotError when the grab
    fails (a locked Windows session, say).
    """
    if sys.platform not in ("win32", "darwin") and not (display or os.environ.get("DISPLAY")):
        raise CaptureUnavailable("no X display: $DISPLAY is not set")
    # mss first: on Windows it makes the process DPI-aware, so the window's rectangle below is in
    # the same physical pixels mss grabs.
    with _open_grabber(display) as grabber:
        screen = grabber.monitors[0]  # every monitor together
        bounds = Region(screen["left"], screen["top"], screen["width"], screen["height"])
        found = find_window(title_part, display)
        window = found.clipped(bounds) if found is not None else None
        area = window or bounds
        shot = grabber.grab({"left": area.left, "top": area.top, "width": area.width, "height": area.height})
    image = Image.frombytes("RGB", shot.size, shot.bgra, "raw", "BGRX")
    return Screenshot(image, window)


def encode_jpeg(image: Image.Image, max_side: int = MAX_SIDE_PX, max_bytes: int = MAX_JPEG_BYTES) -> bytes:
    """JPEG of `image` with its longest side at most `max_side` and at most `max_bytes` long.

    Tries lower qualities first, then smaller sizes, so a busy screen still fits the cap and a
    plain one keeps its detail. Raises ValueError when even a 1-pixel image would not fit.
    """
    rgb = image.convert("RGB")
    scale = min(1.0, max_side / max(rgb.size))
    while True:
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        scaled = rgb if size == rgb.size else rgb.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        for quality in _QUALITIES:
            buffer = io.BytesIO()
            scaled.save(buffer, "JPEG", quality=quality, optimize=True)
            if buffer.tell() <= max_bytes:
                return buffer.getvalue()
        if size == (1, 1):
            raise ValueError(f"no JPEG of this image fits in {max_bytes} bytes")
        scale *= _SHRINK


def capture_goliat_jpeg(display: str | None = None) -> bytes:
    """The GOLIAT window (or the screen) as a JPEG under the size cap: what the sender sends."""
    return encode_jpeg(capture_goliat(display=display).image)


# -- the periodic sender ---------------------------------------------------------------------------


class ScreenshotSender:
    """Every `interval_s`, one fresh capture sent as the `SCREENSHOT_TAB` tab; runs in its own thread.

    Latest wins: a capture is taken only when the previous send is over, and a failed send is
    dropped (the next capture is newer anyway). Owns `client` and closes it on stop().
    """

    def __init__(
        self,
        client: ServerClient,
        interval_s: float,
        *,
        capture: Callable[[], bytes] = capture_goliat_jpeg,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("the screenshot interval must be positive")
        self.client = client
        self.interval_s = interval_s
        self.sent = 0
        self.skipped = 0
        self._capture = capture
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        log.info("screenshots of the GOLIAT window every %g s", self.interval_s)
        self._thread = threading.Thread(target=self._run, name="agent-screenshots", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, join_timeout: float = 5.0) -> None:
        """Stop after the capture or send in progress (bounded by the client's timeout)."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=join_timeout)
        self.client.close()

    def _run(self) -> None:
        failing = False  # log a run of failures once, and say when it ends
        next_at = time.monotonic()
        while not self._halt.wait(max(0.0, next_at - time.monotonic())):
            next_at = time.monotonic() + self.interval_s
            try:
                jpeg = self._capture()
            except CaptureUnavailable as exc:
                log.warning("screenshots are off: %s", exc)
                return
            except Exception as exc:  # a failed grab (locked session, display gone): try next time
                if not failing:
                    log.warning(
                        "cannot take a screenshot (%s); trying again every %g s", exc, self.interval_s
                    )
                failing = True
                continue
            if failing:
                log.info("taking screenshots again")
                failing = False
            try:
                self.client.post_screenshots({SCREENSHOT_TAB: jpeg})
            except AgentHTTPError as exc:
                self.skipped += 1
                log.debug("screenshot not sent (%s); the next one replaces it", exc)
                continue
            self.sent += 1
