"""Run a study command and turn its console output into spooled gui-update messages.

Two pieces, each on its own thread, so the study never waits for anything but a local disk:

* `StudyProcess` starts the command in its own process group (so a Ctrl-C in the agent's
  terminal reaches the agent only, which then decides how to stop the study) and reads its merged
  stdout/stderr line by line, keeping a raw copy in the run folder.
* `OutputPump` feeds each line to `GoliatOutputParser`, batches log lines into `log_batch`
  messages (a per-run `sequence` from 0), throttles progress (latest value wins, a final 100 %
  is always kept) and appends the finished gui-update bodies to the spool. The network is the
  sender's business; nothing here ever touches it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import psutil

from goliat_monitor.agent.client import GUI_UPDATE, PROGRESS_TYPES
from goliat_monitor.agent.goliat_output import GoliatOutputParser
from goliat_monitor.agent.spool import Spool

__all__ = ["AGENT_PREFIX", "OutputPump", "StudyProcess", "kill_process_tree"]

log = logging.getLogger(__name__)

AGENT_PREFIX = "[agent] "
"""Lines the agent itself adds to a run's log start with this, so they are told from GOLIAT's."""

_EOF = object()
_DRAIN_PER_CYCLE = 1000
_READ_SIZE = 65536
_MAX_LINE = 1 << 20


def kill_process_tree(pid: int, *, created: float | None = None) -> bool:
    """Kill a process and all its descendants (psutil: the same on Windows and POSIX).

    `created` (a psutil create_time) guards against killing an unrelated process that reused
    the pid. Returns True if something was killed.
    """
    try:
        root = psutil.Process(pid)
        if created is not None and abs(root.create_time() - created) > 0.01:
            return False
        victims = [*root.children(recursive=True), root]
    except psutil.Error:
        return False
    for victim in victims:
        with contextlib.suppress(psutil.Error):
            victim.kill()
    psutil.wait_procs(victims, timeout=5)
    return True


class StudyProcess:
    """One run of the study command, in its own process group, output read on a thread."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        on_lines: Callable[[list[str], float], None],
        raw_log: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.env = dict(env)
        self._on_lines = on_lines
        self._raw_log = raw_log
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self.created: float | None = None
        self.gather_s = 0.1
        self.returncode: int | None = None
        self.exited = threading.Event()
        """Set when the process has exited; `returncode` is then its exit code."""

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid

    def start(self) -> None:
        """Start the command; raises OSError (e.g. FileNotFoundError) if it cannot be started."""
        kwargs: dict[str, Any] = {}
        if sys.platform == "win32":
            # A group of its own: Ctrl-C in the console does not reach it, CTRL_BREAK_EVENT can.
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["start_new_session"] = True  # its own session and process group
        self._proc = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            bufsize=0,  # raw pipe: read() returns what is there, many lines per wake-up
            **kwargs,
        )
        with contextlib.suppress(psutil.Error):
            self.created = psutil.Process(self._proc.pid).create_time()
        self._reader = threading.Thread(target=self._read, name="study-reader", daemon=True)
        self._reader.start()
        # A blocking wait on a thread: Popen.wait(timeout) polls with sleeps on POSIX.
        threading.Thread(target=self._wait_exit, name="study-waiter", daemon=True).start()

    def _wait_exit(self) -> None:
        assert self._proc is not None
        self.returncode = self._proc.wait()
        self.exited.set()

    def _read(self) -> None:
        """Read whatever the study wrote (up to 64 KiB at once) and hand over complete lines.

        Reading chunks rather than lines wakes this thread once per write burst instead of once
        per line; a line split across reads waits in `pending` for its end.
        """
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        raw: IO[bytes] | None = None
        if self._raw_log is not None:
            try:
                raw = self._raw_log.open("ab", buffering=0)  # unbuffered: survives a SIGKILL
            except OSError:
                log.warning("cannot write %s; the study's raw output is not kept", self._raw_log)
        pending = b""
        try:
            while chunk := stdout.read(_READ_SIZE):
                if raw is not None:
                    raw.write(chunk)
                pending += chunk
                if b"\n" in chunk or len(pending) >= _MAX_LINE:
                    *lines, pending = pending.split(b"\n")
                    if len(pending) >= _MAX_LINE:  # no newline for 1 MiB: pass it on as a line anyway
                        lines.append(pending)
                        pending = b""
                    self._on_lines([line.decode("utf-8", errors="replace") for line in lines], time.time())
                if len(chunk) < _READ_SIZE:
                    # Let output gather in the pipe (64 KiB of buffer: seconds of GOLIAT's output)
                    # instead of waking for every line: waking is what costs CPU, not parsing.
                    time.sleep(self.gather_s)
        except (OSError, ValueError):  # the pipe was closed under us (kill, or a stuck grandchild)
            pass
        finally:
            if pending:
                self._on_lines([pending.decode("utf-8", errors="replace")], time.time())
            if raw is not None:
                raw.close()
            with contextlib.suppress(OSError):
                stdout.close()  # the reader owns the pipe: at its end nothing else reads it

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code, or None if the process is still running after `timeout` seconds."""
        self.exited.wait(timeout)
        return self.returncode

    def finish_output(self, timeout: float = 5.0) -> None:
        """Wait for the reader to see the end of the output after the process exited.

        A grandchild that inherited the pipe can keep it open forever; after `timeout` the pipe
        is closed and whatever that grandchild prints is ignored.
        """
        if self._reader is None:
            return
        self._reader.join(timeout)
        if self._reader.is_alive() and self._proc is not None and self._proc.stdout is not None:
            with contextlib.suppress(OSError):
                self._proc.stdout.close()
            self._reader.join(1.0)

    def interrupt(self) -> None:
        """Ask the study to stop as a Ctrl-C would.

        POSIX: SIGINT to its process group, which GOLIAT's Python turns into KeyboardInterrupt and
        a clean "Study execution cancelled by user". Windows: a process in its own group can only
        be sent CTRL_BREAK_EVENT, which ends a Python program at once unless it handles SIGBREAK;
        the study's files stay either way.
        """
        if self._proc is None or self._proc.poll() is not None:
            return
        try:
            if sys.platform == "win32":
                self._proc.send_signal(signal.CTRL_BREAK_EVENT)
            else:
                os.killpg(self._proc.pid, signal.SIGINT)
        except (OSError, ValueError):
            log.debug("could not interrupt the study", exc_info=True)

    def kill(self) -> None:
        """Kill the study and every process it started."""
        if self._proc is None or self._proc.poll() is not None:
            return
        kill_process_tree(self._proc.pid)
        if sys.platform != "win32":
            with contextlib.suppress(OSError):
                os.killpg(self._proc.pid, signal.SIGKILL)


class OutputPump:
    """Parser, batcher and throttle between a study's output and the spool, on one thread.

    `feed` and `notice` never block and never raise, so the reading thread keeps up with the study
    whatever the server does. `close` flushes everything, including the last progress values,
    so a run's final 100 % is in the spool before its `finished`.
    """

    def __init__(
        self,
        spool: Spool,
        *,
        envelope: Callable[[dict[str, Any], float], dict[str, Any]],
        on_spooled: Callable[[], None] = lambda: None,
        observe: Callable[[dict[str, Any]], None] = lambda message: None,
        parser: GoliatOutputParser | None = None,
        progress_hz: float = 5.0,
        batch_lines: int = 100,
        batch_age: float = 0.25,
        tick_interval: float = 1.0,
        forward_verbose: bool = False,
        backlog: Callable[[], int] | None = None,
        backlog_threshold: int = 50,
    ) -> None:
        self.spool = spool
        self.parser = parser or GoliatOutputParser()
        self.sequence = 0
        self.lines_in = 0
        self._envelope = envelope
        self._on_spooled = on_spooled
        self._observe = observe
        self._interval = 1.0 / progress_hz if progress_hz > 0 else 0.0
        self._batch_lines = max(1, batch_lines)
        self._batch_age = batch_age
        self._tick_interval = tick_interval
        self._forward_verbose = forward_verbose
        self._backlog = backlog
        self._backlog_threshold = backlog_threshold
        self._behind = False
        self._intake: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._batch: list[dict[str, Any]] = []
        self._batch_started = 0.0
        self._last_sent: dict[str, float] = {}
        self._last_progress = float("-inf")
        self._pending: dict[str, tuple[dict[str, Any], float]] = {}
        self._last_final: dict[str, dict[str, Any]] = {}
        self._last_value: dict[str, dict[str, Any]] = {}
        self._next_tick = 0.0
        self._thread: threading.Thread | None = None

    # -- producer side (any thread) --------------------------------------------------------------

    def start(self) -> None:
        self._next_tick = time.monotonic() + self._tick_interval
        self._thread = threading.Thread(target=self._run, name="output-pump", daemon=True)
        self._thread.start()

    def feed(self, line: str, wall: float | None = None) -> None:
        """One line of the study's output (thread-safe, never blocks)."""
        self.feed_lines([line], wall)

    def feed_lines(self, lines: list[str], wall: float | None = None) -> None:
        """Lines of the study's output read together (thread-safe, never blocks)."""
        self._intake.put(("lines", lines, time.time() if wall is None else wall))

    def notice(self, text: str, log_type: str = "info") -> None:
        """A line of the agent's own, into this run's log between the study's lines."""
        self._intake.put(("notice", AGENT_PREFIX + text, log_type, time.time()))

    def close(self, timeout: float = 10.0) -> None:
        """Flush every pending line and value to the spool and stop the thread."""
        if self._thread is None:
            return
        self._intake.put(_EOF)
        self._thread.join(timeout)

    # -- the thread --------------------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                stopping = self._cycle()
            except Exception:  # a parser bug must not silence the rest of the run
                log.exception("output pump error")
                time.sleep(0.1)

    def _cycle(self) -> bool:
        try:
            item = self._intake.get(timeout=self._wait())
        except queue.Empty:
            item = None
        if self._backlog is not None:
            # The server is down or slow: nobody sees the lines now, so fewer and bigger
            # messages make the replay faster (the server's cost is per request).
            self._behind = self._backlog() > self._backlog_threshold
        out: list[dict[str, Any]] = []
        stopping = False
        handled = 0
        while item is not None:
            if item is _EOF:
                stopping = True
                break
            self._handle(item, out)
            handled += 1
            if handled >= _DRAIN_PER_CYCLE:
                break
            try:
                item = self._intake.get_nowait()
            except queue.Empty:
                item = None
        now = time.monotonic()
        if now >= self._next_tick or stopping:
            self._next_tick = now + self._tick_interval
            for message in self.parser.tick(time.time()):
                self._route(message, time.time(), out)
        self._flush_due(now, out, force=stopping)
        if out:
            self.spool.append_many((GUI_UPDATE, body) for body in out)
            self._on_spooled()
        return stopping

    @property
    def _limits(self) -> tuple[int, float, float]:
        """(lines per batch, batch age, progress interval), ten times larger while behind."""
        if self._behind:
            return self._batch_lines * 10, self._batch_age * 10, self._interval * 10
        return self._batch_lines, self._batch_age, self._interval

    def _wait(self) -> float:
        _, age, interval = self._limits
        now = time.monotonic()
        due = self._next_tick
        if self._batch:
            due = min(due, self._batch_started + age)
        if self._pending:
            due = min(due, self._last_progress + interval)
        return max(0.001, due - now)

    def _handle(self, item: tuple[Any, ...], out: list[dict[str, Any]]) -> None:
        if item[0] == "lines":
            _, lines, wall = item
            self.lines_in += len(lines)
            for line in lines:
                for message in self.parser.feed(line, wall):
                    self._route(message, wall, out)
        else:
            _, text, log_type, wall = item
            self._add_line({"type": "status", "message": text, "log_type": log_type, "timestamp": wall}, out)

    def _route(self, message: dict[str, Any], wall: float, out: list[dict[str, Any]]) -> None:
        self._observe(message)
        kind = message.get("type")
        if kind == "status":
            entry = {
                "type": "status",
                "message": message.get("message", ""),
                "log_type": message.get("log_type") or "default",
                "timestamp": message.get("timestamp", wall),
            }
            self._add_line(entry, out)
        elif kind == "terminal_only":
            if self._forward_verbose:
                # Verbose-level: kept for reading, never counted as a warning or error.
                entry = {
                    "type": "status",
                    "message": message.get("message", ""),
                    "log_type": "verbose",
                    "timestamp": message.get("timestamp", wall),
                }
                self._add_line(entry, out)
        elif kind in PROGRESS_TYPES:
            self._throttle(str(kind), message, wall, out)
        else:
            self._emit(message, wall, out)

    def _add_line(self, entry: dict[str, Any], out: list[dict[str, Any]]) -> None:
        if not self._batch:
            self._batch_started = time.monotonic()
        self._batch.append(entry)
        if len(self._batch) >= self._limits[0]:
            self._seal_batch(out)

    def _seal_batch(self, out: list[dict[str, Any]]) -> None:
        message = {"type": "log_batch", "logs": self._batch, "sequence": self.sequence}
        self.sequence += 1
        self._batch = []
        out.append(self._envelope(message, time.time()))

    def _emit(self, message: dict[str, Any], wall: float, out: list[dict[str, Any]]) -> None:
        """Append one message; lines batched before it go first, unless it is a progress value.

        Progress is state, not history: it may overtake the lines of the last half second, and
        not sealing a batch for it keeps batches full (fewer requests).
        """
        kind = message.get("type")
        if kind in PROGRESS_TYPES:
            self._last_value[str(kind)] = message
        elif self._batch:
            self._seal_batch(out)
        out.append(self._envelope(message, wall))

    def _throttle(self, kind: str, message: dict[str, Any], wall: float, out: list[dict[str, Any]]) -> None:
        """At most `progress_hz` progress messages a second, all types together; latest value wins.

        When several types are waiting, the one sent longest ago goes next. A final value
        (current >= total, or an ETA of 0) goes at once and is never dropped.
        """
        now = time.monotonic()
        if _is_final(message):
            self._pending.pop(kind, None)  # an older value: superseded by the final one
            if self._last_final.get(kind) != message:
                self._last_final[kind] = message
                self._sent_progress(kind, now)
                self._emit(message, wall, out)
            return
        self._last_final.pop(kind, None)
        if not _significant(self._last_value.get(kind), message):
            return  # a change nobody could see on a progress bar: not worth a request
        if not self._pending and now - self._last_progress >= self._limits[2]:
            self._sent_progress(kind, now)
            self._emit(message, wall, out)
        else:
            self._pending[kind] = (message, wall)

    def _sent_progress(self, kind: str, now: float) -> None:
        self._last_progress = now
        self._last_sent[kind] = now

    def _flush_due(self, now: float, out: list[dict[str, Any]], *, force: bool) -> None:
        _, age, interval = self._limits
        if self._batch and (force or now - self._batch_started >= age):
            self._seal_batch(out)
        if force:
            for kind, (message, wall) in list(self._pending.items()):
                self._sent_progress(kind, now)
                self._emit(message, wall, out)
            self._pending.clear()
        elif self._pending and now - self._last_progress >= interval:
            kind = min(self._pending, key=lambda k: self._last_sent.get(k, 0.0))
            message, wall = self._pending.pop(kind)
            self._sent_progress(kind, now)
            self._emit(message, wall, out)


def _percent(message: Mapping[str, Any]) -> float | None:
    try:
        total = float(message["total"])
        return 100.0 * float(message["current"]) / total if total else 0.0
    except (KeyError, TypeError, ValueError):
        return None


def _significant(previous: Mapping[str, Any] | None, message: Mapping[str, Any]) -> bool:
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


def _is_final(message: Mapping[str, Any]) -> bool:
    """A progress value at its end (current >= total): never coalesced away."""
    if message.get("type") == "profiler_update":
        return message.get("eta_seconds") == 0
    try:
        return float(message["total"]) > 0 and float(message["current"]) >= float(message["total"])
    except (KeyError, TypeError, ValueError):
        return False
