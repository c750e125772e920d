"""The agent's own screenshots of the GOLIAT window: encoding, real capture, the sender, end to end.

Capture runs for real: each module run starts Debian's Xvfb on a display number it picks itself
and opens real windows on it with `xmessage` (a window of one colour, titled like GOLIAT's). In CI
a missing Xvfb or xmessage is a failure, never a skip (`scripts/test` installs both).
"""

from __future__ import annotations

import io
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from goliat_monitor.agent.client import ServerClient
from goliat_monitor.agent.screen_capture import (
    MAX_JPEG_BYTES,
    MAX_SIDE_PX,
    SCREENSHOT_TAB,
    CaptureUnavailable,
    Region,
    ScreenshotSender,
    capture_goliat,
    capture_goliat_jpeg,
    encode_jpeg,
    find_window,
)
from tests.conftest import LiveServer
from tests.support import wait_for

SCREEN = (2400, 1200)  # wider than MAX_SIDE_PX, so a whole-screen capture must be scaled down
GOLIAT_RED = (208, 32, 48)
DECOY_BLUE = (32, 64, 208)
GOLIAT_TITLE = "GOLIAT - Study 3/12"


def share_of(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 40) -> float:
    """The fraction of `image`'s pixels within `tolerance` of `colour` on every channel."""
    rgb = image.convert("RGB")
    counts = rgb.getcolors(rgb.width * rgb.height) or []
    close = 0
    for count, pixel in counts:
        assert isinstance(pixel, tuple)
        if max(abs(a - b) for a, b in zip(pixel, colour, strict=True)) <= tolerance:
            close += count
    return close / (rgb.width * rgb.height)


def _require(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is not None:
        return path
    message = f"{program} is needed for the screenshot tests: apt-get install {package}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def x_display(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh Xvfb; `-displayfd` makes it pick a free display number and say it once it is ready."""
    xvfb = _require("Xvfb", "xvfb")
    _require("xmessage", "x11-utils")
    log_path = tmp_path_factory.mktemp("xvfb") / "xvfb.log"
    read_end, write_end = os.pipe()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                xvfb,
                "-displayfd",
                str(write_end),
                "-screen",
                "0",
                f"{SCREEN[0]}x{SCREEN[1]}x24",
                "-nolisten",
                "tcp",
                "-noreset",
            ],
            pass_fds=(write_end,),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    os.close(write_end)
    said = b""
    try:  # read up to the newline: Xvfb writes it separately, and dies if the pipe is closed first
        while b"\n" not in said and select.select([read_end], [], [], 30)[0]:
            chunk = os.read(read_end, 64)
            if not chunk:
                break
            said += chunk
    finally:
        os.close(read_end)
    number = said.decode().strip() if said.endswith(b"\n") else ""
    try:
        if not number:
            pytest.fail(f"Xvfb did not start: {log_path.read_text(errors='replace')[-2000:]}")
        yield f":{number}"
    finally:
        process.terminate()
        process.wait(timeout=10)


WindowOpener = Callable[[str, tuple[int, int, int], str], Region]


@pytest.fixture
def open_window(x_display: str) -> Iterator[WindowOpener]:
    """Open a real window (title, colour, X geometry) and wait until it is on the screen."""
    xmessage = _require("xmessage", "x11-utils")
    processes: list[subprocess.Popen[bytes]] = []

    def open_(title: str, colour: tuple[int, int, int], geometry: str) -> Region:
        background = "#{:02x}{:02x}{:02x}".format(*colour)
        argv = [xmessage, "-display", x_display, "-title", title, "-bg", background, "-fg", background]
        argv += ["-geometry", geometry, "-buttons", "", " "]
        processes.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        region: Region = wait_for(lambda: find_window(title, x_display), what=f"the window {title!r}")
        return region

    yield open_
    for process in processes:
        process.terminate()
        process.wait(timeout=10)
    wait_for(lambda: find_window("", x_display) is None, what="the test's windows to close")


def decode(jpeg: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG"
    image.load()
    return image


# -- encoding ---------------------------------------------------------------------------------------


def test_a_small_image_keeps_its_size_and_colour() -> None:
    jpeg = encode_jpeg(Image.new("RGB", (400, 300), GOLIAT_RED))
    image = decode(jpeg)
    assert image.size == (400, 300)
    assert share_of(image, GOLIAT_RED, tolerance=8) > 0.99


def test_the_longest_side_is_scaled_down_to_the_limit() -> None:
    image = decode(encode_jpeg(Image.new("RGB", (3200, 1000), DECOY_BLUE), max_side=1600))
    assert image.size == (1600, 500)


def test_a_busy_image_is_compressed_and_shrunk_under_the_cap() -> None:
    noise = Image.frombytes("RGB", (1600, 1200), os.urandom(1600 * 1200 * 3))
    jpeg = encode_jpeg(noise, max_bytes=MAX_JPEG_BYTES)
    assert len(jpeg) <= MAX_JPEG_BYTES
    image = decode(jpeg)
    assert image.width < 1600  # noise does not fit at full size even at the lowest quality
    assert image.width / image.height == pytest.approx(4 / 3, rel=0.01)


def test_a_cap_nothing_fits_is_refused() -> None:
    with pytest.raises(ValueError, match="fits"):
        encode_jpeg(Image.new("RGB", (50, 50), GOLIAT_RED), max_bytes=20)


def test_a_window_partly_off_the_screen_is_clipped_to_it() -> None:
    screen = Region(0, 0, 1920, 1080)
    assert Region(1800, -50, 400, 300).clipped(screen) == Region(1800, 0, 120, 250)
    assert Region(2000, 0, 100, 100).clipped(screen) is None


# -- capture on a real X display ------------------------------------------------------------------


def test_capture_takes_the_goliat_window(x_display: str, open_window: WindowOpener) -> None:
    window = open_window(GOLIAT_TITLE, GOLIAT_RED, "400x300+100+80")
    open_window("Notes", DECOY_BLUE, "300x200+700+500")  # opened last, so on top: not the one
    shot = capture_goliat(display=x_display)
    assert shot.window == window
    assert (window.width, window.height) == (400, 300)

    jpeg = capture_goliat_jpeg(display=x_display)
    assert len(jpeg) <= MAX_JPEG_BYTES
    image = decode(jpeg)
    assert image.size == (400, 300)
    assert share_of(image, GOLIAT_RED) > 0.9


def test_capture_takes_the_whole_screen_without_a_goliat_window(
    x_display: str, open_window: WindowOpener
) -> None:
    open_window("Notes", DECOY_BLUE, "600x400+1200+400")
    shot = capture_goliat(display=x_display)
    assert shot.window is None
    assert shot.image.size == SCREEN

    image = decode(capture_goliat_jpeg(display=x_display))
    assert max(image.size) == MAX_SIDE_PX
    assert image.size == (1600, 800)
    # The other window's middle (1500, 600) on the screen is at (1000, 400) once scaled by 2/3.
    assert share_of(image.crop((950, 350, 1050, 450)), DECOY_BLUE) > 0.9
    assert share_of(image.crop((0, 0, 100, 100)), DECOY_BLUE) == 0


def test_without_a_display_capture_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(CaptureUnavailable, match="DISPLAY"):
        capture_goliat()


# -- the sender -------------------------------------------------------------------------------------


class FakeServer:
    """An httpx MockTransport that answers the screenshot posts from a script of statuses."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[bytes] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/gui-screenshots"
        with self.lock:
            self.bodies.append(request.read())
            status = self.statuses.pop(0) if self.statuses else 200
        return httpx.Response(status, json={"success": status == 200})

    def client(self) -> ServerClient:
        return ServerClient(
            "http://monitor.test", machine_id="vm-7", agent_id="agent-7", transport=httpx.MockTransport(self)
        )


def test_a_failed_send_is_dropped_and_the_next_capture_goes_instead() -> None:
    server = FakeServer([503])
    frames = iter(range(1, 1000))
    sender = ScreenshotSender(server.client(), 0.01, capture=lambda: b"frame-%d" % next(frames))
    sender.start()
    try:
        wait_for(lambda: sender.sent >= 1, what="a screenshot to be sent")
    finally:
        sender.stop()
    first, second = server.bodies[:2]
    assert b"frame-1\r\n" in first
    assert b"frame-2\r\n" in second  # the refused frame is not sent again: the newer one replaces it
    assert sender.skipped == 1
    assert f'name="{SCREENSHOT_TAB}"; filename="{SCREENSHOT_TAB}.jpg"'.encode() in second
    assert b'name="machineId"\r\n\r\nvm-7\r\n' in second
    assert b'name="agentId"\r\n\r\nagent-7\r\n' in second


def test_without_a_display_the_sender_stops_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    server = FakeServer([])
    attempts: list[int] = []

    def no_display() -> bytes:
        attempts.append(1)
        raise CaptureUnavailable("no X display: $DISPLAY is not set")

    sender = ScreenshotSender(server.client(), 0.01, capture=no_display)
    with caplog.at_level("WARNING", logger="goliat_monitor.agent.screen_capture"):
        sender.start()
        wait_for(lambda: not sender.running, what="the sender to give up")
    sender.stop()
    assert attempts == [1]
    assert server.bodies == []
    assert [r.getMessage() for r in caplog.records] == [
        "screenshots are off: no X display: $DISPLAY is not set"
    ]


def test_a_failing_grab_is_retried_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    server = FakeServer([])
    outcomes: list[bytes | Exception] = [OSError("screen locked"), OSError("screen locked"), b"frame"]

    def grab() -> bytes:
        outcome = outcomes.pop(0) if outcomes else b"frame"
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    sender = ScreenshotSender(server.client(), 0.01, capture=grab)
    with caplog.at_level("INFO", logger="goliat_monitor.agent.screen_capture"):
        sender.start()
        try:
            wait_for(lambda: sender.sent >= 1, what="a screenshot after the failures")
        finally:
            sender.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot take a screenshot (screen locked)" in m for m in messages) == 1
    assert "taking screenshots again" in messages


# -- end to end: the agent's --screenshots against a real server ------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="Xvfb and POSIX signals")
def test_the_agent_sends_the_goliat_window_to_the_server(
    server: LiveServer, x_display: str, open_window: WindowOpener, tmp_path: Path
) -> None:
    open_window(GOLIAT_TITLE, GOLIAT_RED, "480x320+300+200")
    argv = [sys.executable, "-m", "goliat_monitor", "agent", "--server", server.url, "--plain"]
    argv += ["--work-dir", str(tmp_path / "agent"), "--machine-id", "vm-shots", "--screenshots", "0.5"]
    env = {**os.environ, "DISPLAY": x_display}
    with (tmp_path / "agent.log").open("wb") as log:
        agent = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:

        def stored_tab() -> str | None:
            for worker in server.client.get("/api/workers").json():
                detail = server.client.get(f"/api/workers/{worker['id']}").json()
                if any(shot["tab"] == SCREENSHOT_TAB for shot in detail.get("screenshots") or []):
                    return str(worker["id"])
            return None

        worker_id = wait_for(stored_tab, timeout=60, what="the agent's screenshot on the server")
        answer = server.client.get(f"/api/workers/{worker_id}/screenshots/{SCREENSHOT_TAB}")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "image/jpeg"
        image = decode(answer.content)
        assert image.size == (480, 320)
        assert share_of(image, GOLIAT_RED) > 0.9
    finally:
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(timeout=30)
    assert code == 0, (tmp_path / "agent.log").read_text(errors="replace")
