"""The spool keeps messages in order, forgets only what was acknowledged, and survives SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from goliat_monitor.outbox import Spool, SpoolClosedError, SpooledMessage


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool(tmp_path / "outbox.sqlite") as s:
        yield s


def test_peek_returns_messages_in_insertion_order(spool: Spool) -> None:
    first = spool.append("gui-update", {"n": 0})
    rest = spool.append_many(("gui-update", {"n": n}) for n in range(1, 5))
    assert [first, *rest] == sorted([first, *rest])

    messages = spool.peek(10)

    assert [m.payload["n"] for m in messages] == [0, 1, 2, 3, 4]
    assert [m.id for m in messages] == [first, *rest]
    assert all(isinstance(m, SpooledMessage) and m.attempts == 0 and m.kind == "gui-update" for m in messages)
    assert spool.peek(2) == messages[:2]  # peek removes nothing
    assert spool.depth() == 5


def test_ack_removes_only_the_given_ids(spool: Spool) -> None:
    ids = spool.append_many(("k", {"n": n}) for n in range(6))

    assert spool.ack([ids[1], ids[3]]) == 2
    assert spool.ack([ids[1], 999_999]) == 0  # already acknowledged or unknown: ignored

    assert [m.payload["n"] for m in spool.peek(10)] == [0, 2, 4, 5]
    assert spool.depth() == 4


def test_ids_are_never_reused_after_the_spool_empties(spool: Spool) -> None:
    old = spool.append_many(("k", {"n": n}) for n in range(3))
    spool.ack(old)
    new = spool.append("k", {"n": 3})
    assert new > max(old)  # so a late ack for an old id can never delete a newer message


def test_unencodable_payload_stores_nothing(spool: Spool) -> None:
    with pytest.raises(TypeError):
        spool.append_many([("k", {"ok": 1}), ("k", {"bad": object()})])
    assert spool.depth() == 0


def test_record_attempt_and_drop_oldest(spool: Spool) -> None:
    ids = spool.append_many(("k", {"n": n}) for n in range(5))
    spool.record_attempt([ids[0]])
    spool.record_attempt([ids[0]])
    assert spool.peek(1)[0].attempts == 2

    assert spool.drop_oldest(2, after_id=ids[0]) == 2  # ids[0] is protected
    assert [m.payload["n"] for m in spool.peek(10)] == [0, 3, 4]


def test_reopen_keeps_unacknowledged_messages(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    with Spool(path) as spool:
        ids = spool.append_many(("k", {"n": n}) for n in range(3))
        spool.ack(ids[:1])
    with Spool(path, synchronous="FULL") as spool:
        assert spool.depth() == 2
        assert [m.payload["n"] for m in spool.peek(10)] == [1, 2]


def test_closed_spool_refuses_use(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "outbox.sqlite")
    spool.close()
    spool.close()  # idempotent
    with pytest.raises(SpoolClosedError):
        spool.append("k", {})


_WRITER = """
import sys
from goliat_monitor.outbox import Spool
spool = Spool(sys.argv[1])
n = 0
while True:
    ids = spool.append_many(("k", {"n": n + i}) for i in range(3))
    n += 3
    sys.stdout.write(" ".join(map(str, ids)) + "\\n")
    sys.stdout.flush()
"""


def test_everything_returned_before_sigkill_is_there_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    confirmed: list[int] = []
    with subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            while len(confirmed) < 600:
                line = proc.stdout.readline()
                assert line, "writer exited early"
                confirmed.extend(int(x) for x in line.split())
            os.kill(proc.pid, signal.SIGKILL)  # mid-write, no chance to close or checkpoint
        finally:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    with Spool(path) as spool:
        stored = spool.peek(1_000_000)
    stored_ids = [m.id for m in stored]
    assert stored_ids == sorted(stored_ids)
    assert set(confirmed) <= set(stored_ids)
    assert [m.payload["n"] for m in stored] == list(range(len(stored)))  # no gaps, no reordering
    assert len(stored) % 3 == 0  # a batch is stored whole or not at all


def test_threads_appending_and_draining_lose_and_duplicate_nothing(spool: Spool) -> None:
    writers, per_writer = 4, 300
    received: list[tuple[int, int]] = []
    done = threading.Event()

    def write(w: int) -> None:
        for n in range(per_writer):
            spool.append("k", {"w": w, "n": n})

    def drain() -> None:
        while True:
            batch = spool.peek(50)
            if not batch:
                if done.is_set():
                    return
                time.sleep(0.001)
                continue
            received.extend((m.payload["w"], m.payload["n"]) for m in batch)
            spool.ack(m.id for m in batch)

    drainer = threading.Thread(target=drain)
    drainer.start()
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    drainer.join(timeout=10)

    assert len(received) == writers * per_writer
    assert len(set(received)) == len(received)
    for w in range(writers):  # each writer's messages come out in the order it wrote them
        assert [n for ww, n in received if ww == w] == list(range(per_writer))
    assert spool.depth() == 0


def test_a_new_spool_held_by_another_connection_is_waited_for(tmp_path: Path) -> None:
    """Switching a new file to WAL while another process writes it fails at once in SQLite itself
    ("database is locked", no busy handler): two bridges or an agent and a reader opening one new
    spool together must wait for each other instead."""
    import sqlite3

    path = tmp_path / "new.sqlite"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE other (x)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO other VALUES (1)")
    release = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        started = time.monotonic()
        with Spool(path) as spool:
            assert time.monotonic() - started >= 0.25  # it did wait for the writer
            spool.append("gui_update", {"n": 1})
            assert [m.payload for m in spool.peek(10)] == [{"n": 1}]
    finally:
        release.join()
        holder.close()
