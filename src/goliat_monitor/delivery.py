"""How a GUI message reaches the server: one behaviour, shared by the GOLIAT bridge and the agent.

Standard library only, importing nothing of goliat_monitor, so that ``bridge.py``, ``outbox.py``
and this file can be copied side by side into a GOLIAT checkout (see the README). What lives here
is what a message becomes and what an answer means; where formed messages wait for the sender
(the SQLite spool among them) is ``outbox.py``:

* `outcome_for`: what an HTTP answer means for the message that was sent (the table below);
* `retry_delay`, `backoff_delay`, `parse_retry_after`: how long to wait before trying again;
* `Shaper`: log lines batched into ``log_batch`` messages with a ``sequence``, progress throttled
  (latest value wins, a final value always goes), everything else passed on in order;
* `is_final`, `is_visible_change`, `plan_sends`: which progress values may be coalesced away;
* `encode_json`: the strict JSON a body goes out as.

What each answer means
----------------------
Messages go out in order, one after another, so every answer must end in one of four outcomes:

``DELIVERED``: any 2xx. The server has the message (it deduplicates by ``messageId``, so a
redelivery after a lost answer is harmless).

``RETRY_LATER``: no answer at all (refused, reset, timed out), 408 Request Timeout, 425 Too Early,
429 Too Many Requests, every 5xx, and anything that is not an HTTP status (<200, >=600). The
server, or the way to it, is busy or down; the same bytes will succeed later. Wait with jittered
exponential backoff, and at least as long as ``Retry-After`` asks (never past the cap).

``GIVE_UP_AND_KEEP``: 401, 403 and 407 (a wrong or missing token, a proxy asking for credentials)
and every 3xx (a URL that redirects, e.g. http to https or a proxy's login page; a redirected POST
would be replayed as a body-less GET). The message is fine, the configuration is not. Retrying
soon cannot help, and dropping would lose a campaign's logs over a typo in a setting, so the
message is kept (outbox or spool), the operator is warned, and each retry waits the longest
backoff (``cap``) until someone fixes the setting.

``DROP``: every other 4xx, e.g. 400 and 422 (the body is invalid), 413 (too large), 415 (not
JSON), 409 (the assignment is no longer this worker's; the agent also stops the run), 404, 405
and 410 (the server has no such resource or endpoint for this message). The server understood
the request and refused it; the same bytes will get the same answer forever, and keeping them
would block everything queued behind. Drop the message and log why. A wrong base URL also gives
404, but then the heartbeat, sent before any message, is refused too and says so loudly.
"""

from __future__ import annotations

import email.utils
import enum
import json
import math
import queue
import random
import time
from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

__all__ = [
    "PROGRESS_TYPES",
    "TERMINAL_TYPES",
    "Outcome",
    "Shaped",
    "Shaper",
    "backoff_delay",
    "drain",
    "encode_json",
    "is_final",
    "is_visible_change",
    "outcome_for",
    "parse_retry_after",
    "plan_sends",
    "retry_delay",
]

PROGRESS_TYPES = frozenset({"overall_progress", "stage_progress", "profiler_update"})
"""State, not history: a newer value of the same type makes an older one pointless."""

TERMINAL_TYPES = frozenset({"finished", "fatal_error", "memory_error"})
"""The last word of a run: everything enqueued before one of these goes out before it."""


# -- what an answer means -----------------------------------------------------------------------


class Outcome(enum.Enum):
    """What to do with a message after one attempt to send it (see the module docstring)."""

    DELIVERED = "delivered"
    RETRY_LATER = "retry later"
    GIVE_UP_AND_KEEP = "give up and keep"
    DROP = "drop"


STATUS_OUTCOMES: Mapping[int, Outcome] = {
    401: Outcome.GIVE_UP_AND_KEEP,
    403: Outcome.GIVE_UP_AND_KEEP,
    407: Outcome.GIVE_UP_AND_KEEP,
    408: Outcome.RETRY_LATER,
    425: Outcome.RETRY_LATER,
    429: Outcome.RETRY_LATER,
}
"""The statuses whose outcome differs from the rest of their class."""

CLASS_OUTCOMES: Mapping[int, Outcome] = {
    2: Outcome.DELIVERED,
    3: Outcome.GIVE_UP_AND_KEEP,
    4: Outcome.DROP,
    5: Outcome.RETRY_LATER,
}
"""The outcome of every other status, by its first digit."""


def outcome_for(status: int | None) -> Outcome:
    """What an answer means for the message sent; None stands for no answer (a transport error)."""
    if status is None:
        return Outcome.RETRY_LATER
    if status in STATUS_OUTCOMES:
        return STATUS_OUTCOMES[status]
    return CLASS_OUTCOMES.get(status // 100, Outcome.RETRY_LATER)


# -- when to try again ---------------------------------------------------------------------------


def backoff_delay(failures: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, so senders do not stampede.

    After 1 failure it is between base/2 and base, doubling per failure up to between cap/2 and cap.
    """
    delay = min(cap, base * 2 ** min(max(failures, 1) - 1, 30))
    return _equal_jitter(delay, rng)


def retry_delay(
    outcome: Outcome,
    failures: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before sending a message again after `failures` failures in a row.

    A configuration problem (GIVE_UP_AND_KEEP) waits the longest backoff at once; a server's
    Retry-After is honoured up to `cap`, so a wrong header cannot stall a campaign for hours.
    """
    if outcome is Outcome.GIVE_UP_AND_KEEP:
        delay = _equal_jitter(cap, rng)
    else:
        delay = backoff_delay(failures, base, cap, rng)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


def _equal_jitter(delay: float, rng: random.Random | None) -> float:
    return float(delay / 2 + (rng or random).uniform(0, delay / 2))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delay-seconds or an HTTP-date; None when absent or bad.

    A date in the past means "now" (0). `now` (epoch seconds) is for tests; it defaults to the clock.
    """
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; an obsolete form may lack the zone
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# -- which progress values matter ------------------------------------------------------------------


def is_final(message: Mapping[str, Any]) -> bool:
    """A progress value at its end, the one a dashboard must never miss.

    current >= total > 0 for overall and stage progress; an ETA of 0 for ``profiler_update``.
    """
    if message.get("type") == "profiler_update":
        eta = message.get("eta_seconds")
        return isinstance(eta, int | float) and not isinstance(eta, bool) and eta == 0
    try:
        total = float(message["total"])
        return total > 0 and float(message["current"]) >= total
    except (KeyError, TypeError, ValueError):
        return False


def _percent(message: Mapping[str, Any]) -> float | None:
    try:
        total = float(message["total"])
        return 100.0 * float(message["current"]) / total if total else 0.0
    except (KeyError, TypeError, ValueError):
        return None


def is_visible_change(previous: Mapping[str, Any] | None, message: Mapping[str, Any]) -> bool:
    """Whether `message` differs visibly from the value last sent of its type.

    Overall progress: 0.1 percentage point; a stage: a new name or sub-stage, or 1 point; an ETA:
    0.5 % of it (at least a second), so an ETA of hours is not resent every second.
    """
    if previous is None:
        return True
    kind = message.get("type")
    if kind == "profiler_update":
        old, new = previous.get("eta_seconds"), message.get("eta_seconds")
        if not isinstance(old, int | float) or not isinstance(new, int | float):
            return old != new
        return abs(new - old) >= max(1.0, 0.005 * abs(new))
    old_percent, new_percent = _percent(previous), _percent(message)
    if old_percent is None or new_percent is None:
        return True
    if kind == "stage_progress":
        if (previous.get("name"), previous.get("sub_stage")) != (
            message.get("name"),
            message.get("sub_stage"),
        ):
            return True
        return abs(new_percent - old_percent) >= 1.0
    return abs(new_percent - old_percent) >= 0.1


def plan_sends(bodies: Sequence[Mapping[str, Any]]) -> list[bool]:
    """For each queued gui-update body: send it (True) or skip it as superseded (False).

    A progress value is skipped when a newer one of the same type and assignment follows it
    before any terminal message: after an outage the server needs the latest value, not a
    replay of every intermediate one. Log lines and everything else are always sent.
    """
    send = [True] * len(bodies)
    newer: set[tuple[str, Any]] = set()
    for index in range(len(bodies) - 1, -1, -1):
        message = bodies[index].get("message")
        kind = message.get("type") if isinstance(message, Mapping) else None
        if kind in TERMINAL_TYPES:
            newer.clear()
        elif isinstance(kind, str) and kind in PROGRESS_TYPES:
            key = (kind, bodies[index].get("assignmentId"))
            if key in newer:
                send[index] = False
            newer.add(key)
    return send


def drain(
    intake: queue.SimpleQueue[Any], timeout: float, end: object, limit: int = 1000
) -> tuple[list[Any], bool]:
    """Wait up to `timeout` s for a first item, then take what is queued, at most `limit` items.

    Returns the items and whether the producer's `end` marker was seen (it is not returned). A
    limit keeps a flood from delaying what the caller does with the items it already has.
    """
    items: list[Any] = []
    try:
        item = intake.get(timeout=max(0.001, timeout))
        while True:
            if item is end:
                return items, True
            items.append(item)
            if len(items) >= limit:
                break
            item = intake.get_nowait()
    except queue.Empty:
        pass
    return items, False


# -- batching and throttling -------------------------------------------------------------------------

Shaped = tuple[dict[str, Any], float]
"""A message ready to be wrapped in a gui-update body, and the wall-clock time it is stamped with."""


class Shaper:
    """Turns a stream of GUI messages into the messages worth sending; one thread only.

    * ``status`` lines are batched into ``log_batch`` messages of at most `batch_lines` lines,
      sealed when `batch_age` seconds old, numbered by ``sequence`` from 0.
    * Progress (`PROGRESS_TYPES`) goes at most `progress_hz` times a second, all types
      together; the latest value of a type wins and, when several wait, the type sent longest
      ago goes next. A value nobody could see change is skipped. A final value (`is_final`)
      goes at once, and a repeat of it is not sent again. Progress is state, so it may
      overtake the lines still being batched (by at most `batch_age`).
    * Anything else seals the open batch first, so it never overtakes a line enqueued before
      it; a terminal message (`TERMINAL_TYPES`) also flushes the waiting progress before it.

    Callers pass the monotonic `now` and append what comes out to their own list `out`, and
    call `flush` when `next_due` says. `scale` (1 by default) multiplies batch size, batch
    age and progress interval: a sender that is behind sets it to send fewer, bigger messages.
    """

    def __init__(self, *, progress_hz: float = 5.0, batch_lines: int = 10, batch_age: float = 0.05) -> None:
        self.sequence = 0
        self.scale = 1.0
        self._interval = 1.0 / progress_hz if progress_hz > 0 else 0.0
        self._batch_lines = max(1, batch_lines)
        self._batch_age = batch_age
        self._batch: list[dict[str, Any]] = []
        self._batch_started = 0.0
        self._waiting: dict[str, Shaped] = {}
        self._last_progress = float("-inf")
        self._last_sent: dict[str, float] = {}
        self._last_value: dict[str, dict[str, Any]] = {}
        self._last_final: dict[str, dict[str, Any]] = {}

    @property
    def held(self) -> int:
        """Lines and progress values accepted but not yet passed on."""
        return len(self._batch) + len(self._waiting)

    def add(self, message: dict[str, Any], wall: float, now: float, out: list[Shaped]) -> None:
        """Accept one message said at `wall` (epoch seconds); what is ready goes into `out`."""
        kind = message.get("type")
        if kind == "status":
            self._add_line(message if "timestamp" in message else {**message, "timestamp": wall}, now, out)
        elif isinstance(kind, str) and kind in PROGRESS_TYPES:
            self._throttle(kind, message, wall, now, out)
        else:
            if kind in TERMINAL_TYPES:
                self.flush(now, out, force=True)
            self._emit(message, wall, out)

    def next_due(self) -> float | None:
        """The monotonic time at which `flush` has something to pass on, or None."""
        due: float | None = None
        if self._batch:
            due = self._batch_started + self._batch_age * self.scale
        if self._waiting:
            progress_due = self._last_progress + self._interval * self.scale
            due = progress_due if due is None else min(due, progress_due)
        return due

    def flush(self, now: float, out: list[Shaped], *, force: bool = False) -> None:
        """Pass on what is due at `now`; with `force`, everything held (the stream is ending)."""
        if self._batch and (force or now - self._batch_started >= self._batch_age * self.scale):
            self._seal_batch(out)
        if force:
            for kind, (message, wall) in list(self._waiting.items()):
                self._sent_progress(kind, now)
                self._emit(message, wall, out)
            self._waiting.clear()
        elif self._waiting and now - self._last_progress >= self._interval * self.scale:
            kind = min(self._waiting, key=lambda k: self._last_sent.get(k, 0.0))
            message, wall = self._waiting.pop(kind)
            self._sent_progress(kind, now)
            self._emit(message, wall, out)

    def _add_line(self, entry: dict[str, Any], now: float, out: list[Shaped]) -> None:
        if not self._batch:
            self._batch_started = now
        self._batch.append(entry)
        if len(self._batch) >= self._batch_lines * self.scale:
            self._seal_batch(out)

    def _seal_batch(self, out: list[Shaped]) -> None:
        out.append(({"type": "log_batch", "logs": self._batch, "sequence": self.sequence}, time.time()))
        self.sequence += 1
        self._batch = []

    def _emit(self, message: dict[str, Any], wall: float, out: list[Shaped]) -> None:
        kind = message.get("type")
        if isinstance(kind, str) and kind in PROGRESS_TYPES:
            self._last_value[kind] = message
        elif self._batch:
            self._seal_batch(out)
        out.append((message, wall))

    def _throttle(
        self, kind: str, message: dict[str, Any], wall: float, now: float, out: list[Shaped]
    ) -> None:
        if is_final(message):
            self._waiting.pop(kind, None)  # an older value, superseded by the final one
            if self._last_final.get(kind) != message:  # GOLIAT repeats its 100 % five times
                self._last_final[kind] = message
                self._sent_progress(kind, now)
                self._emit(message, wall, out)
            return
        self._last_final.pop(kind, None)
        if not is_visible_change(self._last_value.get(kind), message):
            return
        if not self._waiting and now - self._last_progress >= self._interval * self.scale:
            self._sent_progress(kind, now)
            self._emit(message, wall, out)
        else:
            self._waiting[kind] = (message, wall)

    def _sent_progress(self, kind: str, now: float) -> None:
        self._last_progress = now
        self._last_sent[kind] = now


# -- the bytes a body goes out as ------------------------------------------------------------------


def encode_json(body: Any) -> bytes:
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
