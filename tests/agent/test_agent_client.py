"""The agent's HTTP calls and its spool sender, against httpx.MockTransport (no server), and
against a real server where only the real transport shows the behaviour."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from goliat_monitor.agent.client import (
    AssignmentTaken,
    Connection,
    ResultFileChanged,
    Sender,
    ServerClient,
    ServerMisconfigured,
    ServerRejected,
    ServerUnavailable,
)
from goliat_monitor.outbox import GUI_UPDATE, Spool
from tests.conftest import LiveServer
from tests.support import wait_for

Handler = Callable[[httpx.Request], httpx.Response]


def make_client(handler: Handler, **kwargs: Any) -> ServerClient:
    return ServerClient(
        "http://server.test/",
        machine_id="203.0.113.7",
        agent_id="agent-1",
        transport=httpx.MockTransport(handler),
        **kwargs,
    )


def body(n: int, kind: str = "log_batch", assignment: str | None = "a1", **message: Any) -> dict[str, Any]:
    if kind == "log_batch":
        message = {"logs": [{"type": "status", "message": f"line {n}", "log_type": "info"}], "sequence": n}
    data: dict[str, Any] = {
        "machineId": "203.0.113.7",
        "agentId": "agent-1",
        "messageId": f"m{n}",
        "message": {"type": kind, **message},
        "timestamp": 1.0,
    }
    if assignment:
        data["assignmentId"] = assignment
    return data


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool(tmp_path / "spool.sqlite3") as s:
        yield s


# -- calls ---------------------------------------------------------------------------------------


def test_heartbeat_sends_ids_token_and_returns_the_ids_to_stop() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"success": True, "stopAssignmentIds": ["a1"]})

    client = make_client(handler, token="s3cret")
    stop = client.heartbeat({"hostname": "vm", "cpuCores": 8, "cpuPercent": 12.5}, "a1")

    assert stop == ["a1"]
    request = seen[0]
    assert request.url == "http://server.test/api/heartbeat"
    assert request.headers["authorization"] == "Bearer s3cret"
    assert json.loads(request.content) == {
        "hostname": "vm",
        "cpuCores": 8,
        "cpuPercent": 12.5,
        "machineId": "203.0.113.7",
        "agentId": "agent-1",
        "assignmentId": "a1",
    }
    assert client.connection.connected is True


def test_heartbeat_of_an_older_server_without_stop_list() -> None:
    client = make_client(lambda request: httpx.Response(200, json={"success": True}))
    assert client.heartbeat({}) == []


def test_next_assignment_is_none_on_204_and_the_assignment_on_200() -> None:
    answers = [httpx.Response(204), httpx.Response(200, json={"id": "a1", "index": 0})]
    params: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        params.append(dict(request.url.params))
        return answers.pop(0)

    client = make_client(handler)
    assert client.next_assignment() is None
    assert client.next_assignment() == {"id": "a1", "index": 0}
    assert params[0] == {"machineId": "203.0.113.7", "agentId": "agent-1"}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, ServerUnavailable),
        (503, ServerUnavailable),
        (429, ServerUnavailable),
        (401, ServerMisconfigured),  # a wrong token: keep the spool, the operator fixes it
        (403, ServerMisconfigured),
        (307, ServerMisconfigured),  # a wrong URL likewise
        (409, AssignmentTaken),
        (422, ServerRejected),
        (413, ServerRejected),
    ],
)
def test_gui_update_errors_by_kind(status: int, error: type[Exception]) -> None:
    client = make_client(lambda request: httpx.Response(status, json={"error": "nope"}))
    with pytest.raises(error) as caught:
        client.post_gui_update(b"{}")
    assert type(caught.value) is error
    assert "nope" in str(caught.value)


def test_gui_update_posts_the_bytes_as_json() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"success": True})

    client = make_client(handler, token="t")
    client.post_gui_update(b'{"machineId":"x"}')
    assert seen[0].method == "POST"
    assert seen[0].url == "http://server.test/api/gui-update"
    assert seen[0].headers["content-type"] == "application/json"
    assert seen[0].headers["authorization"] == "Bearer t"
    assert seen[0].content == b'{"machineId":"x"}'


def test_network_errors_are_unavailable_and_flip_the_connection_state() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    connection = Connection()
    client = make_client(handler, connection=connection)
    with pytest.raises(ServerUnavailable, match="refused"):
        client.post_gui_update(b"{}")
    with pytest.raises(ServerUnavailable):
        client.next_assignment()
    assert connection.connected is False
    assert "refused" in connection.last_error


def test_retry_after_is_read_from_the_answer() -> None:
    client = make_client(lambda request: httpx.Response(503, headers={"retry-after": "7"}))
    with pytest.raises(ServerUnavailable) as caught:
        client.post_gui_update(b"{}")
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("change", [b"more lines\n" * 100, b""], ids=["grows", "shrinks"])
def test_a_result_file_that_changes_while_it_is_uploaded_is_a_read_error(
    server: LiveServer, tmp_path: Path, change: bytes
) -> None:
    """GOLIAT may still write a folder it has marked extracted. The request declares the file's
    size when it is built; the file changes before its bytes go out (a request hook, so the test
    is deterministic), and the HTTP library refuses the mismatch. The agent must see an OSError
    (its early upload then leaves the folder for later), not an error that fails the assignment."""
    kept = tmp_path / "sar_results.json"
    kept.write_bytes(b'{"a": 1}')
    changing = tmp_path / "verbose.log"
    changing.write_bytes(b"first lines\n" * 100)

    def change_file(_request: httpx.Request) -> None:
        if change:
            with changing.open("ab") as handle:
                handle.write(change)
        else:
            changing.write_bytes(b"")

    with ServerClient(server.url, machine_id="203.0.113.7", agent_id="agent-1") as client:
        client._http.event_hooks["request"].append(change_file)
        with pytest.raises(ResultFileChanged, match=r"changed while uploading: verbose\.log$") as raised:
            client.upload_results("a1", "far_field/thelonious/700MHz/x_pos_theta", [kept, changing])
    assert isinstance(raised.value, OSError)


def test_upload_is_one_multipart_post_with_files_and_relative_path(tmp_path: Path) -> None:
    files = []
    for name, data in (("sar_results.json", b'{"a": 1}'), ("verbose.log", b"log text")):
        path = tmp_path / name
        path.write_bytes(data)
        files.append(path)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return httpx.Response(200, json={"success": True})

    make_client(handler).upload_results("a1", "far_field/thelonious/700MHz/x_pos_theta", files)

    request = seen[0]
    assert request.url == "http://server.test/api/assignments/a1/results"
    assert request.headers["content-type"].startswith("multipart/form-data")
    content = request.content
    assert b'name="relativePath"\r\n\r\nfar_field/thelonious/700MHz/x_pos_theta' in content
    assert content.count(b'name="files"; filename=') == 2
    assert b'filename="sar_results.json"' in content and b'{"a": 1}' in content
    assert b'filename="verbose.log"' in content and b"log text" in content


# -- sender --------------------------------------------------------------------------------------


class FakeServer:
    """Answers gui-updates from a script of statuses; records what was delivered, thread-safe."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.delivered: list[dict[str, Any]] = []
        self.attempts = 0
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.attempts += 1
            status = self.statuses.pop(0) if self.statuses else 200
            if status == 200:
                self.delivered.append(json.loads(request.content))
        return httpx.Response(status, json={"success": status == 200, "error": "scripted"})


def run_sender(spool: Spool, server: Any, **kwargs: Any) -> Sender:
    """A sender drained against `server`; one message per request unless `batch_size` says otherwise."""
    kwargs.setdefault("batch_size", 1)
    sender = Sender(spool, make_client(server), retry_base=0.01, retry_cap=0.05, gather_s=0, **kwargs)
    sender.start()
    assert sender.wait_drained(10), "the sender did not drain the spool"
    sender.stop(0)
    return sender


def test_sender_delivers_in_order_through_an_outage_and_acks_only_after_200(spool: Spool) -> None:
    spool.append_many((GUI_UPDATE, body(n)) for n in range(20))
    server = FakeServer([503, 503, 200, 502, 500])

    sender = run_sender(spool, server)

    assert [b["message"]["sequence"] for b in server.delivered] == list(range(20))
    assert spool.depth() == 0
    assert sender.stats.sent == 20 and sender.stats.retries == 4
    assert server.attempts == 24


@pytest.mark.parametrize("refusal", [503, 401])
def test_sender_keeps_unacknowledged_messages_for_the_next_start(spool: Spool, refusal: int) -> None:
    spool.append_many((GUI_UPDATE, body(n)) for n in range(3))
    server = FakeServer([200] + [refusal] * 1000)
    sender = Sender(spool, make_client(server), retry_base=0.01, retry_cap=0.02, gather_s=0, batch_size=1)
    sender.start()
    wait_for(lambda: sender.stats.retries >= 3)  # it did try m1, again and again
    sender.stop(0)
    assert [b["messageId"] for b in server.delivered] == ["m0"]
    assert [m.payload["messageId"] for m in spool.peek(10)] == ["m1", "m2"]  # m0 acknowledged, the rest kept
    assert sender.stats.rejected == 0


def test_sender_waits_as_long_as_retry_after_asks(spool: Spool) -> None:
    spool.append(GUI_UPDATE, body(0))
    attempts: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            return httpx.Response(503, headers={"Retry-After": "0.3"}, json={"error": "busy"})
        return httpx.Response(200, json={})

    sender = Sender(spool, make_client(handler), retry_base=0.01, retry_cap=5, gather_s=0, batch_size=1)
    sender.start()
    assert sender.wait_drained(5)
    sender.stop(0)
    assert len(attempts) == 2 and attempts[1] - attempts[0] >= 0.3  # not the 0.01 s backoff


def test_sender_drops_a_refused_message_and_goes_on(spool: Spool) -> None:
    spool.append_many((GUI_UPDATE, body(n)) for n in range(3))
    server = FakeServer([200, 422])

    sender = run_sender(spool, server)

    assert [b["messageId"] for b in server.delivered] == ["m0", "m2"]
    assert sender.stats.rejected == 1


def test_sender_reports_409_as_a_taken_assignment(spool: Spool) -> None:
    spool.append_many((GUI_UPDATE, body(n)) for n in range(3))
    server = FakeServer([200, 409, 200])
    taken: list[str] = []

    sender = run_sender(spool, server, on_taken=taken.append)

    assert taken == ["a1"]
    assert sender.stats.conflicts == 1
    assert [b["messageId"] for b in server.delivered] == ["m0", "m2"]


def test_sender_skips_superseded_progress_after_an_outage(spool: Spool) -> None:
    spool.append_many(
        [(GUI_UPDATE, body(n, "overall_progress", current=n, total=100)) for n in range(50)]
        + [(GUI_UPDATE, body(50))]
    )
    server = FakeServer()

    sender = run_sender(spool, server)

    assert [b["messageId"] for b in server.delivered] == ["m49", "m50"]
    assert sender.stats.skipped == 49


def test_wake_cuts_a_backoff_short(spool: Spool) -> None:
    spool.append(GUI_UPDATE, body(0))
    server = FakeServer([503])
    sender = Sender(spool, make_client(server), retry_base=60, retry_cap=60, gather_s=0, batch_size=1)
    sender.start()
    wait_for(lambda: sender.stats.retries == 1)  # the 503 came back; a 30-60 s backoff began
    sender.wake()  # what a successful heartbeat does
    assert sender.wait_drained(5)
    sender.stop(0)
    assert server.attempts == 2


class FakeBatchServer:
    """Knows `/api/gui-updates`: scripted request statuses, then per-item statuses by messageId."""

    def __init__(self, statuses: list[int] | None = None, refuse: dict[str, int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.refuse = refuse or {}
        self.delivered: list[dict[str, Any]] = []
        self.requests = 0
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests += 1
            assert request.url.path == "/api/gui-updates"
            status = self.statuses.pop(0) if self.statuses else 200
            if status != 200:
                return httpx.Response(status, json={"error": "scripted"})
            updates = json.loads(request.content)["updates"]
            results = []
            for update in updates:
                item = self.refuse.get(update["messageId"], 200)
                if item == 200:
                    self.delivered.append(update)
                results.append({"status": item, "error": None if item == 200 else "scripted"})
            return httpx.Response(200, json={"results": results})


def test_sender_replays_a_backlog_in_few_ordered_batches(spool: Spool) -> None:
    spool.append_many((GUI_UPDATE, body(n)) for n in range(450))
    server = FakeBatchServer([503, 200, 502])
    taken: list[str] = []

    sender = run_sender(spool, server, batch_size=200, on_taken=taken.append)

    assert [b["message"]["sequence"] for b in server.delivered] == list(range(450))
    assert server.requests == 5  # 3 batches, 2 of them retried once
    assert sender.stats.sent == 450 and spool.depth() == 0


def test_sender_settles_each_message_of_a_batch_on_its_own(spool: Spool) -> None:
    spool.append_many((GUI_UPDATE, body(n)) for n in range(4))
    server = FakeBatchServer(refuse={"m1": 409, "m2": 422})
    taken: list[str] = []

    sender = run_sender(spool, server, batch_size=200, on_taken=taken.append)

    assert [b["messageId"] for b in server.delivered] == ["m0", "m3"]
    assert taken == ["a1"] and sender.stats.conflicts == 1 and sender.stats.rejected == 1


def test_sender_falls_back_to_single_messages_on_an_older_server(spool: Spool) -> None:
    spool.append_many((GUI_UPDATE, body(n)) for n in range(3))
    single = FakeServer()

    def older(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/gui-updates":
            return httpx.Response(404, json={"error": "Not Found"})
        return single(request)

    run_sender(spool, older, batch_size=200)

    assert [b["messageId"] for b in single.delivered] == ["m0", "m1", "m2"]
