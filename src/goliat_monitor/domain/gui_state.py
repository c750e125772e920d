"""How GOLIAT's GUI messages change a worker's live state: pure decisions, no I/O.

The server feeds each message through `interpret`, applies the column changes it returns, and asks
`status_after` what the worker's status becomes. Keeping this here lets the rules (late progress
after `finished`, the failure text, division by zero) be tested without a database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from goliat_monitor.domain.models import (
    ERROR_LOG_TYPES,
    EXIT_CODE_OUT_OF_MEMORY,
    FAILED_STUDY_MESSAGE,
    LOG_TYPES,
    WARNING_LOG_TYPES,
    WorkerStatus,
)

PROGRESS_TYPES = frozenset({"overall_progress", "stage_progress", "simulation_details", "sim_details"})
"""Messages that say a study is running right now."""

KEPT_TYPES_EXCLUDED = frozenset(
    {"overall_progress", "stage_progress", "log_batch", "status", "profiler_update", "timing"}
)
"""Types stored in their own tables; every other message is also kept verbatim."""


def percent(current: float, total: float) -> float:
    """GOLIAT's current/total as a percentage in [0, 100]; a zero total means no progress yet."""
    if total <= 0:
        return 0.0
    return max(0.0, min(100.0, current / total * 100.0))


def normalize_log_type(log_type: str | None) -> str:
    return log_type if log_type in LOG_TYPES else "default"


@dataclass(frozen=True)
class LogLine:
    message: str
    log_type: str
    timestamp: float


@dataclass(frozen=True)
class Ending:
    """A run ended: successfully, or with the failure GOLIAT reported."""

    failed: bool
    message: str | None
    exit_code: int | None

    @property
    def out_of_memory(self) -> bool:
        return self.exit_code == EXIT_CODE_OUT_OF_MEMORY


@dataclass(frozen=True)
class Interpretation:
    changes: dict[str, Any] = field(default_factory=dict)
    logs: tuple[LogLine, ...] = ()
    sequence: int | None = None
    is_progress: bool = False
    ending: Ending | None = None
    keep: bool = False


def interpret(message: Mapping[str, Any], *, now: float, sent_at: float | None = None) -> Interpretation:
    """What one validated GUI message (as a dict) changes. `now` is the server's clock."""
    kind = message.get("type")
    stamp = sent_at if sent_at is not None else now
    if kind == "overall_progress":
        value = percent(message["current"], message["total"])
        return Interpretation({"progress": value}, is_progress=True)
    if kind == "stage_progress":
        changes: dict[str, Any] = {"stage_progress": percent(message["current"], message["total"])}
        if message.get("name"):
            changes["stage"] = message["name"]
        if "sub_stage" in message:
            changes["sub_stage"] = message.get("sub_stage")
        return Interpretation(changes, is_progress=True)
    if kind == "profiler_update":
        eta = message.get("eta_seconds")
        return Interpretation({"eta_at": now + eta if eta is not None and eta >= 0 else None})
    if kind == "simulation_details":
        return Interpretation(
            {
                "simulation_count": message.get("simulation_count"),
                "total_simulations": message.get("total_simulations"),
                "current_case": message.get("current_case"),
            },
            is_progress=True,
            keep=True,
        )
    if kind == "sim_details":
        return Interpretation(
            {
                "simulation_count": message.get("count"),
                "total_simulations": message.get("total"),
                "current_case": message.get("details"),
            },
            is_progress=True,
            keep=True,
        )
    if kind == "log_batch":
        lines = tuple(
            LogLine(
                entry["message"],
                normalize_log_type(entry.get("log_type")),
                entry.get("timestamp") or stamp,
            )
            for entry in message["logs"]
        )
        return Interpretation(logs=lines, sequence=message.get("sequence"))
    if kind == "status":
        line = LogLine(message["message"], normalize_log_type(message.get("log_type")), stamp)
        return Interpretation(logs=(line,))
    if kind == "finished":
        exit_code = message.get("exit_code")
        text = message.get("message")
        failed = (exit_code not in (None, 0)) or text == FAILED_STUDY_MESSAGE
        return Interpretation(ending=Ending(failed, text, exit_code), keep=True)
    if kind in ("fatal_error", "memory_error"):
        exit_code = message.get("exit_code")
        if exit_code is None and kind == "memory_error":
            exit_code = EXIT_CODE_OUT_OF_MEMORY
        return Interpretation(ending=Ending(True, message.get("message"), exit_code), keep=True)
    if kind == "timing":
        return Interpretation()  # the agent's profiler durations have their own table
    return Interpretation(keep=True)


def count_logs(lines: tuple[LogLine, ...]) -> tuple[int, int]:
    """(warnings, errors) as GOLIAT's dashboard counts them."""
    warnings = sum(1 for line in lines if line.log_type in WARNING_LOG_TYPES)
    errors = sum(1 for line in lines if line.log_type in ERROR_LOG_TYPES)
    return warnings, errors


def reopens_run(*, finished_at: float | None, now: float, grace_s: float) -> bool:
    """May a progress message mark the worker RUNNING again?

    GOLIAT sends its last progress messages from a pool of threads, so one can arrive just after
    `finished`. Within `grace_s` of a `finished` it is such a straggler, not a new run.
    """
    return finished_at is None or now - finished_at > grace_s


def status_after(current: str, result: Interpretation, *, reopen: bool) -> str:
    if result.ending is not None:
        return WorkerStatus.ERROR if result.ending.failed else WorkerStatus.IDLE
    if result.is_progress and reopen:
        return WorkerStatus.RUNNING
    if current == WorkerStatus.OFFLINE:
        return WorkerStatus.IDLE
    return current


# -- log order ---------------------------------------------------------------------------------
#
# `goliat parallel` runs several studies on one machine, each with its own bridge and its own
# `sequence` counter from 0, all under one `machineId`, and nothing in a batch says which study
# sent it. So the order cannot be per study; it is by the time GOLIAT stamped each line, which keeps
# every study's own lines in order (one process, one clock) and interleaves studies as they ran.
# `sequence` breaks ties between lines stamped in the same millisecond (Windows clocks tick every
# ~16 ms), and the row id (insertion order, which is the order inside a batch) breaks the rest.
# A floor, which only rises, guards what time alone gets wrong: a clock that steps back, and a
# later run whose clock is behind the lines already stored.

KEY_MARK = 1 << 62
"""Set in every time-based key. Keys stored before them packed (run, sequence, position), with
runs far below 2**19, so they all stay below this bit and read before any newer line."""

TIME_ORIGIN = 1_577_836_800.0
"""2020-01-01 UTC: times are counted in milliseconds from here, in 41 bits (until 2089)."""

_TIME_BITS, _SEQUENCE_BITS = 41, 21
_TIME_MAX = (1 << _TIME_BITS) - 1
_SEQUENCE_MASK = (1 << _SEQUENCE_BITS) - 1
_PAST_NEWEST_S = 0.0015
"""How far the floor sits above the newest line: at least its next millisecond, whatever rounding."""

CLOCK_JUMP_S = 60.0
"""A line this much older than the newest stored one cannot be a late arrival (GOLIAT gives up on a
log batch after 10 s): the machine's clock went back."""

STREAM_LIVE_S = 10.0
"""A study whose last batch is older than this is no longer sending: a stream that starts then is a
later run, not a study running beside it."""

STREAM_IDLE_S = 60.0
"""A stream not heard from for this long is forgotten (and no longer counted as running)."""

STREAM_GAP = 1_000
"""How far ahead of a stream's highest sequence a batch may be and still continue it (GOLIAT
drops batches it could not send, so sequences can skip)."""

LATE_WINDOW = 64
"""How far behind a stream's highest sequence a batch may be and still be a late arrival of it."""

MAX_STREAMS = 16


def order_key(time_s: float, sequence: int) -> int:
    """Pack (time in ms, sequence) into one integer that sorts the same way.

    Stored in one indexed column, it gives the log order in one index scan whatever order the
    batches arrived in. The sequence keeps its low 21 bits: it only orders lines of one millisecond.
    """
    milliseconds = min(max(int((time_s - TIME_ORIGIN) * 1000.0), 0), _TIME_MAX)
    return KEY_MARK | (milliseconds << _SEQUENCE_BITS) | (sequence & _SEQUENCE_MASK)


@dataclass(frozen=True)
class Stream:
    """One bridge's batches as seen so far: its highest sequence and when we heard from it."""

    high: int
    first_seen: float
    last_seen: float


@dataclass(frozen=True)
class LogOrder:
    """What the order rule keeps on the worker row between batches."""

    floor: float | None = None
    newest: float | None = None
    streams: tuple[Stream, ...] = ()


@dataclass(frozen=True)
class PlacedBatch:
    keys: tuple[int, ...]
    order: LogOrder
    later_run: bool = False
    """The batch opened a stream while no other was sending: a new GOLIAT run on the machine."""


def track_stream(
    streams: tuple[Stream, ...], sequence: int, *, now: float
) -> tuple[tuple[Stream, ...], bool]:
    """The streams after a batch with `sequence` arrived, and whether it opened a new one.

    A batch continues the stream just below its sequence, else is a late batch of a stream just
    above it that is still sending, else starts a stream of its own: another study on the machine,
    or a new run. Several streams at one sequence are several studies: a bridge uses a number once.
    """
    live = [s for s in streams if now - s.last_seen <= STREAM_IDLE_S]
    below = [i for i, s in enumerate(live) if s.high < sequence <= s.high + STREAM_GAP]
    above = [
        i
        for i, s in enumerate(live)
        if sequence < s.high < sequence + LATE_WINDOW and now - s.last_seen <= STREAM_LIVE_S
    ]
    opened = False
    if below:
        chosen = max(below, key=lambda i: live[i].high)
        live[chosen] = Stream(sequence, live[chosen].first_seen, now)
    elif above:
        chosen = min(above, key=lambda i: live[i].high)
        live[chosen] = Stream(live[chosen].high, live[chosen].first_seen, now)
    else:
        live.append(Stream(sequence, now, now))
        opened = True
    live.sort(key=lambda s: s.last_seen, reverse=True)
    return tuple(live[:MAX_STREAMS]), opened


def place_batch(order: LogOrder, times: Sequence[float], sequence: int | None, *, now: float) -> PlacedBatch:
    """The order keys of one batch's lines (production times, in batch order) and the new state.

    The floor rises to the newest stored line when the clock went back or a later run starts,
    so nothing after that sorts before what is already stored; lines under it read in sequence
    order. Inside a batch times never go backwards, so a batch keeps its own order.
    """
    streams, opened = order.streams, False
    if sequence is not None:
        streams, opened = track_stream(order.streams, sequence, now=now)
    floor = order.floor
    later_run = (
        opened
        and order.newest is not None
        and not any(now - s.last_seen <= STREAM_LIVE_S for s in order.streams)
    )
    if order.newest is not None and times and (later_run or times[0] < order.newest - CLOCK_JUMP_S):
        above_newest = order.newest + _PAST_NEWEST_S  # after the newest line, not beside it
        floor = above_newest if floor is None else max(floor, above_newest)
    keys = []
    running = floor
    for stamp in times:
        running = stamp if running is None else max(running, stamp)
        keys.append(order_key(running, sequence or 0))
    newest = order.newest
    if running is not None:
        newest = running if newest is None else max(newest, running)
    return PlacedBatch(tuple(keys), LogOrder(floor, newest, streams), later_run)


def concurrent_studies(streams: tuple[Stream, ...], *, now: float) -> int:
    """How many studies are sending logs on the machine right now.

    Streams count together only when they overlap: one that stopped before the latest started is an
    earlier run, not a study beside it.
    """
    live = [s for s in streams if now - s.last_seen <= STREAM_IDLE_S]
    if not live:
        return 0
    latest_start = max(s.first_seen for s in live)
    return sum(1 for s in live if s.last_seen >= latest_start)


def streams_to_json(streams: tuple[Stream, ...]) -> str:
    return json.dumps([[s.high, s.first_seen, s.last_seen] for s in streams])


def streams_from_json(text: str | None) -> tuple[Stream, ...]:
    if not text:
        return ()
    return tuple(Stream(int(high), float(first), float(last)) for high, first, last in json.loads(text))


# -- progress order ----------------------------------------------------------------------------

PROGRESS_STAMPS = {"overall_progress": "progress_sent_at", "stage_progress": "stage_sent_at"}
"""The worker column holding the send time of the newest applied value of each progress type."""


def is_stale(sent_at: float | None, newest_sent_at: float | None) -> bool:
    """Was this progress value sent before the one already shown? Then it must not move the bar.

    GOLIAT's three sender threads deliver in any order and re-send progress every 2 s, so the
    newest by GOLIAT's own send time wins. A value far older than the newest is a clock that went
    back, not a late arrival, and is taken.
    """
    if sent_at is None or newest_sent_at is None:
        return False
    return newest_sent_at - CLOCK_JUMP_S <= sent_at < newest_sent_at


# -- endings -----------------------------------------------------------------------------------


def echoes_ending(
    ending: Ending,
    *,
    previous_exit_code: int | None,
    ended_at: float | None,
    now: float,
    grace_s: float,
) -> bool:
    """Is this failure the tail of an out-of-memory ending that arrived just before?

    GOLIAT sends `memory_error` (exit code 42) while its bridge runs, then "Study finished with
    errors" without an exit code. That second message must not turn a retry into a plain failure,
    nor end the retry when the machine has already claimed it again.
    """
    return (
        ending.failed
        and not ending.out_of_memory
        and previous_exit_code == EXIT_CODE_OUT_OF_MEMORY
        and ended_at is not None
        and now - ended_at <= grace_s
    )


# -- liveness ----------------------------------------------------------------------------------


def offline_after(*, configured_s: float, heartbeat_interval_s: float | None) -> float:
    """Seconds of silence after which a worker is offline.

    GOLIAT's bridge heartbeats only every 30 s while idle, so a fixed 30 s limit would make it
    flicker. A worker whose observed heartbeat spacing is longer than the limit gets 1.5 times
    that spacing plus 5 s.
    """
    if heartbeat_interval_s is None:
        return configured_s
    return max(configured_s, 1.5 * min(heartbeat_interval_s, 600.0) + 5.0)


def is_online(
    *, last_seen: float, now: float, configured_s: float, heartbeat_interval_s: float | None
) -> bool:
    return now - last_seen <= offline_after(
        configured_s=configured_s, heartbeat_interval_s=heartbeat_interval_s
    )
