"""The agent: ask for work, run it, report everything, upload the results, ask again.

Threads, each with one job, so that no job can stall another:

* main: the work loop (below) and the signal handlers (`signals.py`);
* heartbeat: every `heartbeat_interval_s`, system info and load; its answer can stop a run;
* sender (`client.Sender`): the spool to the server, in order, with backoff;
* screenshots (`screen_capture.ScreenshotSender`, with `--screenshots`): the GOLIAT window;
* per run: the study's output reader and the `OutputPump` that spools what the parser makes.

Every gui-update goes through the spool, so a server outage or an agent crash loses nothing: the
next agent start delivers what is left (each body has a `messageId`, so the server drops
repeats). Heartbeats are not spooled: they are the present state, stale on replay.

A run keeps its progress in `<run dir>/agent-run.json` (`assignment.RunState`). If the agent dies, the server hands the
same assignment back on the next ask; the file then says whether the study had already exited
(only the uploads and the `finished` are left to do) or must run again (the orphaned study, if it
still runs, is killed first). Attempts are told apart by the assignment's `attempts` count.
"""

from __future__ import annotations

import logging
import os
import shlex
import ssl
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from goliat_monitor.agent.assignment import (
    STATE_FILE,
    RunState,
    build_command,
    enabled_phases,
    safe_name,
    write_configs,
)
from goliat_monitor.agent.client import (
    AgentHTTPError,
    Connection,
    Sender,
    ServerClient,
    ServerRejected,
    ServerUnavailable,
)
from goliat_monitor.agent.console import AgentConsole, AgentView, RunView
from goliat_monitor.agent.goliat_output import GoliatOutputParser
from goliat_monitor.agent.identity import claim_work_dir, load_agent_id, release_work_dir
from goliat_monitor.agent.result_uploads import EarlyUploads, folder_files, result_folders
from goliat_monitor.agent.runner import OutputPump, StudyProcess, kill_process_tree
from goliat_monitor.agent.screen_capture import ScreenshotSender
from goliat_monitor.agent.system_info import SystemProbe
from goliat_monitor.delivery import backoff_delay, retry_delay
from goliat_monitor.outbox import GUI_UPDATE, Spool
from goliat_monitor.settings import AgentSettings

__all__ = ["Agent"]

log = logging.getLogger("goliat_monitor.agent")

SUCCESS_TEXT = "Study finished successfully"
FAILURE_TEXT = "Study finished with errors"
STOPPED_TEXT = "Study stopped at the server's request"
SPOOL_FILE = "spool.sqlite3"
RAW_OUTPUT_FILE = "agent-console.log"
PROGRESS_LINE_EVERY_S = 30.0
EARLY_UPLOAD_EVERY_S = 2.0  # how often a running study's folders are checked for finished ones


class _Stop(Exception):
    """The agent is stopping (Ctrl-C, SIGTERM): leave the current step as it is."""


class Agent:
    """One worker agent; `run()` blocks until `request_stop()` (signals call it).

    `transport` (an httpx transport, e.g. MockTransport), `probe` and `log_level=None` (leave
    logging alone) let tests and embedding applications run it without a server or a terminal.
    """

    def __init__(
        self,
        settings: AgentSettings,
        *,
        machine_id: str,
        live_console: bool | None = None,
        transport: httpx.BaseTransport | None = None,
        probe: SystemProbe | None = None,
        log_level: int | None = logging.INFO,
    ) -> None:
        self.settings = settings
        self._log_level = log_level
        self.machine_id = machine_id
        self.work_dir = settings.work_dir.resolve()
        self._transport = transport
        self._probe = probe
        self._live_console = live_console
        self.connection = Connection()
        self._ssl: ssl.SSLContext | None = None
        self._stop = threading.Event()
        self._kill = threading.Event()
        self._halt_threads = threading.Event()
        self._server_stop = threading.Event()
        self._current: str | None = None
        self._current_lock = threading.Lock()
        self.agent_id = ""
        self.spool: Spool | None = None
        self.sender: Sender | None = None
        self.view: AgentView | None = None
        self.console: AgentConsole | None = None

    # -- control (signal handlers call this) -----------------------------------------------------

    def request_stop(self) -> None:
        """First call: stop cleanly (interrupt the study, keep its files). Second: kill the study."""
        if self._stop.is_set():
            self._kill.set()
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _server_stops(self, assignment_id: str, why: str) -> None:
        with self._current_lock:
            if assignment_id != self._current or self._server_stop.is_set():
                return
            self._server_stop.set()
        log.warning("server: stop assignment %s (%s)", assignment_id[:8], why)

    # -- main ------------------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until stopped; returns the process exit code."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        claim_work_dir(self.work_dir)
        self.agent_id = load_agent_id(self.work_dir)
        self.spool = Spool(self.work_dir / SPOOL_FILE)
        self.view = AgentView(
            server_url=self.settings.server_url,
            machine_id=self.machine_id,
            agent_id=self.agent_id,
            connection=self.connection,
            work_dir=str(self.work_dir),
            spool=self.spool,
        )
        self.console = AgentConsole(self.view, live=self._live_console)
        self.console.start(self._log_level)
        log.info(
            "agent %s for machine %s -> %s (work dir %s)",
            self.agent_id[:8],
            self.machine_id,
            self.settings.server_url,
            self.work_dir,
        )
        if self.spool.depth():
            log.info(
                "%d message(s) left in the spool by the last run: delivering them first", self.spool.depth()
            )
        clients = [self._client()]
        self.sender = Sender(
            self.spool,
            clients[0],
            on_taken=lambda aid: self._server_stops(aid, "the server answered 409"),
            retry_cap=self.settings.retry_cap_s,
        )
        self.sender.start()
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="agent-heartbeat", daemon=True)
        heartbeat.start()
        screenshots = self._start_screenshots()
        main_client = self._client()
        try:
            self._work_loop(main_client)
        finally:
            if screenshots is not None:
                screenshots.stop()
            self._shutdown(main_client, clients, heartbeat)
        return 0

    def _start_screenshots(self) -> ScreenshotSender | None:
        """The GOLIAT window's screenshots (`--screenshots SECONDS`), in their own thread, if asked for."""
        if self.settings.screenshot_interval_s <= 0:
            return None
        screenshots = ScreenshotSender(self._client(), self.settings.screenshot_interval_s)
        screenshots.start()
        return screenshots

    def _client(self) -> ServerClient:
        if self._ssl is None:  # one context for all clients: loading the CA bundle costs ~1 MB each
            self._ssl = httpx.create_ssl_context()
        return ServerClient(
            self.settings.server_url,
            machine_id=self.machine_id,
            agent_id=self.agent_id,
            token=self.settings.token,
            timeout=self.settings.request_timeout_s,
            upload_timeout=self.settings.upload_timeout_s,
            connection=self.connection,
            transport=self._transport,
            verify=self._ssl,
        )

    def _shutdown(
        self, main_client: ServerClient, clients: list[ServerClient], heartbeat: threading.Thread
    ) -> None:
        assert self.spool is not None and self.sender is not None and self.view is not None
        self.view.state = "stopping"
        if self._stop.is_set():
            self._append(None, {"type": "status", "message": "[agent] Agent stopped", "log_type": "warning"})
        drained = self.sender.wait_drained(5.0)
        self.sender.stop(0.0)
        self._halt_threads.set()
        heartbeat.join(timeout=2.0)
        left = self.spool.depth()
        if not drained and left:
            log.warning("%d message(s) stay in the spool; the next agent start delivers them", left)
        for client in [main_client, *clients]:
            client.close()
        if self.console is not None:
            self.console.stop()
        self.spool.close()
        release_work_dir(self.work_dir)
        log.info("agent stopped")

    def _sleep(self, seconds: float) -> None:
        """Wait, in short slices (Ctrl-C is only seen between them on Windows); raise _Stop."""
        deadline = time.monotonic() + seconds
        while True:
            if self._stop.is_set():
                raise _Stop
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(0.25, left))

    def _retry_delay(self, error: ServerUnavailable, failures: int) -> float:
        """How long to wait before calling the server again, as `delivery.retry_delay` says."""
        return retry_delay(
            error.outcome, failures, base=0.5, cap=self.settings.retry_cap_s, retry_after=error.retry_after
        )

    def _work_loop(self, client: ServerClient) -> None:
        assert self.view is not None and self.spool is not None
        idle = 0
        failures = 0
        try:
            while True:
                # The `finished` of the last run (and anything older) must be in before we ask:
                # the server would otherwise hand the finished assignment back.
                while self.spool.depth() > 0:
                    self.view.state = "delivering spooled messages"
                    self._sleep(0.1)
                self.view.state = "asking for work"
                try:
                    assignment = client.next_assignment()
                except ServerUnavailable as exc:
                    failures += 1
                    self.view.state = "waiting for the server"
                    log.debug("asking for work failed: %s", exc)
                    self._sleep(self._retry_delay(exc, failures))
                    continue
                except ServerRejected as exc:
                    log.error("the server refused to give work: %s", exc)
                    self._sleep(self.settings.idle_poll_max_s)
                    continue
                failures = 0
                if assignment is None:
                    idle += 1
                    self.view.state = "idle: no work on the server"
                    self._sleep(backoff_delay(idle, 1.0, self.settings.idle_poll_max_s))
                    continue
                idle = 0
                try:
                    self._run_assignment(client, assignment)
                except (_Stop, KeyboardInterrupt):
                    raise
                except Exception as exc:  # disk full, a bug: report it, keep serving
                    log.exception("assignment %s failed in the agent", assignment.get("id"))
                    self._append(
                        str(assignment["id"]),
                        {"type": "finished", "message": f"Agent error: {exc}", "exit_code": 1},
                    )
                    self._sleep(5.0)
        except _Stop:
            return

    # -- one assignment ----------------------------------------------------------------------------

    def _envelope(self, assignment_id: str | None, message: dict[str, Any], wall: float) -> dict[str, Any]:
        body: dict[str, Any] = {
            "machineId": self.machine_id,
            "agentId": self.agent_id,
            "messageId": uuid.uuid4().hex,
            "message": message,
            "timestamp": wall,
        }
        if assignment_id:
            body["assignmentId"] = assignment_id
        return body

    def _append(self, assignment_id: str | None, message: dict[str, Any]) -> None:
        assert self.spool is not None and self.sender is not None
        self.spool.append(GUI_UPDATE, self._envelope(assignment_id, message, time.time()))
        self.sender.wake()

    def _run_assignment(self, client: ServerClient, assignment: dict[str, Any]) -> None:
        assert self.view is not None
        aid = str(assignment["id"])
        index = int(assignment.get("index") or 0)
        attempt = int(assignment.get("attempts") or 1)
        study = str(assignment.get("superStudyName") or "study")
        name = f"{safe_name(study)}_assignment_{index}"
        run_dir = self.work_dir / "runs" / f"{name}_{aid[:8]}"
        run_dir.mkdir(parents=True, exist_ok=True)
        state_path = run_dir / STATE_FILE
        run = RunView(assignment_id=aid, study=study, index=index, attempt=attempt)
        self.view.run = run
        self._server_stop.clear()
        with self._current_lock:
            self._current = aid
        try:
            if assignment.get("stopRequested"):
                log.warning("assignment %s came back with a stop request: reporting it stopped", aid[:8])
                self._append(aid, {"type": "finished", "message": STOPPED_TEXT, "exit_code": 1})
                return
            state = RunState.load(state_path)
            if state is not None and (state.assignment_id, state.attempt) != (aid, attempt):
                state = None
            if state is not None and state.phase == "done":
                # Our `finished` was delivered yet the server still says RUNNING: say it again.
                self._append(aid, self._finished(state.exit_code))
                return
            pump = self._pump(aid, run, assignment)
            interrupted = False
            early = None
            try:
                if state is not None and state.phase == "exited":
                    pump.notice(
                        f"Agent restarted: the study had exited with code {state.exit_code}; resuming uploads"
                    )
                    code: int | None = state.exit_code
                else:
                    orphan = state.pid if state is not None else None
                    if orphan and state is not None and kill_process_tree(orphan, created=state.created):
                        pump.notice("Agent restarted: killed the study it had left running", "warning")
                    state = RunState(aid, attempt)
                    config = write_configs(self.work_dir, assignment, name)
                    early = EarlyUploads(run_dir / "results", self._upload_limit)
                    code, interrupted = self._execute(
                        assignment, config, run_dir, state, state_path, pump, run, (client, early)
                    )
                if interrupted:
                    self._after_stop(aid, code, run_dir, pump)
                else:
                    state.phase, state.exit_code, state.pid = "exited", code, None
                    state.save(state_path)
                    run.phase = "uploading results"
                    self.view.state = f"uploading results of #{index}"
                    self._upload(client, aid, run_dir, state, state_path, pump, early)
            finally:
                pump.close()  # flushes the last lines and progress before `finished`
            if interrupted and not self._server_stop.is_set():
                return  # stopped by our user: no `finished`, the assignment resumes on restart
            if interrupted:
                self._append(aid, {"type": "finished", "message": STOPPED_TEXT, "exit_code": code or 1})
            else:
                self._append(aid, self._finished(code))
            state.phase, state.exit_code = "done", code
            state.save(state_path)
            if code == 0 and not interrupted:
                self.view.completed += 1
            else:
                self.view.failed += 1
            log.info(
                "assignment #%d of %s: exit code %s%s",
                index,
                study,
                code,
                " (stopped)" if interrupted else "",
            )
        finally:
            with self._current_lock:
                self._current = None
            self.view.run = None
            self.view.last_event = f"last: assignment #{index} of {study}"

    def _finished(self, code: int | None) -> dict[str, Any]:
        if code == 0:
            return {"type": "finished", "message": SUCCESS_TEXT, "exit_code": 0}
        return {"type": "finished", "message": FAILURE_TEXT, "exit_code": 1 if code is None else code}

    def _after_stop(self, aid: str, code: int | None, run_dir: Path, pump: OutputPump) -> None:
        """The study was stopped: by the server (report it), or by this agent's user (leave it)."""
        if self._server_stop.is_set():
            pump.notice(f"{STOPPED_TEXT} (exit code {code})", "warning")
            log.warning("assignment %s stopped at the server's request", aid[:8])
            return
        pump.notice(
            f"Agent stopped by its user; the study was interrupted (exit code {code}). Its files stay "
            f"in {run_dir}; the assignment resumes when the agent starts again.",
            "warning",
        )

    def _pump(self, aid: str, run: RunView, assignment: dict[str, Any]) -> OutputPump:
        assert self.spool is not None and self.sender is not None
        pump = OutputPump(
            self.spool,
            envelope=lambda message, wall: self._envelope(aid, message, wall),
            on_spooled=self.sender.wake,
            observe=run.observe,
            parser=GoliatOutputParser(phases=enabled_phases(assignment)),
            progress_hz=self.settings.progress_hz,
            batch_lines=self.settings.log_batch_lines,
            batch_age=self.settings.log_batch_age_s,
            forward_verbose=self.settings.forward_verbose,
            backlog=self.spool.depth,
        )
        pump.start()
        return pump

    def _execute(
        self,
        assignment: dict[str, Any],
        config: Path,
        run_dir: Path,
        state: RunState,
        state_path: Path,
        pump: OutputPump,
        run: RunView,
        uploads: tuple[ServerClient, EarlyUploads],
    ) -> tuple[int | None, bool]:
        """Run the study to its end, or until stopped; returns (exit code, whether we interrupted it).

        Meanwhile each simulation folder GOLIAT has finished extracting is uploaded, as GOLIAT does.
        """
        assert self.view is not None
        aid = str(assignment["id"])
        try:
            argv = build_command(self.settings.command, config, run_dir)
        except ValueError as exc:
            pump.notice(f"Bad study command {self.settings.command!r}: {exc}", "error")
            return 2, False
        env = dict(os.environ)
        env.update(GOLIAT_ASSIGNMENT_ID=aid, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
        env.setdefault("COLORAMA_STRIP", "0")  # keep GOLIAT's colours: they carry the log type
        process = StudyProcess(
            argv, cwd=run_dir, env=env, on_lines=pump.feed_lines, raw_log=run_dir / RAW_OUTPUT_FILE
        )
        pump.notice(f"Assignment #{run.index} of {run.study}, attempt {run.attempt}: {shlex.join(argv)}")
        try:
            process.start()
        except OSError as exc:
            pump.notice(f"Cannot start the study: {exc}", "error")
            log.error("cannot start %s: %s", argv[0], exc)
            return 127, False
        state.pid, state.created = process.pid, process.created
        state.save(state_path)
        run.phase = "running"
        self.view.state = f"running assignment #{run.index}"
        log.info("assignment #%d of %s: started pid %d", run.index, run.study, process.pid)
        interrupted_at: float | None = None
        killed = False
        next_report = time.monotonic() + PROGRESS_LINE_EVERY_S
        next_upload = time.monotonic() + EARLY_UPLOAD_EVERY_S
        while process.wait(0.25) is None:
            now = time.monotonic()
            if now >= next_report and self.console is not None:
                self.console.progress_line()
                next_report = now + PROGRESS_LINE_EVERY_S
            if now >= next_upload and interrupted_at is None:
                self._upload_early(*uploads, aid)
                next_upload = time.monotonic() + EARLY_UPLOAD_EVERY_S
            if self._kill.is_set() and not killed:
                pump.notice("Killing the study (second Ctrl-C)", "warning")
                process.kill()
                killed = True
            elif (self._stop.is_set() or self._server_stop.is_set()) and interrupted_at is None:
                who = "the server" if self._server_stop.is_set() else "the agent's user"
                pump.notice(f"Stopping the study: asked by {who}", "warning")
                log.warning("interrupting the study (press Ctrl-C again to kill it)")
                process.interrupt()
                interrupted_at = now
            elif (
                interrupted_at is not None
                and not killed
                and now - interrupted_at > self.settings.stop_grace_s
            ):
                pump.notice(
                    f"The study did not stop within {self.settings.stop_grace_s:.0f} s: killing it", "warning"
                )
                process.kill()
                killed = True
        process.finish_output()
        code = process.returncode
        level = "success" if code == 0 else "error"
        pump.notice(f"Study exited with code {code}", level)
        return code, interrupted_at is not None or killed

    @property
    def _upload_limit(self) -> int:
        return int(self.settings.upload_max_file_mb * 1024 * 1024)

    def _upload_early(self, client: ServerClient, early: EarlyUploads, aid: str) -> None:
        """Upload the folders finished so far, one attempt each: a failure waits for the final pass."""
        for relative, files in early.due():
            try:
                client.upload_results(aid, relative, files)
            except (AgentHTTPError, OSError) as exc:
                log.info("early upload of %s failed (%s); it goes up when the study ends", relative, exc)
                return
            early.sent(relative, files)

    def _upload(
        self,
        client: ServerClient,
        aid: str,
        run_dir: Path,
        state: RunState,
        state_path: Path,
        pump: OutputPump,
        early: EarlyUploads | None = None,
    ) -> None:
        """Upload `results/` one simulation folder per request; retried through outages.

        A folder uploaded while the study ran is skipped when its files are unchanged since.
        """
        limit = self._upload_limit
        done = set(state.uploaded)
        uploaded_files = 0
        for folder, relative in result_folders(run_dir / "results"):
            if relative in done:
                continue
            files, too_large = folder_files(folder, limit)
            for path in too_large:
                pump.notice(f"Not uploading {relative}/{path.name}: larger than {limit} bytes", "warning")
            sent_early = early is not None and early.unchanged(relative, files)
            if sent_early or (files and self._upload_folder(client, aid, relative, files, pump)):
                uploaded_files += len(files)
            state.uploaded.append(relative)
            state.save(state_path)
        if uploaded_files:
            pump.notice(f"Uploaded {uploaded_files} result file(s)", "success")

    def _upload_folder(
        self, client: ServerClient, aid: str, relative: str, files: list[Path], pump: OutputPump
    ) -> bool:
        failures = 0
        while True:
            try:
                client.upload_results(aid, relative, files)
                return True
            except ServerUnavailable as exc:
                failures += 1
                if failures == 1:
                    log.warning("uploading %s failed (%s); retrying until the server is back", relative, exc)
                self._sleep(self._retry_delay(exc, failures))
            except ServerRejected as exc:
                pump.notice(f"The server refused the results of {relative}: {exc}", "warning")
                return False
            except OSError as exc:
                pump.notice(f"Cannot read the results of {relative}: {exc}", "warning")
                return False

    # -- heartbeat -----------------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        assert self.sender is not None
        client = self._client()
        try:
            probe = self._probe or SystemProbe()
            info = probe.static_info()
            while not self._halt_threads.is_set():
                with self._current_lock:
                    current = self._current
                try:
                    stop = client.heartbeat({**info, **probe.load()}, current)
                except AgentHTTPError:
                    pass  # Connection.mark has logged the outage
                else:
                    self.sender.wake()  # the server answers: end the sender's backoff now
                    if current and current in stop:
                        self._server_stops(current, "heartbeat answer")
                self._halt_threads.wait(self.settings.heartbeat_interval_s)
        except Exception:  # pragma: no cover - a bug; heartbeats must not take the agent down
            log.exception("heartbeat thread failed")
        finally:
            client.close()
