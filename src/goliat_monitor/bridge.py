"""A drop-in replacement for GOLIAT's ``WebGUIBridge`` that never loses what it could not send yet.

It speaks GOLIAT's HTTP protocol (``/api/heartbeat``, ``/api/gui-update``, ``/api/gui-screenshots``;
see docs/goliat-protocol.md) with the same public surface, and differs where that matters for a
campaign running unattended for days:

* Everything goes out in enqueue order from one sender thread; a failed send is retried before
  anything behind it, so log batches keep their ``sequence`` order and a ``finished`` never
  overtakes what came before it. Only progress values are coalesced (latest value wins).
* Every gui-update carries a ``messageId`` fixed when the message is formed, so a redelivery after
  a lost answer is dropped by the server: delivery is at least once, the effect exactly once.
* What each answer means, the backoff, log batching and progress throttling are those of the
  agent: both use ``delivery.py``. A 401/403 keeps the message and backs off long; a message the
  server refuses (422, 413, ...) is dropped and counted in ``rejected``.
* Memory is bounded by ``max_buffer``: past it the oldest unsent messages are dropped and counted
  in ``dropped``. With ``spool_path`` every formed message is written to a SQLite spool first
  (so it survives the process being killed) and replayed, in order, by the next bridge that
  opens the same file.
* Screenshots are state, not history: only the newest set is kept and sent (multipart) on its own
  thread, so a 2 MB upload never delays logs and an outage never piles up stale images.

Standard library, ``delivery.py`` (what a message becomes, what an answer means) and ``outbox.py``
(where formed messages wait: memory or the SQLite spool) only, so GOLIAT can use the three files
without installing goliat-monitor (README: "Using the bridge without installing goliat-monitor").
What stays here is the bridge itself: GOLIAT's surface, its threads, and HTTP.
"""

from __future__ import annotations

import http.client
import logging
import math
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING or __package__:  # in goliat_monitor, or copied into any package beside its siblings
    from . import delivery, outbox
else:  # copied beside delivery.py and outbox.py as top-level modules
    import delivery
    import outbox

__all__ = ["WebGUIBridge", "encode_multipart"]

logger = logging.getLogger(__name__)

LOG_BATCH_MAX_LINES = 10
LOG_BATCH_MAX_AGE_S = 0.05
USER_AGENT = "goliat-monitor-bridge/1"

_STOP = object()  # intake sentinel: the processor drains, flushes and exits


@dataclass(frozen=True, slots=True)
class _Answer:
    """What one POST came back with; status None means no HTTP answer (network error, timeout)."""

    status: int | None
    detail: str = ""
    retry_after: float | None = None

    @property
    def outcome(self) -> delivery.Outcome:
        return delivery.outcome_for(self.status)

    def describe(self) -> str:
        if self.status is None:
            return self.detail
        return f"HTTP {self.status}: {self.detail}" if self.detail else f"HTTP {self.status}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Surface 3xx as errors: urllib would replay a POST as a body-less GET."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebGUIBridge:
    """Forward GOLIAT GUI messages to a goliat-monitor server (or local agent), losing nothing.

    ``enqueue`` is safe from any thread, never blocks and never raises. ``stop`` flushes what it
    can within its timeout; with a spool the rest stays on disk for the next run.

    ``max_buffer`` bounds what is held in memory (the intake queue, and without a spool the
    outbox); with ``spool_path`` the outbox is on disk and bounded by ``max_spooled`` instead.
    ``token`` is sent as ``Authorization: Bearer``; ``agent_id`` is added to every body. The
    remaining keywords tune timing and exist mostly so tests run fast. Counters ``sent``,
    ``dropped``, ``rejected``, ``retries`` and ``screenshots_sent`` can be read at any time.
    """

    def __init__(
        self,
        server_url: str,
        machine_id: str,
        *,
        token: str | None = None,
        spool_path: str | None = None,
        max_buffer: int = 10_000,
        progress_hz: float = 5.0,
        agent_id: str | None = None,
        heartbeat_interval: float = 30.0,
        request_timeout: float = 10.0,
        screenshot_timeout: float = 30.0,
        retry_base: float = 0.5,
        retry_cap: float = 30.0,
        max_spooled: int = 1_000_000,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.machine_id = machine_id
        self.agent_id = agent_id
        self.max_buffer = max(1, int(max_buffer))
        self._token = token
        self._heartbeat_interval = heartbeat_interval
        self._request_timeout = request_timeout
        self._screenshot_timeout = screenshot_timeout
        self._retry_base = retry_base
        self._retry_cap = retry_cap
        self._opener = urllib.request.build_opener(_NoRedirect)
        self._tally = outbox.Tally(logger)

        self._system_info: dict[str, Any] = {}
        self._connection_callback: Callable[[bool], None] | None = None
        self._connected = False
        self._connected_lock = threading.Lock()

        # Caller -> processor. SimpleQueue.put never blocks; the bound is checked in enqueue.
        self._intake: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Processor -> sender; the shaper is the processor's alone.
        self._shaper = delivery.Shaper(
            progress_hz=progress_hz, batch_lines=LOG_BATCH_MAX_LINES, batch_age=LOG_BATCH_MAX_AGE_S
        )
        self._outbox = outbox.open_outbox(self._tally, self.max_buffer, spool_path, max(1, int(max_spooled)))

        # Newest screenshots waiting to go (screenshots are state: a newer set replaces older).
        self._shot_cv = threading.Condition()
        self._shot: dict[str, bytes] | None = None

        self._wake = threading.Event()  # cuts a retry backoff short (server back, or stopping)
        self._halt = threading.Event()  # stop() was called: heartbeats and screenshots end
        self._deadline: float | None = None  # monotonic time by which stop() gives up
        self._accepting = True
        self._started = False
        self._stopped = False
        self._threads: dict[str, threading.Thread] = {}

    # -- public surface (GOLIAT's) -------------------------------------------------------------

    @property
    def sent(self) -> int:
        """Messages the server accepted."""
        return self._tally.sent

    @property
    def dropped(self) -> int:
        """Messages lost to a bound, to stop() or to a failing spool."""
        return self._tally.dropped

    @property
    def rejected(self) -> int:
        """Messages the server (or the bridge) refused for good."""
        return self._tally.rejected

    @property
    def retries(self) -> int:
        """Failed attempts that will be retried."""
        return self._tally.retries

    @property
    def screenshots_sent(self) -> int:
        return self._tally.screenshots_sent

    @property
    def is_connected(self) -> bool:
        """Whether the last exchange with the server succeeded."""
        return self._connected

    @property
    def running(self) -> bool:
        """True between start() and stop(); GOLIAT checks it before enqueueing its final messages."""
        return self._started and not self._stopped

    @property
    def pending(self) -> int:
        """Messages accepted but not yet delivered (approximate while threads are busy)."""
        return self._intake.qsize() + self._shaper.held + self._outbox.depth()

    def set_system_info(self, system_info: dict[str, Any]) -> None:
        """Fields sent with every heartbeat (gpuName, cpuCores, totalRamGB, hostname, ...)."""
        self._system_info = dict(system_info or {})

    def set_connection_callback(self, callback: Callable[[bool], None]) -> None:
        """Called with the new state whenever connectivity changes (and once at start)."""
        self._connection_callback = callback

    def send_heartbeat_with_system_info(self, system_info: dict[str, Any]) -> None:
        """GOLIAT's name for: remember the system info and send a heartbeat now."""
        self.set_system_info(system_info)
        self._send_heartbeat()

    def enqueue(self, message: dict[str, Any]) -> None:
        """Accept a GUI message for delivery. Never blocks, never raises."""
        try:
            if not self._accepting:
                self._tally.note_dropped(1, "bridge stopped")
                return
            if not isinstance(message, Mapping):
                self._tally.note_rejected(f"not a dict: {type(message).__name__}")
                return
            if self._intake.qsize() >= self.max_buffer:
                self._tally.note_dropped(1, "intake full")
                return
            self._intake.put((time.time(), dict(message)))
        except Exception:  # the caller is a GUI loop: never let monitoring break it
            logger.exception("bridge: could not enqueue a message")

    def start(self) -> None:
        """Start the processor, sender, heartbeat and screenshot threads."""
        if self._started:
            return
        self._started = True
        self._notify_connection(self._connected)  # GOLIAT's GUI shows the initial state at once
        targets = {
            "processor": self._process_loop,
            "sender": self._send_loop,
            "heartbeat": self._heartbeat_loop,
            "screenshots": self._screenshot_loop,
        }
        for name, target in targets.items():
            thread = threading.Thread(target=target, name=f"goliat-bridge-{name}", daemon=True)
            self._threads[name] = thread
            thread.start()
        logger.info("bridge started: %s machine_id=%s", self.server_url, self.machine_id)

    def stop(self, timeout: float = 5.0) -> None:
        """Flush within `timeout` seconds; with a spool, what is left stays spooled."""
        if self._stopped:
            return
        self._stopped = True
        self._accepting = False
        if self._started:
            deadline = time.monotonic() + max(0.0, timeout)
            self._deadline = deadline
            self._intake.put(_STOP)
            self._halt.set()
            self._wake.set()
            with self._shot_cv:
                self._shot_cv.notify_all()
            # The processor does no network I/O and finishes in milliseconds; waiting for it even
            # past a zero timeout means nothing formed is left in limbo between it and the sender.
            self._join("processor", max(2.0, deadline - time.monotonic()))
            self._join("sender", max(0.0, deadline - time.monotonic()))
        self._count_intake_leftovers()
        self._outbox.close(sender_running=self._started)
        tally = self._tally
        logger.info(
            "bridge stopped: sent=%d rejected=%d dropped=%d", tally.sent, tally.rejected, tally.dropped
        )

    def _join(self, name: str, timeout: float) -> None:
        thread = self._threads[name]
        if thread is not threading.current_thread():  # stop() called from a callback
            thread.join(timeout)

    # -- processor: intake -> delivery.Shaper -> outbox ------------------------------------------

    def _process_loop(self) -> None:
        stopping = False
        try:
            while not stopping:
                try:
                    stopping = self._process_cycle()
                except Exception:  # keep serving: one bad cycle must not silence the bridge
                    logger.exception("bridge: processor error")
                    time.sleep(0.1)
        finally:
            self._outbox.finish_producing()

    def _process_cycle(self) -> bool:
        """Drain the intake, pass on what is due, hand it to the sender; True once stop() was seen."""
        due = self._shaper.next_due()
        now = time.monotonic()
        items, stopping = delivery.drain(self._intake, min(now + 1.0, due or math.inf) - now, _STOP)
        shaped: list[delivery.Shaped] = []
        for item in items:
            self._accept(item, shaped)
        self._shaper.flush(time.monotonic(), shaped, force=stopping)
        envelopes = [env for message, wall in shaped if (env := self._envelope(message, wall))]
        if envelopes:
            self._outbox.put(envelopes)
        return stopping

    def _accept(self, item: tuple[float, dict[str, Any]], shaped: list[delivery.Shaped]) -> None:
        wall, msg = item
        try:
            if msg.get("type") == "gui_screenshots":
                self._offer_screenshots(msg.get("screenshots"))
            else:
                self._shaper.add(msg, wall, time.monotonic(), shaped)
        except Exception:
            logger.exception("bridge: could not process a %r message", msg.get("type"))

    def _envelope(self, message: dict[str, Any], wall: float) -> outbox.Envelope | None:
        """The final gui-update body of `message`, with its messageId; None if it cannot be sent."""
        message_id = uuid.uuid4().hex
        body: dict[str, Any] = {
            "machineId": self.machine_id,
            "message": message,
            "timestamp": wall,
            "messageId": message_id,
        }
        if self.agent_id:
            body["agentId"] = self.agent_id
        try:
            data = delivery.encode_json(body)
        except (TypeError, ValueError) as exc:
            self._tally.note_rejected(f"{message.get('type')!r} is not JSON-encodable: {exc}")
            return None
        return outbox.Envelope(data, message_id, str(message.get("type", "")))

    # -- sender: outbox -> POST /api/gui-update, in order, with retries -------------------------

    def _send_loop(self) -> None:
        env: outbox.Envelope | None = None
        failures = 0
        try:
            while True:
                try:
                    if env is None:
                        env = self._outbox.take(self._past_deadline)
                        if env is None:
                            return
                    elif self._past_deadline():
                        return
                    if self._send_one(env, failures):
                        env, failures = None, 0
                    else:
                        failures += 1
                except Exception:  # keep serving: one bad cycle must not silence the bridge
                    logger.exception("bridge: sender error")
                    time.sleep(0.1)
        finally:
            try:
                self._outbox.sender_exit(env)
            except Exception:
                logger.exception("bridge: could not settle the outbox")

    def _send_one(self, env: outbox.Envelope, failures: int) -> bool:
        """POST one message; True when done with it (delivered or dropped), False to retry it."""
        answer = self._post("/api/gui-update", env.data, "application/json", self._timeout())
        outcome = answer.outcome
        if outcome is delivery.Outcome.DELIVERED:
            self._tally.count("sent")
            self._set_connected(True)
        elif outcome is delivery.Outcome.DROP:
            self._tally.note_rejected(f"{env.msg_type} {env.message_id} got {answer.describe()}")
        else:
            self._tally.count("retries")
            self._set_connected(False)
            self._outbox.failed(env)
            if outcome is delivery.Outcome.GIVE_UP_AND_KEEP:
                self._tally.warn(
                    "refused",
                    "bridge: %s refused us (%s): check the server URL and token; %d message(s) kept",
                    self.server_url,
                    answer.describe(),
                    self.pending,
                )
            else:
                self._tally.warn(
                    "outage",
                    "bridge: %s unreachable (%s); retrying in order, %d message(s) waiting",
                    self.server_url,
                    answer.describe(),
                    self.pending,
                )
            self._backoff(outcome, failures + 1, answer.retry_after)
            return False
        self._outbox.done(env)
        return True

    def _backoff(self, outcome: delivery.Outcome, failures: int, retry_after: float | None) -> None:
        """Wait as `delivery.retry_delay` says; a heartbeat success or stop() cuts it short."""
        delay = delivery.retry_delay(
            outcome, failures, base=self._retry_base, cap=self._retry_cap, retry_after=retry_after
        )
        if self._deadline is not None:
            delay = min(delay, max(0.0, self._deadline - time.monotonic()))
        if self._wake.wait(delay):
            self._wake.clear()

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _timeout(self, default: float | None = None) -> float:
        """Per-request timeout, shortened while stop() is waiting so it can return on time."""
        timeout = self._request_timeout if default is None else default
        if self._deadline is not None:
            timeout = min(timeout, max(0.05, self._deadline - time.monotonic()))
        return timeout

    # -- heartbeat and screenshots --------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        while not self._halt.is_set():
            try:
                self._send_heartbeat()
            except Exception:
                logger.exception("bridge: heartbeat failed")
            if self._halt.wait(self._heartbeat_interval):
                return

    def _send_heartbeat(self) -> bool:
        payload: dict[str, Any] = {**self._system_info, "machineId": self.machine_id}
        if self.agent_id:
            payload["agentId"] = self.agent_id
        answer = self._post(
            "/api/heartbeat", delivery.encode_json(payload), "application/json", self._timeout()
        )
        ok = answer.outcome is delivery.Outcome.DELIVERED
        self._set_connected(ok)
        if ok:
            self._wake.set()  # the server is back: retry now rather than after the backoff
        elif answer.outcome is not delivery.Outcome.RETRY_LATER:
            self._tally.warn("heartbeat", "bridge: heartbeat refused with %s", answer.describe())
        return ok

    def _offer_screenshots(self, screenshots: Any) -> None:
        if not isinstance(screenshots, Mapping) or not screenshots:
            return
        shots = {
            str(tab): bytes(data)
            for tab, data in screenshots.items()
            if isinstance(data, bytes | bytearray | memoryview)
        }
        if shots:
            with self._shot_cv:
                self._shot = shots
                self._shot_cv.notify_all()

    def _screenshot_loop(self) -> None:
        failures = 0
        while True:
            with self._shot_cv:
                while self._shot is None and not self._halt.is_set():
                    self._shot_cv.wait()
                if self._halt.is_set():
                    return
                shots = self._shot
            assert shots is not None
            answer = self._send_screenshots(shots)
            outcome = answer.outcome
            if outcome is delivery.Outcome.DELIVERED or outcome is delivery.Outcome.DROP:
                if outcome is delivery.Outcome.DELIVERED:
                    self._tally.count("screenshots_sent")
                    self._set_connected(True)
                else:
                    self._tally.warn("screenshots", "bridge: screenshots refused: %s", answer.describe())
                failures = 0
                with self._shot_cv:
                    if self._shot is shots:
                        self._shot = None
                continue
            failures += 1
            delay = delivery.retry_delay(
                outcome, failures, base=self._retry_base, cap=self._retry_cap, retry_after=answer.retry_after
            )
            if self._halt.wait(delay):
                return

    def _send_screenshots(self, shots: dict[str, bytes]) -> _Answer:
        fields = {"machineId": self.machine_id}
        if self.agent_id:
            fields["agentId"] = self.agent_id
        files = [(tab.replace(" ", "_"), data) for tab, data in shots.items()]
        try:
            body, content_type = encode_multipart(fields, files)
            return self._post("/api/gui-screenshots", body, content_type, self._screenshot_timeout)
        except Exception as exc:
            logger.exception("bridge: could not send screenshots")
            return _Answer(None, repr(exc))

    # -- HTTP -------------------------------------------------------------------------------------

    def _post(self, path: str, data: bytes, content_type: str, timeout: float) -> _Answer:
        headers = {"Content-Type": content_type, "Accept": "application/json", "User-Agent": USER_AGENT}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(self.server_url + path, data=data, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=timeout) as response:
                response.read()
                return _Answer(response.status)
        except urllib.error.HTTPError as exc:
            try:
                detail = exc.read(300).decode("utf-8", "replace")
            except Exception:
                detail = ""
            finally:
                exc.close()
            return _Answer(exc.code, detail, delivery.parse_retry_after(exc.headers.get("Retry-After")))
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            return _Answer(None, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # never let an odd failure kill a sending thread: retry it
            logger.exception("bridge: unexpected error posting to %s", path)
            return _Answer(None, f"{type(exc).__name__}: {exc}")

    # -- bookkeeping ------------------------------------------------------------------------------

    def _set_connected(self, connected: bool) -> None:
        with self._connected_lock:
            changed = connected != self._connected
            self._connected = connected
        if changed:
            if connected:
                logger.info("bridge: connected to %s", self.server_url)
            self._notify_connection(connected)

    def _notify_connection(self, connected: bool) -> None:
        callback = self._connection_callback
        if callback is None:
            return
        try:
            callback(connected)
        except Exception:
            logger.exception("bridge: connection callback failed")

    def _count_intake_leftovers(self) -> None:
        left = 0
        while True:
            try:
                item = self._intake.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                left += 1
        if left:
            self._tally.note_dropped(left, "enqueued after the bridge stopped", force_log=True)


# -- helpers ----------------------------------------------------------------------------------


def _quote_field(name: str) -> str:
    """Escape a form field name the way browsers do (HTML: quote and line breaks percent-encoded)."""
    return name.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22")


def encode_multipart(fields: Mapping[str, str], files: Iterable[tuple[str, bytes]]) -> tuple[bytes, str]:
    """Encode a multipart/form-data body: text `fields`, then one JPEG part per (field, bytes).

    Each file is named ``<field>.jpg`` with type image/jpeg, as GOLIAT sends its screenshots.
    Returns the body and the Content-Type header value (with the boundary).
    """
    file_list = [(name, bytes(data)) for name, data in files]
    while True:
        boundary = uuid.uuid4().hex
        marker = boundary.encode()
        if not any(marker in data for _, data in file_list):
            break
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote_field(name)}"\r\n\r\n'.encode()
            + str(value).encode()
            + b"\r\n"
        )
    for name, data in file_list:
        quoted = _quote_field(name)
        header = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{quoted}"; filename="{quoted}.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        )
        parts.append(header.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
