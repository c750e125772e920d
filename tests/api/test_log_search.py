"""Log search through the text index: every worker's lines (`GET /api/logs`) or one worker's (`?q=`).

Every test runs on SQLite and PostgreSQL, both with the lines not indexed yet (above SQLite's
indexer mark, read directly; in PostgreSQL's pending list) and once they are in the index: the
answers must not differ.
"""

from __future__ import annotations

from typing import Any

import pytest

from goliat_monitor.db import search_index
from goliat_monitor.db.queries import logs
from tests.api.helpers import create_study, gui, log_batch
from tests.conftest import LiveServer

A, B = "10.0.0.1", "10.0.0.2"


def index(server: LiveServer) -> None:
    """Bring the index up to date now: SQLite's indexer run to the end, PostgreSQL's pending list
    merged (before that, a search reads the lines from the list)."""
    search_index.index_all(server.context.db.engine)


def send(server: LiveServer, machine: str, lines: list[tuple[str, str]], sequence: int = 0) -> None:
    assert gui(server.client, log_batch(sequence, lines), machine=machine).status_code == 200


def search(server: LiveServer, **params: Any) -> dict[str, Any]:
    response = server.client.get("/api/logs", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def messages(body: dict[str, Any]) -> list[str]:
    return [hit["message"] for hit in body["logs"]]


def worker_ids(server: LiveServer) -> dict[str, str]:
    return {w["machineId"]: w["id"] for w in server.client.get("/api/workers").json()}


@pytest.mark.parametrize("indexed", [False, True], ids=["tail", "indexed"])
def test_search_finds_lines_of_every_worker_newest_first(server: LiveServer, indexed: bool) -> None:
    send(server, A, [("Grid ready", "info"), ("CUDA_ERROR_OUT_OF_MEMORY on GPU 0", "error")])
    send(server, B, [("cuda_error_out_of_memory again", "fatal"), ("Power balance ok", "info")])
    if indexed:
        index(server)
    body = search(server, q="Cuda_Error")
    ids = worker_ids(server)
    assert [(h["machineId"], h["workerId"], h["message"], h["logType"]) for h in body["logs"]] == [
        (B, ids[B], "cuda_error_out_of_memory again", "fatal"),
        (A, ids[A], "CUDA_ERROR_OUT_OF_MEMORY on GPU 0", "error"),
    ]
    assert body["nextBefore"] is None
    assert all(h["timestamp"] and h["cursor"] for h in body["logs"])
    assert messages(search(server, q="no such line")) == []


def test_type_filter_is_repeatable(server: LiveServer) -> None:
    send(server, A, [("mesh step one", "info"), ("mesh step two", "warning"), ("mesh step three", "error")])
    index(server)
    send(server, B, [("mesh step four", "warning")])
    assert messages(search(server, q="mesh step", type="warning")) == ["mesh step four", "mesh step two"]
    both = server.client.get("/api/logs", params=[("q", "mesh"), ("type", "info"), ("type", "error")])
    assert messages(both.json()) == ["mesh step three", "mesh step one"]


def test_study_filter_keeps_the_lines_of_its_runs(server: LiveServer) -> None:
    study = create_study(server.client, name="campaign", count=2)
    other = create_study(server.client, name="other", count=1)
    first, second = study["assignments"]
    assert (
        server.client.post(f"/api/assignments/{first['id']}/claim", json={"machineId": A}).status_code == 200
    )
    send(server, A, [("solver diverged in run one", "error")])
    claim = {"machineId": B}
    assert (
        server.client.post(f"/api/assignments/{other['assignments'][0]['id']}/claim", json=claim).status_code
        == 200
    )
    send(server, B, [("solver diverged elsewhere", "error")])
    # The agent names the assignment it runs; the line follows it even before the worker row does.
    assert (
        server.client.post(
            f"/api/assignments/{second['id']}/claim", json={"machineId": "10.0.0.3"}
        ).status_code
        == 200
    )
    body = log_batch(0, [("solver diverged in run two", "warning")])
    assert gui(server.client, body, machine="10.0.0.3", assignmentId=second["id"]).status_code == 200
    send(server, "10.0.0.4", [("solver diverged outside any study", "info")])
    index(server)
    assert messages(search(server, q="diverged", study=study["id"])) == [
        "solver diverged in run two",
        "solver diverged in run one",
    ]
    assert messages(search(server, q="diverged", study=other["id"])) == ["solver diverged elsewhere"]
    assert len(search(server, q="diverged")["logs"]) == 4
    missing = server.client.get("/api/logs", params={"q": "diverged", "study": "nope"})
    assert missing.status_code == 404 and "nope" in missing.json()["error"]


def test_paging_with_before_is_stable_across_the_index_mark(server: LiveServer) -> None:
    for seq in range(4):
        send(server, A if seq % 2 else B, [(f"step {seq}-{i} converged", "info") for i in range(3)], seq)
    index(server)  # the first 12 lines are indexed, the next 6 are not
    for seq in range(4, 6):
        send(server, A, [(f"step {seq}-{i} converged", "info") for i in range(3)], seq)
    send(server, B, [("unrelated", "info")], 9)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"q": "CONVERGED", "limit": 5}
        if cursor:
            params["before"] = cursor
        page = search(server, **params)
        seen += messages(page)
        cursor = page["nextBefore"]
        # A line stored while paging comes before the first page, never inside a later one.
        send(server, A, [("late converged line", "info")], 20 + len(seen))
        if cursor is None:
            break
    assert seen == [f"step {seq}-{i} converged" for seq in reversed(range(6)) for i in reversed(range(3))]


def test_query_text_is_literal_and_folds_only_ascii_letters(server: LiveServer) -> None:
    lines = [
        ("done 100% of steps", "info"),
        ("done 1000 of steps", "info"),
        ("file a_b.h5 saved", "info"),
        ("file axb.h5 saved", "info"),
        ('say "hello" to GOLIAT', "info"),
        ("path C:\\work\\run", "info"),
        ("Café ouvert", "info"),
        ("CAFÉ FERMÉ", "info"),
        ("<img src=x onerror=alert(1)>", "error"),
    ]
    send(server, A, lines)
    for indexed in (False, True):
        if indexed:
            index(server)
        assert messages(search(server, q="100%")) == ["done 100% of steps"]
        assert messages(search(server, q="a_b")) == ["file a_b.h5 saved"]
        assert messages(search(server, q='"hello" TO')) == ['say "hello" to GOLIAT']
        assert messages(search(server, q="\\work\\")) == ["path C:\\work\\run"]
        assert messages(search(server, q="café")) == ["Café ouvert"]
        assert messages(search(server, q="CAFÉ")) == ["CAFÉ FERMÉ"]
        assert messages(search(server, q="onerror=")) == ["<img src=x onerror=alert(1)>"]
        assert messages(search(server, q="OR NOT")) == []  # FTS5 syntax is just text here


def test_bad_input_gets_a_clear_error(server: LiveServer) -> None:
    send(server, A, [("anything", "info")])
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({}, 400, "empty"),
        ({"q": ""}, 400, "empty"),
        ({"q": "   "}, 400, "empty"),
        ({"q": "ab"}, 400, "at least 3"),
        ({"q": "x" * 501}, 422, "q"),
        ({"q": "any", "type": "nope"}, 400, "nope"),
        ({"q": "any", "limit": 0}, 400, "limit"),
        ({"q": "any", "limit": 501}, 400, "limit"),
        ({"q": "any", "limit": "many"}, 422, "limit"),
        ({"q": "any", "before": "x"}, 400, "cursor"),
        ({"q": "any", "before": "12"}, 400, "cursor"),
    ]
    for params, status, words in cases:
        response = server.client.get("/api/logs", params=params)
        assert response.status_code == status, (params, response.text)
        assert words in response.json()["error"], (params, response.text)
    assert len(search(server, q="any", limit=500)["logs"]) == 1


def test_worker_log_search_uses_the_index_and_pages(server: LiveServer) -> None:
    send(server, A, [(f"A voxel {i}", "info") for i in range(5)])
    send(server, B, [("B voxel", "info")])
    index(server)
    send(server, A, [(f"A voxel {i}", "info") for i in range(5, 8)], 1)
    worker = worker_ids(server)[A]
    url = f"/api/workers/{worker}/logs"
    first = server.client.get(url, params={"q": "VOXEL", "limit": 5}).json()
    assert [line["message"] for line in first["logs"]] == [f"A voxel {i}" for i in range(3, 8)]
    rest = server.client.get(url, params={"q": "VOXEL", "limit": 5, "before": first["nextBefore"]}).json()
    assert [line["message"] for line in rest["logs"]] == [f"A voxel {i}" for i in range(3)]
    assert rest["nextBefore"] is None
    short = server.client.get(url, params={"q": "vo"})
    assert short.status_code == 400 and "at least 3" in short.json()["error"]


def test_worker_search_reads_its_own_lines_past_other_workers_hits(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index's newest candidates all belong to other workers: the search goes on in this
    worker's own lines (SQLite checks only `WORKER_CANDIDATES` candidates; 3 here)."""
    monkeypatch.setattr(logs, "WORKER_CANDIDATES", 3)
    send(server, A, [(f"alpha hit {i}", "info") for i in range(5)])
    send(server, B, [(f"alpha hit B{i}", "info") for i in range(10)])
    index(server)
    worker = worker_ids(server)[A]
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params: dict[str, Any] = {"q": "ALPHA HIT", "limit": 2, **({"before": cursor} if cursor else {})}
        page = server.client.get(f"/api/workers/{worker}/logs", params=params).json()
        seen = [line["message"] for line in page["logs"]] + seen
        cursor = page["nextBefore"]
        if not cursor:
            break
    assert seen == [f"alpha hit {i}" for i in range(5)]
    absent = server.client.get(f"/api/workers/{worker}/logs", params={"q": "hit B"}).json()
    assert absent["logs"] == []
