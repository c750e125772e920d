"""GPU-hours and cost rules (domain/cost.py): attempts from history, study and worker figures."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goliat_monitor.domain.cost import (
    Attempt,
    Transition,
    Work,
    attempts,
    busy_intervals,
    study_cost,
    union_seconds,
    worker_cost,
)

H = 3600.0


def t(assignment: str, at: float, src: str | None, dst: str, worker: str | None = "w1") -> Transition:
    return Transition(assignment, at, src, dst, worker)


def test_every_attempt_counts_failed_ones_too() -> None:
    history = [
        t("a", 0, "PENDING", "RUNNING", "w1"),
        t("a", H, "RUNNING", "PENDING", "w1"),  # out of memory, retried
        t("a", 2 * H, "PENDING", "RUNNING", "w2"),
        t("a", 2.5 * H, "RUNNING", "RUNNING", "w2"),  # a stop request does not end the attempt
        t("a", 4 * H, "RUNNING", "COMPLETED", "w2"),
    ]
    found = attempts(history, running={}, now=10 * H)
    assert found == [Attempt("a", "w1", 0, H), Attempt("a", "w2", 2 * H, 4 * H)]
    assert sum(a.hours for a in found) == 3.0


def test_a_running_attempt_lasts_until_now_and_a_lost_ending_is_left_out() -> None:
    history = [
        t("a", 0, "PENDING", "RUNNING"),
        t("b", 0, "PENDING", "RUNNING"),
        t("c", 5, "RUNNING", "FAILED"),
    ]
    found = attempts(history, running={"a": "w9"}, now=H)
    assert found == [Attempt("a", "w9", 0, H)]


def test_study_cost_prices_each_attempt_at_its_workers_price() -> None:
    work = [Work("a", "COMPLETED", 1, 100.0, None, None), Work("b", "COMPLETED", 1, 100.0, None, None)]
    history = [Attempt("a", "w1", 0, H), Attempt("a", "w2", H, 3 * H), Attempt("b", "gone", 0, H)]
    cost = study_cost(
        work, history, prices={"w1": 1.0, "w2": 3.0, "gone": None}, default_price=0.5, now=5 * H
    )
    assert cost.assignments["a"].gpu_hours == 3.0
    assert cost.assignments["a"].cost == 1.0 + 6.0
    assert cost.assignments["b"].cost == 0.5  # a worker without its own price pays the default
    assert cost.total.gpu_hours == 4.0 and cost.total.cost == 7.5
    assert cost.total.projected_cost == 7.5  # nothing left to do


def test_projection_uses_a_running_eta_and_the_observed_rate_for_the_rest() -> None:
    now = 10 * H
    work = [
        Work("done", "COMPLETED", 2, 100.0, None, None),
        Work("run", "RUNNING", 2, 50.0, now + 2 * H, "w2"),
        Work("wait", "PENDING", 2, 0.0, None, None),
    ]
    history = [Attempt("done", "w1", 0, 4 * H), Attempt("run", "w2", now - 2 * H, now)]
    cost = study_cost(work, history, prices={"w1": 1.0, "w2": 2.0}, default_price=9.0, now=now)
    # Spent: 4 h at 1 + 2 h at 2 = 8 over 6 h. Done: 2 + 2 * 0.5 = 3 simulations, so 2 h each.
    assert cost.total.cost == 8.0
    assert cost.assignments["run"].projected_cost == pytest.approx(4.0 + 2 * 2.0)  # its ETA, its price
    # The pending one: 2 simulations x 2 h at the study's mean price so far (8 / 6 per hour).
    assert cost.assignments["wait"].projected_cost == pytest.approx(2 * 2 * 8 / 6)
    assert cost.total.projected_cost == pytest.approx(8.0 + 4.0 + 2 * 2 * 8 / 6)


def test_projection_is_unknown_before_any_work_or_eta() -> None:
    work = [Work("a", "RUNNING", 1, 0.0, None, "w1"), Work("b", "PENDING", 1, 0.0, None, None)]
    cost = study_cost(work, [Attempt("a", "w1", 0, 0)], prices={}, default_price=1.0, now=0)
    assert cost.total.projected_cost is None
    assert cost.assignments["a"].projected_cost is None


def test_a_session_busy_and_idle() -> None:
    window = (0.0, 10 * H)
    history = [
        t("a", 1 * H, "PENDING", "RUNNING"),
        t("a", 3 * H, "RUNNING", "COMPLETED"),
        t("b", 4 * H, "PENDING", "RUNNING"),  # still running at the session's end
    ]
    busy = busy_intervals(history, window=window, holding=["b"])
    assert busy == [(1 * H, 3 * H), (4 * H, 10 * H)]
    figures = worker_cost(online=window, busy=busy, price=2.0)
    assert figures.gpu_hours == 8.0 and figures.cost == 16.0
    assert figures.idle_hours == 2.0 and figures.idle_cost == 4.0


def test_a_session_that_took_over_a_running_assignment() -> None:
    """A machine back from offline gets a new session; its running assignment moved over without
    an event: it counts from the session's start, ended or still held."""
    window = (5 * H, 9 * H)
    ended = busy_intervals([t("a", 6 * H, "RUNNING", "COMPLETED")], window=window)
    assert ended == [(5 * H, 6 * H)]
    held = busy_intervals([], window=window, holding=["a"])
    assert held == [(5 * H, 9 * H)]
    before = busy_intervals(
        [t("x", 0, "PENDING", "RUNNING"), t("x", H, "RUNNING", "COMPLETED")], window=window
    )
    assert before == []


intervals = st.lists(
    st.tuples(st.floats(0, 1e6, allow_nan=False), st.floats(0, 1e4, allow_nan=False)).map(
        lambda p: (p[0], p[0] + p[1])
    ),
    max_size=20,
)


@given(intervals)
def test_union_is_at_most_the_sum_and_at_least_the_longest(spans: list[tuple[float, float]]) -> None:
    total = union_seconds(spans)
    lengths = [b - a for a, b in spans]
    assert total <= sum(lengths) + 1e-6
    assert total >= (max(lengths) if lengths else 0.0) - 1e-6
    assert union_seconds(spans + spans) == pytest.approx(total)


@given(intervals, st.floats(0, 1e6), st.floats(0, 1e5), st.floats(0, 100))
def test_busy_plus_idle_is_the_online_time(
    spans: list[tuple[float, float]], start: float, length: float, price: float
) -> None:
    figures = worker_cost(online=(start, start + length), busy=spans, price=price)
    assert figures.gpu_hours >= 0 and figures.idle_hours >= 0
    assert figures.gpu_hours + figures.idle_hours == pytest.approx(length / H, abs=1e-9)
    assert figures.cost == pytest.approx(figures.gpu_hours * price)


statuses = st.sampled_from(["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"])


@st.composite
def histories(draw: st.DrawFn) -> list[Transition]:
    """A consistent history: each assignment alternates into and out of RUNNING in time order."""
    out: list[Transition] = []
    for name in draw(st.lists(st.sampled_from("abcde"), unique=True, max_size=5)):
        at = draw(st.floats(0, 1e5))
        for _ in range(draw(st.integers(0, 3))):
            out.append(t(name, at, "PENDING", "RUNNING", draw(st.sampled_from(["w1", "w2"]))))
            at += draw(st.floats(0, 1e4))
            out.append(t(name, at, "RUNNING", draw(statuses.filter(lambda s: s != "RUNNING"))))
            at += draw(st.floats(0, 1e3))
    return sorted(out, key=lambda x: x.at)


@given(histories(), st.floats(0, 10), st.floats(0, 10))
def test_study_spent_is_the_attempts_at_their_prices(history: list[Transition], p1: float, p2: float) -> None:
    found = attempts(history, running={}, now=2e5)
    assert len(found) == sum(1 for x in history if x.to_status == "RUNNING")
    work = [Work(name, "COMPLETED", 1, 100.0, None, None) for name in {x.assignment_id for x in history}]
    cost = study_cost(work, found, prices={"w1": p1, "w2": p2}, default_price=0.0, now=2e5)
    assert cost.total.gpu_hours == pytest.approx(sum(a.hours for a in found))
    expected = sum(a.hours * (p1 if a.worker_id == "w1" else p2) for a in found)
    assert cost.total.cost == pytest.approx(expected)
    assert cost.total.projected_cost == pytest.approx(cost.total.cost)
