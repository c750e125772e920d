"""Run a study command and turn its console output into spooled gui-update messages.

Two pieces, each on its own thread, so the study never waits for anything but a local disk:

* `StudyProcess` starts the command in its own process group (so a Ctrl-C in the agent's
  terminal reaches the agent only, which then decides how to stop the study) and reads its merged
  stdout/stderr line by line, keeping a raw copy in the run folder.
* `OutputPump` feeds each line to `GoliatOutputParser`, passes the messages through a
  `delivery.Shaper` (log lines batched into `log_batch` messages with a per-run `sequence`
  from 0, progress throttled, the same rules as the bridge's) and appends the gui-update
  bodies to the spool. The network is the sender's business; nothing here ever touches it.
"""

from __future__ import annotations

import contextlib
import logging
import math
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

from goliat_monitor.agent.goliat_output import GoliatOutputParser
from goliat_monitor.delivery import Shaped, Shaper, drain
from goliat_monitor.outbox import GUI_UPDATE, Spool

__all__ = ["AGENT_PREFIX", "OutputPump", "StudyProcess", "kill_process_tree"]

log = logging.getLogger(__name__)

AGENT_PREFIX = "[agent] "
"""Lines the agent itself adds to a run's log start with this, so they are told from GOLIAT's."""

_EOF = object()
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
        self.shaper = Shaper(progress_hz=progress_hz, batch_lines=batch_lines, batch_age=batch_age)
        self.lines_in = 0
        self._envelope = envelope
        self._on_spooled = on_spooled
        self._observe = observe
        self._tick_interval = tick_interval
        self._forward_verbose = forward_verbose
        self._backlog = backlog
        self._backlog_threshold = backlog_threshold
        self._intake: queue.SimpleQueue[Any] = queue.SimpleQueue()
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
        due = self.shaper.next_due()
        timeout = min(self._next_tick, due or math.inf) - time.monotonic()
        items, stopping = drain(self._intake, timeout, _EOF)
        if self._backlog is not None:
            # The server is down or slow: nobody sees the lines now, so fewer and bigger
            # messages make the replay faster (the server's cost is per request).
            self.shaper.scale = 10.0 if self._backlog() > self._backlog_threshold else 1.0
        out: list[Shaped] = []
        for item in items:
            self._handle(item, out)
        now = time.monotonic()
        if now >= self._next_tick or stopping:
            self._next_tick = now + self._tick_interval
            for message in self.parser.tick(time.time()):
                self._route(message, time.time(), out)
        self.shaper.flush(time.monotonic(), out, force=stopping)
        if out:
            self.spool.append_many((GUI_UPDATE, self._envelope(message, wall)) for message, wall in out)
            self._on_spooled()
        return stopping

    def _handle(self, item: tuple[Any, ...], out: list[Shaped]) -> None:
        if item[0] == "lines":
            _, lines, wall = item
            self.lines_in += len(lines)
            for line in lines:
                for message in self.parser.feed(line, wall):
                    self._route(message, wall, out)
        else:
            _, text, log_type, wall = item
            entry = {"type": "status", "message": text, "log_type": log_type, "timestamp": wall}
            self.shaper.add(entry, wall, time.monotonic(), out)

    def _route(self, message: dict[str, Any], wall: float, out: list[Shaped]) -> None:
        """The parser's messages as the server wants them; verbose lines only when asked."""
        self._observe(message)
        kind = message.get("type")
        if kind == "terminal_only" and not self._forward_verbose:
            return
        if kind in ("status", "terminal_only"):
            # Verbose-level lines are kept for reading, never counted as a warning or error.
            message = {
                "type": "status",
                "message": message.get("message", ""),
                "log_type": "verbose" if kind == "terminal_only" else message.get("log_type") or "default",
                "timestamp": message.get("timestamp", wall),
            }
        self.shaper.add(message, wall, time.monotonic(), out)
