"""The pure notification rules: who wants what, backoff, episodes, texts."""

from __future__ import annotations

from datetime import UTC, datetime

from goliat_monitor.domain import notifications as n
from goliat_monitor.domain.notifications import Kind, WorkerFacts


def worker(**changes: object) -> WorkerFacts:
    base: dict[str, object] = {
        "id": "w1",
        "name": "gpu-1",
        "status": "RUNNING",
        "online": True,
        "last_seen": 1000.0,
        "last_progress_at": 1000.0,
        "created_at": 900.0,
        "finished_at": None,
    }
    return WorkerFacts(**{**base, **changes})  # type: ignore[arg-type]


def kinds(found: list[n.Notice]) -> list[str]:
    return [notice.kind for notice in found]


def test_targets_get_what_they_asked_for_and_only_the_tested_one_gets_a_test() -> None:
    assert n.wants([], Kind.WORKER_IDLE) and n.wants(None, Kind.DIGEST)
    assert n.wants(["study_failed"], Kind.STUDY_FAILED)
    assert not n.wants(["study_failed"], Kind.STUDY_COMPLETED)
    assert n.wants(["disk_low"], Kind.DISK_OK)  # space back goes where low space went
    assert not n.wants([], Kind.TEST)
    assert n.unknown_events(["digest", "nope"]) == ["nope"]


def test_retries_wait_longer_each_time_up_to_an_hour() -> None:
    assert [n.retry_delay(a, 30) for a in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert n.retry_delay(30, 30) == n.RETRY_CAP_S


def test_a_stalled_worker_is_one_episode_until_it_moves_again() -> None:
    rules = {"stalled_after_s": 300.0, "idle_after_s": 0.0}
    assert n.worker_notices([worker()], now=1200.0, **rules) == []
    first = n.worker_notices([worker()], now=1301.0, **rules)
    later = n.worker_notices([worker()], now=5000.0, **rules)
    assert kinds(first) == [Kind.WORKER_STALLED] and first[0].key == later[0].key
    moved = n.worker_notices([worker(last_progress_at=2000.0)], now=2400.0, **rules)
    assert kinds(moved) == [Kind.WORKER_STALLED] and moved[0].key != first[0].key
    assert first[0].path == "/workers/w1" and "5 minutes" in first[0].body


def test_offline_only_while_running_and_idle_only_when_asked() -> None:
    rules = {"stalled_after_s": 300.0, "idle_after_s": 600.0}
    offline = n.worker_notices([worker(online=False)], now=1100.0, **rules)
    assert kinds(offline) == [Kind.WORKER_OFFLINE] and "went offline" in offline[0].title
    assert n.worker_notices([worker(status="IDLE", online=False)], now=9000.0, **rules) == []
    idle = worker(status="IDLE", finished_at=1000.0)
    assert n.worker_notices([idle], now=1500.0, **rules) == []
    assert kinds(n.worker_notices([idle], now=1700.0, **rules)) == [Kind.WORKER_IDLE]
    assert n.worker_notices([idle], now=9000.0, stalled_after_s=300.0, idle_after_s=0.0) == []


def test_low_disk_space_then_its_return_alternate_with_keys_naming_the_previous_notice() -> None:
    mb = 2**20

    def check(
        free_mb: int, previous: str | None, previous_id: int | None, threshold_mb: float = 1000.0
    ) -> n.Notice | None:
        return n.disk_notice(
            subject="disk:h:/d",
            where="/d",
            free_bytes=free_mb * mb,
            total_bytes=100 * 2**30,
            threshold_mb=threshold_mb,
            previous=previous,
            previous_id=previous_id,
        )

    low = check(500, None, None)
    assert low is not None and low.kind == Kind.DISK_LOW and low.key == "disk_low:disk:h:/d:after:0"
    assert check(400, Kind.DISK_LOW, 7) is None
    assert check(1100, Kind.DISK_LOW, 7) is None  # not yet clearly above the line
    back = check(1300, Kind.DISK_LOW, 7)
    assert back is not None and back.kind == Kind.DISK_OK and back.key.endswith("after:7")
    again = check(10, Kind.DISK_OK, 9)
    assert again is not None and again.key.endswith("after:9")
    assert check(0, None, None, threshold_mb=0) is None


def test_the_digest_is_due_during_its_hour_once_a_day() -> None:
    at = datetime(2026, 12, 2, 8, 30, tzinfo=UTC).timestamp()
    assert n.digest_day(at, 8) == "2026-12-02"
    assert n.digest_day(at, 9) is None and n.digest_day(at, None) is None
    facts = n.DigestFacts({"RUNNING": 2, "OFFLINE": 1}, [("s1", "campaign", 42.5)], 7, 1)
    notice = n.digest("2026-12-02", facts)
    assert notice.key == "digest:2026-12-02"
    assert (
        "2 running" in notice.body
        and "campaign: 42.5 %" in notice.body
        and "7 assignments completed" in notice.body
    )


def test_a_study_notice_names_the_study_and_the_counts() -> None:
    counts = {"COMPLETED": 3, "FAILED": 1, "CANCELLED": 0}
    notice = n.study_ended(study_id="s1", name="far", status="FAILED", counts=counts, total=4, now=5.0)
    assert notice is not None and notice.kind == Kind.STUDY_FAILED
    assert notice.title == "Super study 'far' failed"
    assert notice.body == "Super study 'far' failed: 3 of 4 assignments completed, 1 failed."
    assert n.study_ended(study_id="s1", name="far", status="RUNNING", counts=counts, total=4, now=5.0) is None


def test_the_body_links_to_the_page_under_the_public_url_or_names_its_path() -> None:
    assert n.message_body("Done.", "/super-studies/s1", "https://m.example.org/") == (
        "Done.\nhttps://m.example.org/super-studies/s1"
    )
    assert "Page: /super-studies/s1 (set GOLIAT_MONITOR_PUBLIC_URL" in n.message_body(
        "Done.", "/super-studies/s1", None
    )
    assert n.message_body("Low.", None, "https://m.example.org") == "Low."
    assert n.mask_url("tgram://123456:secret-token/99") == "tgram://****n/99"
