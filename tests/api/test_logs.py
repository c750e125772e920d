"""Log lines are stored in GOLIAT's order, whatever order the batches arrive in."""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.api.helpers import gui, log_batch, only_worker
from tests.conftest import LiveServer


def messages(worker: dict[str, Any]) -> list[str]:
    return [line["message"] for line in worker["guiState"]["logMessages"]]


def test_out_of_order_batches_are_stored_by_sequence(server: LiveServer) -> None:
    batches = [log_batch(seq, [(f"{seq}-{i}", "info") for i in range(3)]) for seq in range(6)]
    for seq in [2, 0, 5, 1, 4, 3]:
        assert gui(server.client, batches[seq]).status_code == 200
    expected = [f"{seq}-{i}" for seq in range(6) for i in range(3)]
    assert messages(only_worker(server.client)) == expected


def test_concurrent_batches_from_three_threads_keep_order(server: LiveServer) -> None:
    batches = [log_batch(seq, [(f"line {seq}", "info")]) for seq in range(60)]
    order = list(range(60))
    random.Random(7).shuffle(order)
    with ThreadPoolExecutor(3) as pool:
        statuses = list(pool.map(lambda seq: gui(server.client, batches[seq]).status_code, order))
    assert set(statuses) == {200}
    assert messages(only_worker(server.client)) == [f"line {seq}" for seq in range(60)]


def test_a_new_run_restarts_sequence_and_comes_after_the_previous_run(server: LiveServer) -> None:
    for seq in range(3):
        gui(server.client, log_batch(seq, [(f"run1 {seq}", "info")]))
    gui(server.client, {"type": "finished", "message": "Study finished successfully"})
    # Second GOLIAT run on the same machine, its first two batches arriving swapped.
    run2 = [log_batch(seq, [(f"run2 {seq}", "info")]) for seq in range(3)]
    for seq in (1, 0, 2):
        gui(server.client, run2[seq])
    assert messages(only_worker(server.client)) == [
        "run1 0",
        "run1 1",
        "run1 2",
        "run2 0",
        "run2 1",
        "run2 2",
    ]


def test_older_lines_page_back_through_the_whole_history(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(recent_log_lines=10)
    for seq in range(10):
        gui(
            server.client,
            log_batch(seq, [(f"{seq:02d}-{i}", "warning" if i == 0 else "info") for i in range(5)]),
        )
    worker = only_worker(server.client)
    assert messages(worker) == [f"{seq:02d}-{i}" for seq in (8, 9) for i in range(5)]
    seen = messages(worker)
    cursor = worker["olderLogsCursor"]
    while cursor:
        page = server.client.get(
            f"/api/workers/{worker['id']}/logs", params={"before": cursor, "limit": 7}
        ).json()
        seen = [line["message"] for line in page["logs"]] + seen
        cursor = page["nextBefore"]
    assert seen == [f"{seq:02d}-{i}" for seq in range(10) for i in range(5)]


def test_logs_filter_by_type_and_text(server: LiveServer) -> None:
    gui(
        server.client,
        log_batch(0, [("Grid ready", "info"), ("Mesh WARNING here", "warning"), ("done 100%", "success")]),
    )
    worker_id = only_worker(server.client)["id"]
    by_type = server.client.get(f"/api/workers/{worker_id}/logs", params={"type": "warning"}).json()
    assert [line["message"] for line in by_type["logs"]] == ["Mesh WARNING here"]
    by_text = server.client.get(f"/api/workers/{worker_id}/logs", params={"q": "100%"}).json()
    assert [line["message"] for line in by_text["logs"]] == ["done 100%"]
    assert server.client.get(f"/api/workers/{worker_id}/logs", params={"type": "nope"}).status_code == 400
    assert server.client.get(f"/api/workers/{worker_id}/logs", params={"before": "x"}).status_code == 422


def test_log_lines_are_stored_verbatim(server: LiveServer) -> None:
    evil = "<img src=x onerror=alert(1)>"
    gui(server.client, log_batch(0, [(evil, "error")]))
    line = only_worker(server.client)["guiState"]["logMessages"][0]
    assert (line["message"], line["logType"]) == (evil, "error")


def test_redelivered_message_ids_are_stored_once(server: LiveServer) -> None:
    batch = log_batch(0, [("only once", "info")])
    for _ in range(3):
        assert gui(server.client, batch, messageId="abc123").status_code == 200
    assert messages(only_worker(server.client)) == ["only once"]
