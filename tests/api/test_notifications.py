"""Notifications end to end: real events on a real server, delivered to a real local webhook
(`json://`) and a real local SMTP server (`mailto://`), on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import event

from goliat_monitor.server import notify, services
from tests.api.helpers import create_study, gui, heartbeat, log_batch
from tests.conftest import FakeClock
from tests.notify_support import (
    PUBLIC,
    Receiver,
    Running,
    SmtpServer,
    finish,
    history,
    pull,
    receiver,
    smtp_server,
    start,
)
from tests.support import free_port, wait_for

__all__ = ["receiver", "smtp_server", "start"]  # fixtures


def test_a_completed_study_reaches_the_webhook_within_10_s_once_with_a_link(
    start: Callable[..., Running], receiver: Receiver
) -> None:
    app = start(notify_urls=receiver.url)
    study = create_study(app.client, name="campaign", count=1)
    pull(app.client, "10.0.0.1")
    finished_at = time.monotonic()
    finish(app.client, "10.0.0.1")
    got = wait_for(lambda: receiver.with_title("completed"), timeout=10, what="the completed notification")
    assert time.monotonic() - finished_at < 10
    assert got[0]["title"] == "Super study 'campaign' completed"
    assert "1 of 1 assignments completed" in got[0]["message"]
    assert f"{PUBLIC}/super-studies/{study['id']}" in got[0]["message"]
    entry = wait_for(
        lambda: [
            n for n in history(app.client) if n["deliveries"] and n["deliveries"][0]["status"] == "DELIVERED"
        ]
    )[0]
    assert entry["kind"] == "study_completed" and entry["link"] == f"{PUBLIC}/super-studies/{study['id']}"
    assert entry["deliveries"][0]["attempts"] == 1
    time.sleep(3 * notify.POLL_S)  # a few more delivery rounds send nothing again
    assert receiver.titles() == ["Super study 'campaign' completed"]


def test_out_of_memory_retry_last_failure_and_failed_study_are_each_notified(
    start: Callable[..., Running], receiver: Receiver
) -> None:
    app = start(notify_urls=receiver.url)
    create_study(app.client, name="oom", count=1, maxAttempts=2)
    heartbeat(app.client, machine="10.0.0.1", hostname="gpu-a")
    pull(app.client, "10.0.0.1")
    finish(app.client, "10.0.0.1", message="out of GPU memory", exit_code=42)
    wait_for(lambda: receiver.with_title("ran out of memory"), timeout=10)
    pull(app.client, "10.0.0.2")
    finish(app.client, "10.0.0.2", message="out of GPU memory", exit_code=42)
    wait_for(lambda: len(receiver.got) == 3, timeout=10, what="three notifications")
    titles = receiver.titles()
    assert titles[0] == "Assignment 0 of 'oom' ran out of memory; retrying"
    assert "on gpu-a (attempt 1 of 2)" in receiver.got[0]["message"]
    assert set(titles[1:]) == {"Assignment 0 of 'oom' failed", "Super study 'oom' failed"}
    failed = receiver.with_title("Assignment 0 of 'oom' failed")[0]
    assert "after 2 attempts: out of GPU memory" in failed["message"]


def test_a_cancelled_study_is_notified_when_its_running_piece_stops(
    start: Callable[..., Running], receiver: Receiver
) -> None:
    app = start(notify_urls=receiver.url)
    study = create_study(app.client, name="stopme", count=2)
    pull(app.client, "10.0.0.1")
    assert app.client.post(f"/api/super-studies/{study['id']}/cancel").status_code == 200
    time.sleep(3 * notify.POLL_S)
    assert receiver.got == []  # a piece still runs: the study is not cancelled yet
    finish(app.client, "10.0.0.1", message="Study finished with errors", exit_code=1)
    wait_for(lambda: receiver.with_title("cancelled"), timeout=10)
    assert receiver.titles() == ["Super study 'stopme' cancelled"]


def test_a_retried_notification_arrives_once_after_a_restart_in_the_middle(
    start: Callable[..., Running], receiver: Receiver
) -> None:
    receiver.codes = [500]
    first = start(notify_urls=receiver.url, notify_retry_s=60)
    create_study(first.client, name="restart", count=1)
    pull(first.client, "10.0.0.1")
    finish(first.client, "10.0.0.1")
    wait_for(lambda: receiver.refused == 1, timeout=10, what="the first, refused try")
    pending = wait_for(lambda: [d for n in history(first.client) for d in n["deliveries"] if d["lastError"]])
    assert pending[0]["status"] == "PENDING" and pending[0]["nextAttemptAt"]
    clock = first.server.clock
    first.stop()

    second = start(clock=clock, notify_urls=receiver.url, notify_retry_s=60)
    time.sleep(3 * notify.POLL_S)
    assert receiver.got == []  # not due yet: the wait survived the restart
    clock.advance(61)
    wait_for(lambda: receiver.got, timeout=10, what="the retried notification")
    time.sleep(3 * notify.POLL_S)
    assert receiver.titles() == ["Super study 'restart' completed"]
    delivery = history(second.client)[0]["deliveries"][0]
    assert delivery["status"] == "DELIVERED" and delivery["attempts"] == 2 and delivery["lastError"] is None


def test_a_target_that_keeps_failing_is_given_up_with_its_last_error(
    start: Callable[..., Running], receiver: Receiver
) -> None:
    receiver.codes = [500, 503]
    app = start(notify_urls=receiver.url, notify_retry_s=5, notify_max_attempts=2)
    create_study(app.client, name="doomed", count=1)
    pull(app.client, "10.0.0.1")
    finish(app.client, "10.0.0.1")
    wait_for(lambda: [d for n in history(app.client) for d in n["deliveries"] if d["lastError"]], timeout=10)
    app.server.clock.advance(6)
    failed = wait_for(
        lambda: [d for n in history(app.client) for d in n["deliveries"] if d["status"] == "FAILED"],
        timeout=10,
    )
    assert failed[0]["attempts"] == 2 and failed[0]["lastError"]
    assert failed[0]["nextAttemptAt"] is None
    app.server.clock.advance(3600)
    time.sleep(3 * notify.POLL_S)
    assert receiver.refused == 2 and receiver.got == []


def test_e_mail_through_a_local_smtp_server(start: Callable[..., Running], smtp_server: SmtpServer) -> None:
    app = start(notify_urls=smtp_server.url())
    create_study(app.client, name="mailed", count=1)
    pull(app.client, "10.0.0.1")
    finish(app.client, "10.0.0.1")
    wait_for(lambda: smtp_server.subjects(), timeout=10, what="the e-mail")
    assert smtp_server.subjects() == ["Super study 'mailed' completed"]
    message = smtp_server.mailbox.messages[0]
    assert message["To"] == "ops@example.com"
    parts = [part for part in message.walk() if part.get_content_type() == "text/plain"]
    text = b"".join(cast(bytes, part.get_payload(decode=True)) for part in parts).decode()
    assert f"{PUBLIC}/super-studies/" in text


def test_offline_stalled_and_idle_workers_are_notified_once_per_episode(
    start: Callable[..., Running], receiver: Receiver
) -> None:
    app = start(
        notify_urls=receiver.url,
        offline_after_s=600,
        lease_timeout_s=3600,
        stalled_after_s=300,
        notify_idle_after_min=5,
        disk_free_alert_mb=0,
    )
    clock = app.server.clock
    create_study(app.client, name="long", count=2)
    heartbeat(app.client, machine="10.0.0.1", hostname="runner")
    heartbeat(app.client, machine="10.0.0.2", hostname="sleeper")
    pull(app.client, "10.0.0.1")
    gui(app.client, {"type": "overall_progress", "current": 10, "total": 100}, machine="10.0.0.1")

    clock.advance(200)  # the runner keeps talking but makes no progress; the sleeper stays idle
    heartbeat(app.client, machine="10.0.0.1")
    heartbeat(app.client, machine="10.0.0.2")
    time.sleep(1)
    assert receiver.got == []
    clock.advance(200)
    heartbeat(app.client, machine="10.0.0.1")
    heartbeat(app.client, machine="10.0.0.2")
    wait_for(lambda: receiver.with_title("stalled"), timeout=20)
    assert receiver.with_title("runner stalled")[0]["message"].startswith(
        "Worker runner is online and running, but has reported no progress for 7 minutes"
    )
    wait_for(lambda: receiver.with_title("sleeper is idle"), timeout=20)

    clock.advance(700)  # both go silent; only the runner was running
    wait_for(lambda: receiver.with_title("went offline"), timeout=20)
    time.sleep(1)  # many detection rounds later: still one of each
    assert sorted(receiver.titles()) == [
        "Worker runner stalled",
        "Worker runner went offline while running",
        "Worker sleeper is idle",
    ]
    offline = receiver.with_title("went offline")[0]
    assert "/workers/" in offline["message"] and offline["message"].count(PUBLIC) == 1


def test_low_disk_space_is_notified_then_its_return(
    start: Callable[..., Running], receiver: Receiver
) -> None:
    app = start(notify_urls=receiver.url, disk_free_alert_mb=10**12, notify_idle_after_min=0)
    wait_for(lambda: receiver.with_title("Disk space low"), timeout=20)
    app.server.context.settings.disk_free_alert_mb = 1.0  # as if space came back
    wait_for(lambda: receiver.with_title("Disk space back"), timeout=20)
    time.sleep(1)
    assert len(receiver.got) == 2, receiver.titles()
    assert "alert below 1000000000000 MB" in receiver.got[0]["message"]


def test_the_daily_digest_is_sent_once_during_its_hour(
    start: Callable[..., Running], receiver: Receiver
) -> None:
    clock = FakeClock()
    hour = time.gmtime(clock.now).tm_hour
    app = start(clock=clock, notify_urls=receiver.url, notify_digest_hour=hour, disk_free_alert_mb=0)
    create_study(app.client, name="digest me", count=2)
    digest = wait_for(lambda: receiver.with_title("daily digest"), timeout=20)[0]
    assert "digest me: 0.0 %" in digest["message"]
    time.sleep(1)
    assert len(receiver.with_title("daily digest")) == 1


def test_no_target_no_send_and_apprise_is_never_imported_for_ingest(tmp_path: Path) -> None:
    """A server that ingests GOLIAT messages and ends a study, with no target set, never loads apprise."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from starlette.testclient import TestClient
        from goliat_monitor.server.app import create_app
        from goliat_monitor.settings import ServerSettings

        app = create_app(ServerSettings(data_dir={str(tmp_path)!r}, disk_free_alert_mb=0))
        with TestClient(app) as client:
            study = client.post("/api/super-studies", json={{"name": "s", "assignments": [
                {{"splitConfig": {{"study_type": "far_field"}}}}]}}).json()
            client.post("/api/heartbeat", json={{"machineId": "m"}})
            client.get("/api/assignment", params={{"machineId": "m"}})
            for n in range(20):
                client.post("/api/gui-update", json={{"machineId": "m", "message":
                    {{"type": "overall_progress", "current": n, "total": 20}}}})
            client.post("/api/gui-update", json={{"machineId": "m", "message":
                {{"type": "finished", "message": "Study finished successfully"}}}})
            for _ in range(200):  # the delivery loop's first rounds (the default 1 s each)
                notes = client.get("/api/notifications").json()["notifications"]
                if notes:
                    break
                time.sleep(0.05)
            assert notes[0]["kind"] == "study_completed"
        assert "apprise" not in sys.modules, "apprise was imported"
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_a_lapsed_lease_on_the_last_attempt_fails_the_piece_and_the_study(
    start: Callable[..., Running], receiver: Receiver
) -> None:
    app = start(notify_urls=receiver.url, lease_timeout_s=60, offline_after_s=3600, disk_free_alert_mb=0)
    create_study(app.client, name="lapsed", count=1, maxAttempts=1)
    pull(app.client, "10.0.0.1")
    app.server.clock.advance(61)
    assert app.server.run(services.expire_leases(app.server.context)) == 1
    wait_for(lambda: len(receiver.got) == 2, timeout=10, what="two notifications")
    assert sorted(receiver.titles()) == ["Assignment 0 of 'lapsed' failed", "Super study 'lapsed' failed"]
    assert "lease expired" in receiver.with_title("Assignment 0")[0]["message"]


def test_sigterm_ends_the_server_promptly_while_a_send_hangs(tmp_path: Path) -> None:
    """A target that accepts and never answers must not hold up shutdown: the send runs on a thread."""
    hung: list[socket.socket] = []
    listener = socket.create_server(("127.0.0.1", 0))
    hang_port = listener.getsockname()[1]

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                hung.append(listener.accept()[0])  # read nothing, answer nothing

    threading.Thread(target=accept, daemon=True).start()
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "goliat_monitor",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path),
    ]
    command += ["--notify-urls", f"json://127.0.0.1:{hang_port}/hook?rto=120", "--log-level", "info"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert process.poll() is None, "the server exited"
            try:
                return httpx.get(url + "/api/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, timeout=30, what="the server to start")
        with httpx.Client(base_url=url, timeout=10) as client:
            create_study(client, name="hang", count=1)
            pull(client, "10.0.0.1")
            finish(client, "10.0.0.1")
        wait_for(lambda: hung, timeout=10, what="the send to reach the silent target")
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        assert process.wait(timeout=15) == -signal.SIGTERM
        assert time.monotonic() - signalled < 10
    finally:
        process.kill()
        _, log = process.communicate()
        listener.close()
        for conn in hung:
            conn.close()
    assert "Application shutdown complete" in log and "Traceback" not in log, log


def test_progress_messages_cost_the_outbox_nothing_only_the_ending_writes_to_it(
    start: Callable[..., Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The background loops' own reads of the outbox are not the ingest path's: they stay asleep.
    monkeypatch.setattr(notify, "POLL_S", 3600.0)
    monkeypatch.setattr(notify, "DETECT_S", 3600.0)
    app = start(disk_free_alert_mb=0, notify_idle_after_min=0)
    create_study(app.client, name="quiet", count=1)
    pull(app.client, "10.0.0.1")
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engine = app.server.context.db.engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        for n in range(20):
            gui(app.client, {"type": "overall_progress", "current": n, "total": 20}, machine="10.0.0.1")
            gui(app.client, log_batch(n, [(f"line {n}", "info")]), machine="10.0.0.1")
        during_run = [s for s in seen if "notification" in s or ("FOR UPDATE" in s and "super_studies" in s)]
        seen.clear()
        finish(app.client, "10.0.0.1")
        at_the_end = [s for s in seen if "INSERT INTO notifications" in s]
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert during_run == []
    assert len(at_the_end) == 1
