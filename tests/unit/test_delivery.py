"""delivery.py, the one delivery behaviour of the bridge and the agent, tested once."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from goliat_monitor.delivery import (
    Outcome,
    Shaped,
    Shaper,
    backoff_delay,
    is_final,
    is_visible_change,
    outcome_for,
    parse_retry_after,
    plan_sends,
    retry_delay,
)

# -- the table -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (None, Outcome.RETRY_LATER),  # no answer: refused, reset, timed out
        (200, Outcome.DELIVERED),
        (201, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (301, Outcome.GIVE_UP_AND_KEEP),  # a URL that redirects is a setting to fix
        (302, Outcome.GIVE_UP_AND_KEEP),
        (307, Outcome.GIVE_UP_AND_KEEP),
        (308, Outcome.GIVE_UP_AND_KEEP),
        (400, Outcome.DROP),
        (401, Outcome.GIVE_UP_AND_KEEP),  # a wrong token: never drop the campaign's logs
        (403, Outcome.GIVE_UP_AND_KEEP),
        (404, Outcome.DROP),
        (405, Outcome.DROP),
        (407, Outcome.GIVE_UP_AND_KEEP),
        (408, Outcome.RETRY_LATER),
        (409, Outcome.DROP),
        (410, Outcome.DROP),
        (413, Outcome.DROP),
        (415, Outcome.DROP),
        (422, Outcome.DROP),
        (425, Outcome.RETRY_LATER),
        (429, Outcome.RETRY_LATER),
        (451, Outcome.DROP),
        (500, Outcome.RETRY_LATER),
        (501, Outcome.RETRY_LATER),
        (502, Outcome.RETRY_LATER),
        (503, Outcome.RETRY_LATER),
        (504, Outcome.RETRY_LATER),
        (599, Outcome.RETRY_LATER),
        (100, Outcome.RETRY_LATER),  # not a final answer: as good as none
        (600, Outcome.RETRY_LATER),
    ],
)
def test_every_answer_has_one_outcome(status: int | None, outcome: Outcome) -> None:
    assert outcome_for(status) is outcome


# -- backoff and Retry-After ---------------------------------------------------------------------------


def test_backoff_doubles_per_failure_within_equal_jitter_bounds_up_to_the_cap() -> None:
    rng = random.Random(7)
    for failures in range(1, 40):
        ceiling = min(30.0, 0.5 * 2 ** (failures - 1))
        for _ in range(20):
            delay = backoff_delay(failures, 0.5, 30.0, rng)
            assert ceiling / 2 <= delay <= ceiling
    assert 0.25 <= backoff_delay(0, 0.5, 30.0, rng) <= 0.5  # no failure yet counts as the first
    assert 15 <= backoff_delay(10**6, 0.5, 30.0, rng) <= 30  # no overflow


def test_backoff_is_jittered_so_senders_do_not_stampede() -> None:
    rng = random.Random(11)
    delays = [backoff_delay(8, 0.5, 30.0, rng) for _ in range(200)]
    assert len(set(delays)) == len(delays)
    assert min(delays) < 17 and max(delays) > 28  # spread over the whole random half


def test_a_configuration_problem_waits_the_longest_backoff_at_once() -> None:
    rng = random.Random(3)
    for _ in range(50):
        assert 15 <= retry_delay(Outcome.GIVE_UP_AND_KEEP, 1, base=0.5, cap=30, rng=rng) <= 30
        assert retry_delay(Outcome.RETRY_LATER, 1, base=0.5, cap=30, rng=rng) <= 0.5


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    rng = random.Random(5)
    assert retry_delay(Outcome.RETRY_LATER, 1, base=0.5, cap=30, retry_after=12, rng=rng) == 12
    assert retry_delay(Outcome.RETRY_LATER, 1, base=0.5, cap=30, retry_after=3600, rng=rng) == 30
    assert retry_delay(Outcome.RETRY_LATER, 1, base=0.5, cap=30, retry_after=0, rng=rng) <= 0.5


NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Sat, 01 Mar 2025 12:01:30 GMT", 90.0),  # IMF-fixdate
        ("Saturday, 01-Mar-25 12:00:45 GMT", 45.0),  # obsolete RFC 850 form
        ("Sat Mar  1 12:00:10 2025", 10.0),  # obsolete asctime form, no zone: GMT
        ("Sat, 01 Mar 2025 11:00:00 GMT", 0.0),  # in the past: now
        (None, None),
        ("", None),
        ("-5", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


def test_retry_after_dates_default_to_the_clock() -> None:
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(minutes=1), usegmt=True)
    waited = parse_retry_after(in_a_minute)
    assert waited is not None and 58 <= waited <= 60


# -- which progress values matter ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "final"),
    [
        ({"type": "overall_progress", "current": 100, "total": 100}, True),
        ({"type": "stage_progress", "name": "Run", "current": 3, "total": 2}, True),
        ({"type": "overall_progress", "current": 99.9, "total": 100}, False),
        ({"type": "overall_progress", "current": 0, "total": 0}, False),  # nothing to do is not done
        ({"type": "overall_progress", "current": "x", "total": 100}, False),
        ({"type": "overall_progress"}, False),
        ({"type": "profiler_update", "eta_seconds": 0}, True),  # the ETA reached its end
        ({"type": "profiler_update", "eta_seconds": 0.0}, True),
        ({"type": "profiler_update", "eta_seconds": 12}, False),
        ({"type": "profiler_update", "eta_seconds": None}, False),
        ({"type": "profiler_update", "eta_seconds": False}, False),
        ({"type": "profiler_update", "current": 100, "total": 100}, False),  # an ETA has no total
    ],
)
def test_is_final_is_one_rule_for_every_progress_type(message: dict[str, Any], final: bool) -> None:
    assert is_final(message) is final


def test_only_visible_changes_count() -> None:
    overall = {"type": "overall_progress", "current": 50.0, "total": 100}
    assert is_visible_change(None, overall)
    assert not is_visible_change(overall, {**overall, "current": 50.05})
    assert is_visible_change(overall, {**overall, "current": 50.1})
    stage = {"type": "stage_progress", "name": "Run", "current": 10, "total": 100}
    assert not is_visible_change(stage, {**stage, "current": 10.5})
    assert is_visible_change(stage, {**stage, "current": 11})
    assert is_visible_change(stage, {**stage, "name": "Extract"})
    eta = {"type": "profiler_update", "eta_seconds": 3600}
    assert not is_visible_change(eta, {**eta, "eta_seconds": 3590})
    assert is_visible_change(eta, {**eta, "eta_seconds": 3580})
    assert is_visible_change(eta, {**eta, "eta_seconds": None})


def body(kind: str, assignment: str = "a1", **message: Any) -> dict[str, Any]:
    return {"assignmentId": assignment, "message": {"type": kind, **message}}


def test_superseded_progress_is_skipped_but_logs_and_the_latest_value_are_sent() -> None:
    plan = plan_sends(
        [
            body("overall_progress", current=10, total=100),
            body("log_batch"),
            body("overall_progress", current=20, total=100),
            body("stage_progress", name="Run", current=1, total=2),
            body("overall_progress", current=30, total=100),
            body("log_batch"),
        ]
    )
    assert plan == [False, True, False, True, True, True]


def test_progress_before_an_ending_or_of_another_assignment_is_kept() -> None:
    plan = plan_sends(
        [
            body("overall_progress", current=100, total=100),
            body("finished", message="done"),
            body("overall_progress", current=0, total=100),
            body("overall_progress", assignment="a2", current=5, total=100),
            {"message": "not a message"},
        ]
    )
    assert plan == [True, True, True, True, True]


# -- the shaper ----------------------------------------------------------------------------------------


def line(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "status", "message": text, "log_type": "info", **extra}


def progress(current: float, kind: str = "overall_progress") -> dict[str, Any]:
    return {"type": kind, "current": current, "total": 100}


def kinds(out: list[Shaped]) -> list[str]:
    return [message["type"] for message, _ in out]


def test_lines_are_batched_by_count_with_sequences_from_zero() -> None:
    shaper = Shaper(batch_lines=3, batch_age=10)
    out: list[Shaped] = []
    for n in range(7):
        shaper.add(line(f"l{n}"), wall=100.0 + n, now=0.0, out=out)
    assert [[e["message"] for e in m["logs"]] for m, _ in out] == [["l0", "l1", "l2"], ["l3", "l4", "l5"]]
    assert [m["sequence"] for m, _ in out] == [0, 1]
    assert out[0][0]["logs"][1]["timestamp"] == 101.0  # batching delays a line: keep when it was said
    assert shaper.held == 1
    shaper.add(line("kept", timestamp=5.0), wall=200.0, now=0.0, out=out)
    shaper.flush(0.0, out, force=True)
    assert out[-1][0]["logs"][-1] == line("kept", timestamp=5.0) and out[-1][0]["sequence"] == 2


def test_a_batch_is_sealed_when_it_is_old_enough() -> None:
    shaper = Shaper(batch_lines=100, batch_age=0.25)
    out: list[Shaped] = []
    shaper.add(line("a"), wall=1.0, now=10.0, out=out)
    assert shaper.next_due() == 10.25
    shaper.flush(10.2, out)
    assert out == []
    shaper.flush(10.25, out)
    assert kinds(out) == ["log_batch"] and shaper.next_due() is None


def test_other_messages_never_overtake_lines_but_progress_may() -> None:
    shaper = Shaper(batch_lines=100, batch_age=10)
    out: list[Shaped] = []
    shaper.add(line("before"), wall=1.0, now=0.0, out=out)
    shaper.add(progress(10), wall=1.0, now=0.0, out=out)  # state: need not wait for the batch
    assert kinds(out) == ["overall_progress"]
    shaper.add({"type": "simulation_details", "simulation_count": 1}, wall=2.0, now=0.0, out=out)
    assert kinds(out) == ["overall_progress", "log_batch", "simulation_details"]
    assert out[-1][1] == 2.0  # stamped with when it was said


def test_a_terminal_message_goes_after_every_waiting_line_and_value() -> None:
    shaper = Shaper(progress_hz=1, batch_lines=100, batch_age=10)
    out: list[Shaped] = []
    shaper.add(progress(10), wall=1.0, now=0.0, out=out)
    shaper.add(progress(40), wall=1.0, now=0.1, out=out)  # throttled: waiting
    shaper.add(line("last words"), wall=1.0, now=0.1, out=out)
    shaper.add({"type": "finished", "message": "done"}, wall=2.0, now=0.2, out=out)
    assert kinds(out) == ["overall_progress", "log_batch", "overall_progress", "finished"]
    assert [m.get("current") for m, _ in out] == [10, None, 40, None]
    assert shaper.held == 0


def test_progress_is_throttled_latest_value_wins() -> None:
    shaper = Shaper(progress_hz=5)
    out: list[Shaped] = []
    for n in range(1, 51):
        shaper.add(progress(n), wall=1.0, now=n / 1000, out=out)
    assert [m["current"] for m, _ in out] == [1]
    assert shaper.next_due() == pytest.approx(0.001 + 0.2)
    shaper.flush(0.1, out)
    assert len(out) == 1
    shaper.flush(0.25, out)
    assert [m["current"] for m, _ in out] == [1, 50]


def test_all_progress_types_share_the_rate_and_the_longest_waiting_goes_first() -> None:
    shaper = Shaper(progress_hz=4)
    out: list[Shaped] = []
    shaper.add(progress(1, "overall_progress"), wall=1.0, now=0.0, out=out)
    shaper.add(progress(1, "stage_progress"), wall=1.0, now=0.25, out=out)  # its own turn: goes
    shaper.add(progress(2, "stage_progress"), wall=1.0, now=0.3, out=out)
    shaper.add(progress(2, "overall_progress"), wall=1.0, now=0.3, out=out)
    assert kinds(out) == ["overall_progress", "stage_progress"]
    shaper.flush(0.5, out)  # overall was sent longest ago
    shaper.flush(0.6, out)  # one value per interval, all types together
    assert kinds(out) == ["overall_progress", "stage_progress", "overall_progress"]
    shaper.flush(0.75, out)
    assert kinds(out)[-1] == "stage_progress" and shaper.held == 0


def test_a_final_value_goes_at_once_and_only_once() -> None:
    shaper = Shaper(progress_hz=1)
    out: list[Shaped] = []
    shaper.add(progress(10), wall=1.0, now=0.0, out=out)
    shaper.add(progress(90), wall=1.0, now=0.1, out=out)  # waiting ...
    for _ in range(5):  # GOLIAT repeats its 100 % five times
        shaper.add(progress(100), wall=1.0, now=0.2, out=out)
    shaper.flush(5.0, out, force=True)
    assert [m["current"] for m, _ in out] == [10, 100]  # ... and superseded by the final value
    shaper.add(progress(0), wall=1.0, now=10.0, out=out)  # a new run starts over
    shaper.add(progress(100), wall=1.0, now=10.1, out=out)
    assert [m["current"] for m, _ in out] == [10, 100, 0, 100]


def test_values_nobody_could_see_change_are_skipped() -> None:
    shaper = Shaper(progress_hz=0)
    out: list[Shaped] = []
    for current in (10.0, 10.01, 10.02, 10.5):
        shaper.add(progress(current), wall=1.0, now=current, out=out)
    assert [m["current"] for m, _ in out] == [10.0, 10.5]


def test_scale_makes_batches_bigger_and_progress_rarer() -> None:
    shaper = Shaper(progress_hz=5, batch_lines=2, batch_age=0.1)
    out: list[Shaped] = []
    shaper.scale = 10
    for n in range(19):
        shaper.add(line(f"l{n}"), wall=1.0, now=0.0, out=out)
    shaper.add(progress(1), wall=1.0, now=0.0, out=out)
    shaper.add(progress(2), wall=1.0, now=0.5, out=out)
    assert kinds(out) == ["overall_progress"]  # 19 lines, under 2 * 10
    assert shaper.next_due() == 1.0  # the batch: 0.1 s * 10; progress: 0.2 s * 10 = 2.0
    shaper.flush(1.5, out)
    assert kinds(out) == ["overall_progress", "log_batch"]
    shaper.flush(2.0, out)
    assert [m.get("current") for m, _ in out] == [1, None, 2]
