"""A drop-in replacement for GOLIAT's ``WebGUIBridge`` that never loses what it could not send yet.

GOLIAT's bridge (``goliat/utils/gui_bridge.py``) forwards GUI messages to a monitoring server but
drops whatever fails, sends log batches from a thread pool (so they arrive out of order) and
throws away its queue on ``stop()``. This one speaks the same HTTP protocol (docs/goliat-protocol.md:
``/api/heartbeat``, ``/api/gui-update``, ``/api/gui-screenshots``) with the same public surface,
and differs where that matters for a campaign running unattended for days:

* Everything goes out in enqueue order from one sender thread (only throttled progress values
  are coalesced and may trail by up to 1/``progress_hz``). A failed send is retried (exponential
  backoff with jitter, capped at ``retry_cap``) before anything behind it, so log batches keep
  their ``sequence`` order and a ``finished`` never overtakes the logs and progress before it.
* Every gui-update carries a ``messageId`` (uuid4 hex) fixed when the message is formed, so a
  redelivery after a lost answer can be dropped by the server: delivery is at least once, the
  effect exactly once.
* Only HTTP 200 is success. 408, 429, 5xx and network errors are retried; any other answer is a
  permanent failure of that one message (counted in ``rejected``) so one bad message cannot block
  the queue forever.
* Memory is bounded by ``max_buffer``: past it the oldest unsent messages are dropped and counted
  in ``dropped``. With ``spool_path`` every formed message is written to a SQLite spool first
  (write-through, so it also survives the process being killed) and replayed, in order, by the
  next bridge that opens the same file.
* Progress messages (``overall_progress``, ``stage_progress``, ``profiler_update``) are throttled
  to ``progress_hz`` per type, latest value wins, and a final value (current >= total) is sent
  at once and never coalesced away. ``status`` lines are batched into ``log_batch`` messages.
* Screenshots are state, not history: only the newest set is kept and sent (multipart) on its own
  thread, so a 2 MB upload never delays logs and an outage never piles up stale images.

Standard library only, so the file can be vendored into GOLIAT as is. The optional spool lives in
``goliat_monitor/agent/spool.py`` (also standard library only); vendor it too to use ``spool_path``.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import queue
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from goliat_monitor.agent.spool import Spool

__all__ = ["WebGUIBridge", "encode_multipart"]

logger = logging.getLogger(__name__)

THROTTLED_TYPES = frozenset({"overall_progress", "stage_progress", "profiler_update"})
# Before one of these goes out, pending log lines and progress are flushed so it is the last word.
TERMINAL_TYPES = frozenset({"finished", "fatal_error", "memory_error"})
LOG_BATCH_MAX_LINES = 10
LOG_BATCH_MAX_AGE_S = 0.05
SPOOL_KIND = "gui-update"
USER_AGENT = "goliat-monitor-bridge/1"

_STOP = object()  # intake sentinel: the processor drains, flushes and exits
_DRAIN_PER_CYCLE = 1000  # messages handled before the formed ones are committed
_READAHEAD = 256  # spooled messages the sender holds in memory at once
_ACK_EVERY = 64  # spool acknowledgements batched into one commit
_WARN_EVERY_S = 10.0  # repeated warnings (drops, outages) are logged at most this often


@dataclass(slots=True)
class _Envelope:
    """A formed gui-update: its JSON body is final, so every retry sends the same bytes."""

    data: bytes
    message_id: str
    msg_type: str
    spool_id: int | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class _Answer:
    """What one POST came back with; status None means no HTTP answer (network error, timeout)."""

    status: int | None
    detail: str = ""
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status in (408, 429) or self.status >= 500

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
        self.max_spooled = max(1, int(max_spooled))
        self._token = token
        self._throttle_interval = 1.0 / progress_hz if progress_hz > 0 else 0.0
        self._heartbeat_interval = heartbeat_interval
        self._request_timeout = request_timeout
        self._screenshot_timeout = screenshot_timeout
        self._retry_base = retry_base
        self._retry_cap = retry_cap
        self._opener = urllib.request.build_opener(_NoRedirect)

        # Public counters (read them any time; written under _stats_lock).
        self.sent = 0
        self.dropped = 0
        self.rejected = 0
        self.retries = 0
        self.screenshots_sent = 0
        self._stats_lock = threading.Lock()
        self._last_warning: dict[str, float] = {}

        self._system_info: dict[str, Any] = {}
        self._connection_callback: Callable[[bool], None] | None = None
        self._connected = False
        self._connected_lock = threading.Lock()

        # Caller -> processor. SimpleQueue.put never blocks; the bound is checked in enqueue.
        self._intake: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Processor state (only the processor thread touches these).
        self._batch: list[dict[str, Any]] = []
        self._batch_started = 0.0
        self._sequence = 0
        self._throttle_last: dict[str, float] = {}
        self._throttle_pending: dict[str, tuple[dict[str, Any], float]] = {}
        self._last_emitted: dict[str, dict[str, Any]] = {}

        # Processor -> sender.
        self._cv = threading.Condition()
        self._outbox: deque[_Envelope] = deque()  # memory mode only
        self._inflight: _Envelope | None = None  # memory mode: counts against max_buffer
        self._new_work = False
        self._producer_done = threading.Event()
        self._readahead: deque[_Envelope] = deque()  # spool mode only
        self._readahead_hi = 0  # highest spool id the sender has read; protected from trimming
        self._pending_acks: list[int] = []

        # Newest screenshots waiting to go (screenshots are state: a newer set replaces older).
        self._shot_cv = threading.Condition()
        self._shot: dict[str, bytes] | None = None

        self._wake = threading.Event()  # cuts a retry backoff short (server back, or stopping)
        self._halt = threading.Event()  # stop() was called: heartbeats and screenshots end
        self._deadline: float | None = None  # monotonic time by which stop() gives up
        self._accepting = True
        self._started = False
        self._stopped = False
        self._close_lock = threading.Lock()
        self._sender_exited = False
        self._sender_closes_spool = False
        self._threads: dict[str, threading.Thread] = {}

        self._spool: Spool | None = None
        if spool_path is not None:
            self._spool = self._open_spool(spool_path)

    # -- public surface (GOLIAT's) -------------------------------------------------------------

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
        waiting = self._intake.qsize() + len(self._batch) + len(self._throttle_pending)
        if self._spool is not None:
            try:
                return waiting + self._spool.depth() - len(self._pending_acks)
            except Exception:
                return waiting
        return waiting + len(self._outbox) + (1 if self._inflight is not None else 0)

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
                self._note_dropped(1, "bridge stopped")
                return
            if not isinstance(message, Mapping):
                self._note_rejected(f"not a dict: {type(message).__name__}")
                return
            if self._intake.qsize() >= self.max_buffer:
                self._note_dropped(1, "intake full")
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
        if not self._started:
            self._count_intake_leftovers()
            self._close_spool()
            return
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
        if self._spool is None:
            with self._cv:
                left = len(self._outbox)
                self._outbox.clear()
            if left:
                self._note_dropped(left, "not delivered before stop() timed out", force_log=True)
        else:
            left = self._spool_depth()
            with self._close_lock:
                if self._sender_exited:
                    self._close_spool()
                else:  # mid-request: it acknowledges what it is sending, then closes the spool
                    self._sender_closes_spool = True
            if left:
                logger.info("bridge stopped with %d message(s) kept in the spool for the next run", left)
        logger.info("bridge stopped: sent=%d rejected=%d dropped=%d", self.sent, self.rejected, self.dropped)

    def _join(self, name: str, timeout: float) -> None:
        thread = self._threads[name]
        if thread is not threading.current_thread():  # stop() called from a callback
            thread.join(timeout)

    # -- processor: intake -> batches / throttling -> outbox ------------------------------------

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
            self._producer_done.set()
            with self._cv:
                self._new_work = True
                self._cv.notify_all()

    def _process_cycle(self) -> bool:
        """Drain the intake, seal what is due, hand it to the sender; True once stop() was seen."""
        try:
            item = self._intake.get(timeout=self._processor_wait())
        except queue.Empty:
            item = None
        out: list[_Envelope] = []
        stopping = False
        handled = 0
        while item is not None:
            if item is _STOP:
                stopping = True
                break
            self._accept(item, out)
            handled += 1
            if handled >= _DRAIN_PER_CYCLE:
                break
            try:
                item = self._intake.get_nowait()
            except queue.Empty:
                item = None
        self._flush_due(time.monotonic(), out, force=stopping)
        self._commit(out)
        return stopping

    def _processor_wait(self) -> float:
        """Sleep until the next log batch or throttled value falls due (or 1 s when idle)."""
        now = time.monotonic()
        due = now + 1.0
        if self._batch:
            due = min(due, self._batch_started + LOG_BATCH_MAX_AGE_S)
        for kind in self._throttle_pending:
            due = min(due, self._throttle_last.get(kind, 0.0) + self._throttle_interval)
        return max(0.001, due - now)

    def _accept(self, item: tuple[float, dict[str, Any]], out: list[_Envelope]) -> None:
        wall, msg = item
        try:
            kind = str(msg.get("type", ""))
            now = time.monotonic()
            if kind == "status":
                entry = dict(msg)
                entry.setdefault("timestamp", wall)  # batching delays it; keep when it was said
                if not self._batch:
                    self._batch_started = now
                self._batch.append(entry)
                if len(self._batch) >= LOG_BATCH_MAX_LINES:
                    self._form_batch(out)
            elif kind == "gui_screenshots":
                self._offer_screenshots(msg.get("screenshots"))
            elif kind in THROTTLED_TYPES:
                self._throttle(kind, msg, wall, now, out)
            else:
                if kind in TERMINAL_TYPES:  # pending progress first: the terminal message is last
                    self._flush_due(now, out, force=True)
                self._emit(msg, wall, out)
        except Exception:
            logger.exception("bridge: could not process a %r message", msg.get("type"))

    def _throttle(
        self, kind: str, msg: dict[str, Any], wall: float, now: float, out: list[_Envelope]
    ) -> None:
        """Latest value wins within an interval; a final value goes at once and is never replaced."""
        if _is_final(msg):
            self._throttle_pending.pop(kind, None)  # older than the final: superseded
            if self._last_emitted.get(kind) != msg:  # GOLIAT repeats 100/100 five times
                self._throttle_last[kind] = now
                self._last_emitted[kind] = msg
                self._emit(msg, wall, out)
            return
        last = self._throttle_last.get(kind)
        if last is None or now - last >= self._throttle_interval:
            self._throttle_pending.pop(kind, None)
            self._throttle_last[kind] = now
            self._last_emitted[kind] = msg
            self._emit(msg, wall, out)
        else:
            self._throttle_pending[kind] = (msg, wall)

    def _flush_due(self, now: float, out: list[_Envelope], *, force: bool) -> None:
        if self._batch and (force or now - self._batch_started >= LOG_BATCH_MAX_AGE_S):
            self._form_batch(out)
        for kind, (msg, wall) in list(self._throttle_pending.items()):
            if force or now - self._throttle_last.get(kind, 0.0) >= self._throttle_interval:
                del self._throttle_pending[kind]
                self._throttle_last[kind] = now
                self._last_emitted[kind] = msg
                self._emit(msg, wall, out)

    def _form_batch(self, out: list[_Envelope]) -> None:
        """Seal the current lines into a log_batch; the sequence is taken here, in order."""
        message = {"type": "log_batch", "logs": self._batch, "sequence": self._sequence}
        self._sequence += 1
        self._batch = []
        self._emit(message, time.time(), out)

    def _emit(self, message: dict[str, Any], wall: float, out: list[_Envelope]) -> None:
        """Form the final gui-update body (with its messageId) and append it to `out`.

        Lines still being batched were enqueued before this message, so they are sealed first:
        apart from throttled progress (latest value wins), everything leaves in enqueue order.
        """
        if self._batch and message.get("type") != "log_batch":
            self._form_batch(out)
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
            data = _encode_json(body)
        except (TypeError, ValueError) as exc:
            self._note_rejected(f"{message.get('type')!r} is not JSON-encodable: {exc}")
            return
        out.append(_Envelope(data, message_id, str(message.get("type", ""))))

    def _commit(self, out: list[_Envelope]) -> None:
        """Hand formed messages to the sender: into the spool (durable) or the bounded deque."""
        if not out:
            return
        if self._spool is not None:
            self._commit_to_spool(out)
        else:
            dropped = 0
            with self._cv:
                for env in out:
                    busy = 1 if self._inflight is not None else 0
                    while self._outbox and len(self._outbox) + busy >= self.max_buffer:
                        self._outbox.popleft()  # oldest first: the newest state matters most
                        dropped += 1
                    if len(self._outbox) + busy >= self.max_buffer:
                        dropped += 1
                        continue
                    self._outbox.append(env)
                self._new_work = True
                self._cv.notify_all()
            if dropped:
                self._note_dropped(dropped, f"buffer full (max_buffer={self.max_buffer})")

    def _commit_to_spool(self, out: list[_Envelope]) -> None:
        spool = self._spool
        assert spool is not None
        try:
            over = spool.depth() + len(out) - self.max_spooled
            if over > 0:
                trimmed = spool.drop_oldest(over, after_id=self._readahead_hi)
                cut = min(len(out), over - trimmed)  # the rest is being sent: drop oldest new ones
                del out[:cut]
                self._note_dropped(trimmed + cut, f"spool full (max_spooled={self.max_spooled})")
            spool.append_many((SPOOL_KIND, json.loads(env.data)) for env in out)
        except Exception as exc:
            self._note_dropped(len(out), f"spool write failed: {exc!r}", force_log=True)
            return
        with self._cv:
            self._new_work = True
            self._cv.notify_all()

    # -- sender: outbox -> POST /api/gui-update, in order, with retries -------------------------

    def _send_loop(self) -> None:
        env: _Envelope | None = None
        failures = 0
        try:
            while True:
                try:
                    if env is None:
                        env = self._take_next()
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
            self._sender_exit(env)

    def _send_one(self, env: _Envelope, failures: int) -> bool:
        """POST one message; True when done with it (delivered or refused), False to retry it."""
        answer = self._post("/api/gui-update", env.data, "application/json", self._timeout())
        if answer.ok or not answer.retryable:
            if answer.ok:
                with self._stats_lock:
                    self.sent += 1
                self._set_connected(True)
            else:
                self._note_rejected(f"{env.msg_type} {env.message_id} got {answer.describe()}")
            self._done_with(env)
            return True
        env.attempts += 1
        with self._stats_lock:
            self.retries += 1
        self._set_connected(False)
        self._record_attempt(env)
        self._warn(
            "outage",
            "bridge: %s unreachable (%s); retrying in order, %d message(s) waiting",
            self.server_url,
            answer.describe(),
            self.pending,
        )
        self._backoff(failures + 1, answer.retry_after)
        return False

    def _take_next(self) -> _Envelope | None:
        """The next message to send, oldest first; None once stopping and there is nothing left."""
        while True:
            if self._past_deadline():
                return None
            if self._spool is None:
                with self._cv:
                    if self._outbox:
                        self._inflight = self._outbox.popleft()
                        return self._inflight
                    if self._producer_done.is_set():
                        return None
                    self._cv.wait(0.5)
                continue
            if self._readahead:
                return self._readahead.popleft()
            self._flush_acks()  # before peeking, or acknowledged rows would be read again
            with self._cv:
                self._new_work = False
            try:
                rows = self._spool.peek(min(self.max_buffer, _READAHEAD))
            except Exception as exc:
                self._warn("spool-read", "bridge: cannot read the spool: %r", exc)
                with self._cv:
                    self._cv.wait(1.0)
                continue
            for row in rows:
                self._readahead_hi = max(self._readahead_hi, row.id)
                body = row.payload
                message = body.get("message") if isinstance(body, dict) else None
                if not isinstance(message, dict):  # not ours: never send it, never block on it
                    self._note_rejected(f"spooled row {row.id} is not a gui-update body")
                    self._pending_acks.append(row.id)
                    continue
                self._readahead.append(
                    _Envelope(
                        _encode_json(body),
                        str(body.get("messageId", "")),
                        str(message.get("type", "")),
                        spool_id=row.id,
                        attempts=row.attempts,
                    )
                )
            if self._readahead:
                continue
            with self._cv:
                if self._producer_done.is_set() and not self._new_work:
                    return None
                if not self._new_work:
                    self._cv.wait(0.5)

    def _done_with(self, env: _Envelope) -> None:
        if env.spool_id is None:
            self._inflight = None
            return
        self._pending_acks.append(env.spool_id)
        if len(self._pending_acks) >= _ACK_EVERY:
            self._flush_acks()

    def _flush_acks(self) -> None:
        """Commit acknowledgements; if that fails they are resent later (the server dedupes)."""
        if self._pending_acks and self._spool is not None:
            try:
                self._spool.ack(self._pending_acks)
            except Exception as exc:
                self._warn("spool-ack", "bridge: cannot acknowledge in the spool: %r", exc)
            self._pending_acks = []

    def _record_attempt(self, env: _Envelope) -> None:
        if env.spool_id is not None and self._spool is not None:
            try:
                self._spool.record_attempt([env.spool_id])
            except Exception:
                logger.debug("bridge: could not record a failed attempt", exc_info=True)

    def _backoff(self, failures: int, retry_after: float | None) -> None:
        """Exponential backoff with equal jitter; a heartbeat success or stop() cuts it short."""
        delay = min(self._retry_cap, self._retry_base * 2 ** min(failures - 1, 30))
        delay = delay / 2 + random.uniform(0, delay / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._retry_cap))
        if self._deadline is not None:
            delay = min(delay, max(0.0, self._deadline - time.monotonic()))
        if self._wake.wait(delay):
            self._wake.clear()

    def _sender_exit(self, unsent: _Envelope | None) -> None:
        if self._spool is None:
            if unsent is not None:
                self._inflight = None
                self._note_dropped(1, "not delivered before stop() timed out", force_log=True)
        else:
            try:
                self._flush_acks()
            except Exception:
                logger.exception("bridge: could not acknowledge delivered messages")
        with self._close_lock:
            self._sender_exited = True
            if self._sender_closes_spool:
                self._close_spool()

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
        answer = self._post("/api/heartbeat", _encode_json(payload), "application/json", self._timeout())
        self._set_connected(answer.ok)
        if answer.ok:
            self._wake.set()  # the server is back: retry now rather than after the backoff
        elif not answer.retryable:
            self._warn(
                "heartbeat", "bridge: heartbeat refused with HTTP %s: %s", answer.status, answer.detail
            )
        return answer.ok

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
            fields = {"machineId": self.machine_id}
            if self.agent_id:
                fields["agentId"] = self.agent_id
            files = [(tab.replace(" ", "_"), data) for tab, data in shots.items()]
            try:
                body, content_type = encode_multipart(fields, files)
                answer = self._post("/api/gui-screenshots", body, content_type, self._screenshot_timeout)
            except Exception as exc:
                logger.exception("bridge: could not send screenshots")
                answer = _Answer(None, repr(exc))
            if answer.ok or not answer.retryable:
                if answer.ok:
                    with self._stats_lock:
                        self.screenshots_sent += 1
                    self._set_connected(True)
                else:
                    self._warn("screenshots", "bridge: screenshots refused: HTTP %s", answer.status)
                failures = 0
                with self._shot_cv:
                    if self._shot is shots:
                        self._shot = None
                continue
            failures += 1
            delay = min(self._retry_cap, self._retry_base * 2 ** min(failures - 1, 30))
            if self._halt.wait(delay / 2 + random.uniform(0, delay / 2)):
                return

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
            return _Answer(exc.code, detail, _parse_retry_after(exc.headers.get("Retry-After")))
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

    def _note_dropped(self, count: int, reason: str, *, force_log: bool = False) -> None:
        with self._stats_lock:
            self.dropped += count
            total = self.dropped
        if force_log:
            logger.warning("bridge: dropped %d message(s): %s (%d in total)", count, reason, total)
        else:
            self._warn("dropped", "bridge: dropped %d message(s): %s (%d in total)", count, reason, total)

    def _note_rejected(self, reason: str) -> None:
        with self._stats_lock:
            self.rejected += 1
        logger.warning("bridge: message rejected, not retried: %s", reason)

    def _warn(self, key: str, fmt: str, *args: Any) -> None:
        """Log a warning that could repeat many times per second at most every few seconds."""
        now = time.monotonic()
        last = self._last_warning.get(key)
        if last is None or now - last >= _WARN_EVERY_S:
            self._last_warning[key] = now
            logger.warning(fmt, *args)
        else:
            logger.debug(fmt, *args)

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
            self._note_dropped(left, "enqueued after the bridge stopped", force_log=True)

    def _open_spool(self, path: str) -> Spool | None:
        try:
            from goliat_monitor.agent.spool import Spool
        except ImportError:
            logger.error("bridge: spool_path given but goliat_monitor.agent.spool is not importable")
            return None
        try:
            spool = Spool(path)
        except Exception:
            logger.exception("bridge: cannot open spool %s; buffering in memory only", path)
            return None
        if spool.depth():
            logger.info("bridge: %d message(s) from an earlier run in %s go first", spool.depth(), path)
        return spool

    def _spool_depth(self) -> int:
        try:
            return self._spool.depth() if self._spool is not None else 0
        except Exception:
            return 0

    def _close_spool(self) -> None:
        if self._spool is not None:
            try:
                self._spool.close()
            except Exception:
                logger.exception("bridge: closing the spool failed")


# -- helpers ----------------------------------------------------------------------------------


def _is_final(msg: Mapping[str, Any]) -> bool:
    """current >= total > 0: the 100 % a dashboard must never miss."""
    current, total = msg.get("current"), msg.get("total")
    if not isinstance(current, int | float) or not isinstance(total, int | float):
        return False
    return total > 0 and current >= total


def _encode_json(body: Any) -> bytes:
    """Strict JSON (no NaN, which the server rejects); odd values are coerced rather than lost."""
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError):
        return json.dumps(_jsonable(body, 0), separators=(",", ":"), allow_nan=False).encode()


def _jsonable(value: Any, depth: int) -> Any:
    if depth > 64:
        raise ValueError("nested too deeply (circular?)")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v, depth + 1) for v in value]
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    for attr in ("tolist", "item"):  # numpy arrays and scalars
        convert = getattr(value, attr, None)
        if callable(convert):
            try:
                return _jsonable(convert(), depth + 1)
            except Exception:
                break
    return str(value)


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare enough to fall back to our own backoff


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
