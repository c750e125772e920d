"""The agent's HTTP side: one typed call per endpoint, and the sender that drains the spool.

What an answer means is `delivery.outcome_for`'s table, shared with the bridge; here it becomes a
small tree of errors, so callers decide by kind and never by parsing messages::

    AgentHTTPError
    ├── ServerUnavailable      RETRY_LATER: network error, timeout, 408/425/429, 5xx
    │   └── ServerMisconfigured  GIVE_UP_AND_KEEP: 401/403/407, 3xx (a wrong token or URL)
    └── ServerRejected         DROP: this request will never succeed as it is
        └── AssignmentTaken    409: the assignment is no longer this worker's

A misconfiguration is "unavailable" too: everything stays spooled until the operator fixes the
setting, and the retries wait the longest backoff. Every request has a timeout (httpx's default
is 5 s; ours come from AgentSettings).
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from goliat_monitor import __version__
from goliat_monitor.delivery import Outcome, outcome_for, parse_retry_after, plan_sends, retry_delay
from goliat_monitor.outbox import GUI_UPDATE, Spool, SpoolClosedError, SpooledMessage

__all__ = [
    "AgentHTTPError",
    "AssignmentTaken",
    "Connection",
    "ResultFileChanged",
    "Sender",
    "ServerClient",
    "ServerMisconfigured",
    "ServerRejected",
    "ServerUnavailable",
]

log = logging.getLogger(__name__)


class AgentHTTPError(Exception):
    """Base of the agent's HTTP errors; `outcome` says what the answer means for the request."""

    outcome = Outcome.DROP

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ServerUnavailable(AgentHTTPError):
    """No usable answer now; the same request may succeed later."""

    outcome = Outcome.RETRY_LATER


class ServerMisconfigured(ServerUnavailable):
    """Refused for our settings (token, URL), not for the request: kept until someone fixes them."""

    outcome = Outcome.GIVE_UP_AND_KEEP


class ServerRejected(AgentHTTPError):
    """The server refused this request; sending it again will not help."""


class AssignmentTaken(ServerRejected):
    """HTTP 409: the assignment was cancelled, requeued or given to another worker."""


class ResultFileChanged(OSError):
    """A result file grew or shrank while it was being uploaded: nothing of the folder is stored.

    The request declared each file's size when it was built; the HTTP library then refuses to send
    more or less than that, with an error of its own. A read error, like any other: GOLIAT may
    still be writing a folder it has marked extracted, so an early upload that meets this leaves
    the folder to the pass after the study, which sends what is there by then.
    """


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("error") or body.get("detail") or body)[:200]
    return str(body)[:200]


_ERRORS: dict[Outcome, type[AgentHTTPError]] = {
    Outcome.RETRY_LATER: ServerUnavailable,
    Outcome.GIVE_UP_AND_KEEP: ServerMisconfigured,
    Outcome.DROP: ServerRejected,
}


def check(response: httpx.Response, *, ok: tuple[int, ...] = (200,)) -> httpx.Response:
    """Raise the fitting AgentHTTPError unless the status is one of `ok`."""
    status = response.status_code
    if status in ok:
        return response
    message = f"HTTP {status}: {_detail(response)}"
    if status == 409:
        raise AssignmentTaken(message, status)
    error = _ERRORS.get(outcome_for(status), ServerRejected)  # an unexpected 2xx: not what we asked
    raise error(message, status, parse_retry_after(response.headers.get("retry-after")))


@dataclass
class Connection:
    """Whether the server answered the last call, shared by every client of one agent."""

    connected: bool | None = None
    since: float = field(default_factory=time.time)
    last_error: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def mark(self, ok: bool, error: str = "") -> bool:
        """Record an outcome; a change of state is logged once. True when the state changed."""
        with self._lock:
            if not ok:
                self.last_error = error
            if self.connected is ok:
                return False
            was, self.connected = self.connected, ok
            self.since = time.time()
        if ok:
            log.info("server reachable%s", " again" if was is False else "")
        else:
            log.warning("server unreachable (%s); everything is spooled until it answers", error)
        return True


class ServerClient:
    """Typed calls to a goliat-monitor server for one machine and agent.

    One instance per thread: httpx clients are cheap, and separate ones mean a slow upload never
    holds a connection the sender wants.
    """

    def __init__(
        self,
        server_url: str,
        *,
        machine_id: str,
        agent_id: str,
        token: str | None = None,
        timeout: float = 10.0,
        upload_timeout: float = 120.0,
        connection: Connection | None = None,
        transport: httpx.BaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.machine_id = machine_id
        self.agent_id = agent_id
        self.connection = connection or Connection()
        headers = {"user-agent": f"goliat-monitor-agent/{__version__}"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._upload_timeout = httpx.Timeout(upload_timeout, connect=min(10.0, upload_timeout))
        request_timeout = httpx.Timeout(timeout, connect=min(5.0, timeout))
        # Our own transport, shared by the Client and the gui-update fast path below.
        self._transport = transport or httpx.HTTPTransport(verify=verify)
        self._http = httpx.Client(
            base_url=self.server_url,
            headers=headers,
            timeout=request_timeout,
            transport=self._transport,
            follow_redirects=False,
        )
        self._gui_url = httpx.URL(self.server_url + "/api/gui-update")
        self._gui_headers = {**headers, "content-type": "application/json"}
        self._gui_extensions = {"timeout": request_timeout.as_dict()}
        self._proxied = transport is None and any(
            key.lower() in ("http_proxy", "https_proxy", "all_proxy") for key in os.environ
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(
        self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any
    ) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:  # connect/read/write errors and timeouts
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.connection.mark(False, error)
            raise ServerUnavailable(error) from exc
        try:
            check(response, ok=ok)
        except ServerUnavailable as exc:
            self.connection.mark(False, str(exc))
            raise
        self.connection.mark(True)
        return response

    # -- calls ---------------------------------------------------------------------------------

    def heartbeat(self, info: dict[str, Any], assignment_id: str | None = None) -> list[str]:
        """Send system info and load; returns the assignment ids the server wants stopped."""
        body = {**info, "machineId": self.machine_id, "agentId": self.agent_id}
        if assignment_id:
            body["assignmentId"] = assignment_id
        response = self._request("POST", "/api/heartbeat", json=body)
        try:
            stop = response.json().get("stopAssignmentIds") or []
        except (ValueError, AttributeError):
            return []
        return [str(item) for item in stop]

    def next_assignment(self) -> dict[str, Any] | None:
        """Claim (or get back) this worker's assignment; None when there is no work."""
        response = self._request(
            "GET",
            "/api/assignment",
            params={"machineId": self.machine_id, "agentId": self.agent_id},
            ok=(200, 204),
        )
        if response.status_code == 204:
            return None
        data = response.json()
        if not isinstance(data, dict) or "id" not in data:
            raise ServerRejected(f"unexpected assignment answer: {str(data)[:200]}")
        return data

    def post_gui_update(self, body: bytes) -> None:
        """POST one already-encoded gui-update body; raises on anything but 200.

        The agent's hottest call goes straight to the transport: the Client's per-request work
        (merging headers and cookies, auth and redirect handling, none of which this call needs)
        costs more CPU than the HTTP exchange itself. Same timeout, same errors.
        """
        if self._proxied:  # the Client knows how to reach the server through the proxy
            self._request(
                "POST", "/api/gui-update", content=body, headers={"content-type": "application/json"}
            )
            return
        request = httpx.Request(
            "POST", self._gui_url, content=body, headers=self._gui_headers, extensions=self._gui_extensions
        )
        try:
            response = self._transport.handle_request(request)
            try:
                response.read()
            finally:
                response.close()
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.connection.mark(False, error)
            raise ServerUnavailable(error) from exc
        try:
            check(response)
        except ServerUnavailable as exc:
            self.connection.mark(False, str(exc))
            raise
        self.connection.mark(True)

    def post_gui_updates(self, payloads: Sequence[dict[str, Any]]) -> list[int]:
        """POST several gui-update bodies at once; returns each one's own status (200, 409, ...).

        One request instead of hundreds is what lets a spool drain fast after an outage.
        """
        response = self._request("POST", "/api/gui-updates", json={"updates": list(payloads)})
        try:
            results = response.json()["results"]
            statuses = [int(item["status"]) for item in results]
        except (ValueError, KeyError, TypeError) as exc:
            raise ServerRejected(f"unexpected batch answer: {response.text[:200]}") from exc
        if len(statuses) != len(payloads):
            raise ServerRejected("batch answer does not match the request")
        return statuses

    def upload_results(self, assignment_id: str, relative_path: str, files: Sequence[Path]) -> None:
        """One simulation folder's files, as GOLIAT uploads them: repeated `files` + `relativePath`."""
        handles = [path.open("rb") for path in files]
        sizes = [os.fstat(handle.fileno()).st_size for handle in handles]
        try:
            self._request(
                "POST",
                f"/api/assignments/{assignment_id}/results",
                data={"relativePath": relative_path},
                files=[
                    ("files", (path.name, handle, "application/octet-stream"))
                    for path, handle in zip(files, handles, strict=True)
                ],
                timeout=self._upload_timeout,
            )
        except AgentHTTPError:
            raise
        except Exception as exc:  # h11's LocalProtocolError, which httpx lets through unwrapped
            changed = [
                path.name
                for path, handle, size in zip(files, handles, sizes, strict=True)
                if os.fstat(handle.fileno()).st_size != size
            ]
            if changed:
                raise ResultFileChanged(f"changed while uploading: {', '.join(changed)}") from exc
            raise
        finally:
            for handle in handles:
                handle.close()

    def post_screenshots(self, shots: Mapping[str, bytes]) -> None:
        """The latest JPEG of each tab, as GOLIAT's GUI sends them: one `<tab>.jpg` file field per tab."""
        self._request(
            "POST",
            "/api/gui-screenshots",
            data={"machineId": self.machine_id, "agentId": self.agent_id},
            files=[(tab, (f"{tab}.jpg", jpeg, "image/jpeg")) for tab, jpeg in shots.items()],
        )


def _plan(rows: Sequence[SpooledMessage]) -> list[bool]:
    """`delivery.plan_sends` for spooled rows: send (True) or skip as superseded (False)."""
    return plan_sends([row.payload for row in rows])


# -- sender ----------------------------------------------------------------------------------------


@dataclass
class SenderStats:
    """What the sender did with the messages it took from the spool."""

    sent: int = 0
    skipped: int = 0
    rejected: int = 0
    conflicts: int = 0
    retries: int = 0


class Sender:
    """Delivers the spool to the server in order: one thread, acknowledged only after HTTP 200.

    A message that cannot be delivered now is retried (exponential backoff with jitter) before
    anything behind it, so logs keep their order and a `finished` never overtakes them.
    `wake()` cuts a backoff short (a heartbeat got through, or the agent is stopping).
    """

    def __init__(
        self,
        spool: Spool,
        client: ServerClient,
        *,
        on_taken: Callable[[str], None] | None = None,
        retry_base: float = 0.5,
        retry_cap: float = 30.0,
        readahead: int = 500,
        gather_s: float = 0.1,
        batch_size: int = 200,
    ) -> None:
        self.spool = spool
        self.client = client
        self.stats = SenderStats()
        self.gather_s = gather_s
        self._on_taken = on_taken
        self._retry_base = retry_base
        self._retry_cap = retry_cap
        self._readahead = readahead
        self._wake = threading.Event()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._taken_logged: set[str] = set()
        self._batch_size = batch_size
        # Servers before the batch endpoint answer 404/405; then this agent sends one by one.
        self._batching = batch_size > 1

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="agent-sender", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """New messages were spooled, or the server answered again: look now."""
        self._wake.set()

    def stop(self, drain_timeout: float, join_timeout: float = 2.0) -> None:
        """Give the sender `drain_timeout` seconds to empty the spool, then stop it.

        Whatever is left stays spooled for the next start. A request in flight is not waited for
        beyond `join_timeout`: its message is not acknowledged, so it is simply sent again.
        """
        if self._thread is None:
            return
        self.wait_drained(drain_timeout)
        self._halt.set()
        self._wake.set()
        self._thread.join(timeout=join_timeout)

    def wait_drained(self, timeout: float | None = None) -> bool:
        """Block until the spool is empty (True) or `timeout` passes (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.spool.depth() > 0:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._halt.wait(0.05 if left is None else min(0.05, left))
        return True

    # -- the thread ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._halt.is_set():
            try:
                self._loop()
            except SpoolClosedError:  # the agent is exiting and closed the spool under us
                return
            except Exception:  # a disk error or a bug: never let the sender die silently
                log.exception("sender error; resuming in 1 s")
                self._halt.wait(1.0)

    def _loop(self) -> None:
        failures = 0
        while not self._halt.is_set():
            rows = self.spool.peek(self._readahead)
            if not rows:
                if self._wake.wait(0.5) and self.gather_s > 0:
                    # Let a few messages gather: one wake-up, peek and ack for several of them
                    # costs far less CPU than one each, and 0.1 s is invisible on a dashboard.
                    self._halt.wait(self.gather_s)
                self._wake.clear()
                continue
            if self._batching and len(rows) > 1:
                failures = self._deliver_batches(rows, failures)
                continue
            acks: list[int] = []
            try:
                for row, send in zip(rows, _plan(rows), strict=True):
                    if not send:
                        self.stats.skipped += 1
                        acks.append(row.id)
                        continue
                    while (error := self._deliver(row)) is not None:
                        failures += 1
                        if acks:  # keep what got through acknowledged before waiting
                            self.spool.ack(acks)
                            acks = []
                        if self._back_off(error, failures):
                            return
                    failures = 0
                    acks.append(row.id)
                    if len(acks) >= 100:
                        self.spool.ack(acks)
                        acks = []
            finally:
                if acks:
                    self.spool.ack(acks)

    def _deliver_batches(self, rows: Sequence[SpooledMessage], failures: int) -> int:
        """Send `rows` in batches, in order, acknowledging each batch once the server has it."""
        plan = _plan(rows)
        skipped = [row.id for row, send in zip(rows, plan, strict=True) if not send]
        sendable = [row for row, send in zip(rows, plan, strict=True) if send and row.kind == GUI_UPDATE]
        unknown = [row.id for row, send in zip(rows, plan, strict=True) if send and row.kind != GUI_UPDATE]
        if skipped or unknown:
            self.stats.skipped += len(skipped)
            self.spool.ack(skipped + unknown)
        for start in range(0, len(sendable), self._batch_size):
            batch = sendable[start : start + self._batch_size]
            while True:
                try:
                    statuses = self.client.post_gui_updates([row.payload for row in batch])
                    break
                except ServerUnavailable as error:
                    failures += 1
                    if self._back_off(error, failures):
                        return failures
                except ServerRejected as exc:
                    # An older server (404/405) or an answer we cannot read: the one-by-one path
                    # handles every case, so fall back to it for good.
                    log.info("batch sending unavailable (%s); sending messages one by one", exc)
                    self._batching = False
                    return failures
            failures = 0
            settled = 0
            for row, status in zip(batch, statuses, strict=True):
                if outcome_for(status) in (Outcome.RETRY_LATER, Outcome.GIVE_UP_AND_KEEP):
                    break  # keep it and what follows, in order; the server dedupes what it has
                self._settle(row, status)
                settled += 1
            self.spool.ack([row.id for row in batch[:settled]])
            if settled < len(batch):
                return failures
        return failures

    def _settle(self, row: SpooledMessage, status: int) -> None:
        """Count and react to one message's answer within a batch: delivered, or dropped."""
        if outcome_for(status) is Outcome.DELIVERED:
            self.stats.sent += 1
        elif status == 409:
            self._taken(row)
        else:
            self.stats.rejected += 1
            log.warning("server refused a spooled message (HTTP %d); dropped it", status)

    def _taken(self, row: SpooledMessage) -> None:
        self.stats.conflicts += 1
        assignment_id = str(row.payload.get("assignmentId") or "")
        if assignment_id not in self._taken_logged:
            self._taken_logged.add(assignment_id)
            log.warning("server: assignment %s is no longer ours; its messages are dropped", assignment_id)
        if self._on_taken is not None and assignment_id:
            self._on_taken(assignment_id)

    def _deliver(self, row: SpooledMessage) -> ServerUnavailable | None:
        """None when done with the message (delivered, or dropped); the error when to retry it."""
        if row.kind != GUI_UPDATE:
            log.warning("sender: dropping spooled %r message %d (unknown kind)", row.kind, row.id)
            return None
        try:
            self.client.post_gui_update(json.dumps(row.payload, separators=(",", ":")).encode())
        except ServerUnavailable as error:
            return error
        except AssignmentTaken:
            self._taken(row)
            return None
        except ServerRejected as exc:
            self.stats.rejected += 1
            message = row.payload.get("message")
            kind = message.get("type") if isinstance(message, dict) else "?"
            log.warning("server refused a %s message (%s); dropped it", kind, exc)
            return None
        self.stats.sent += 1
        return None

    def _back_off(self, error: ServerUnavailable, failures: int) -> bool:
        """Wait before the next attempt as `delivery.retry_delay` says; True if the sender should stop."""
        self.stats.retries += 1
        if isinstance(error, ServerMisconfigured) and failures == 1:
            log.error(
                "the server refuses this agent (%s): fix its URL or token; messages stay spooled", error
            )
        delay = retry_delay(
            error.outcome, failures, base=self._retry_base, cap=self._retry_cap, retry_after=error.retry_after
        )
        return self._sleep(delay)

    def _sleep(self, seconds: float) -> bool:
        """Wait out a backoff; True if the sender should stop."""
        if self._halt.is_set():
            return True
        if self._wake.wait(seconds):
            self._wake.clear()
        return self._halt.is_set()
