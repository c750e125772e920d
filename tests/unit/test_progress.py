"""A super study's ETA from its throughput so far, including the inputs that could divide by zero."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goliat_monitor.domain.models import AssignmentStatus
from goliat_monitor.domain.progress import AssignmentTiming, StudyEta, estimate_study

NOW = 10_000.0
PENDING, RUNNING, COMPLETED, FAILED, CANCELLED = (
    AssignmentStatus.PENDING,
    AssignmentStatus.RUNNING,
    AssignmentStatus.COMPLETED,
    AssignmentStatus.FAILED,
    AssignmentStatus.CANCELLED,
)


def timing(
    status: str,
    *,
    size: int = 1,
    progress: float = 0.0,
    started_at: float | None = None,
    eta_at: float | None = None,
) -> AssignmentTiming:
    return AssignmentTiming(status, size, progress, started_at, eta_at)


def test_no_assignments_no_estimate() -> None:
    assert estimate_study([], now=NOW) == StudyEta(None, None, None, 0.0)


@pytest.mark.parametrize("statuses", [(COMPLETED,), (COMPLETED, FAILED), (CANCELLED, FAILED)])
def test_nothing_left_to_do_finishes_now(statuses: tuple[str, ...]) -> None:
    items = [timing(status, started_at=NOW - 50) for status in statuses]
    assert estimate_study(items, now=NOW) == StudyEta(0.0, NOW, None, 0.0)


def test_remaining_work_over_observed_rate() -> None:
    # Started 100 s ago; 2 simulations done, 2 to go: 0.02 simulations per second.
    items = [
        timing(COMPLETED, started_at=NOW - 100),
        timing(RUNNING, size=2, progress=50.0, started_at=NOW - 60),
        timing(PENDING),
    ]
    eta = estimate_study(items, now=NOW)
    assert eta.remaining_simulations == pytest.approx(2.0)
    assert eta.simulations_per_hour == pytest.approx(72.0)
    assert eta.eta_seconds == pytest.approx(100.0)
    assert eta.finish_at == pytest.approx(NOW + 100.0)


def test_work_is_counted_in_simulations_not_assignments() -> None:
    small_done = [timing(COMPLETED, size=1, started_at=NOW - 100), timing(PENDING, size=9)]
    big_done = [timing(COMPLETED, size=9, started_at=NOW - 100), timing(PENDING, size=1)]
    assert estimate_study(small_done, now=NOW).eta_seconds == pytest.approx(900.0)
    assert estimate_study(big_done, now=NOW).eta_seconds == pytest.approx(100.0 / 9)


def test_failed_and_cancelled_work_is_neither_done_nor_remaining() -> None:
    items = [
        timing(COMPLETED, started_at=NOW - 100),
        timing(FAILED, size=50, progress=90.0),
        timing(CANCELLED, size=50, progress=90.0),
        timing(PENDING),
    ]
    eta = estimate_study(items, now=NOW)
    assert eta.remaining_simulations == 1.0
    assert eta.eta_seconds == pytest.approx(100.0)


def test_never_earlier_than_the_slowest_running_piece_says() -> None:
    items = [
        timing(COMPLETED, started_at=NOW - 100),
        timing(RUNNING, progress=50.0, started_at=NOW - 10, eta_at=NOW + 500),
        timing(RUNNING, progress=50.0, started_at=NOW - 10, eta_at=NOW + 20),
    ]
    assert estimate_study(items, now=NOW).finish_at == NOW + 500


def test_a_pending_pieces_stale_eta_is_ignored() -> None:
    items = [timing(COMPLETED, started_at=NOW - 100), timing(PENDING, eta_at=NOW + 10_000)]
    assert estimate_study(items, now=NOW).finish_at == pytest.approx(NOW + 100)


def test_a_running_eta_alone_gives_an_estimate_without_a_rate() -> None:
    items = [timing(RUNNING, eta_at=NOW + 42)]  # no start time, nothing done yet
    assert estimate_study(items, now=NOW) == StudyEta(42.0, NOW + 42, None, 1.0)


def test_an_eta_in_the_past_is_not_negative() -> None:
    items = [timing(RUNNING, progress=99.0, eta_at=NOW - 30)]
    eta = estimate_study(items, now=NOW)
    assert eta.eta_seconds == 0.0


@pytest.mark.parametrize(
    "items",
    [
        [timing(PENDING), timing(PENDING)],  # nothing started
        [timing(RUNNING, progress=0.0, started_at=NOW - 60)],  # started, nothing done yet
        [timing(RUNNING, progress=40.0, started_at=NOW)],  # no time has passed: no rate
        [timing(RUNNING, progress=40.0, started_at=NOW + 5)],  # a start in the future (skewed clock)
    ],
)
def test_no_rate_and_no_eta_means_unknown_not_a_division_by_zero(items: list[AssignmentTiming]) -> None:
    eta = estimate_study(items, now=NOW)
    assert eta.eta_seconds is None
    assert eta.finish_at is None
    assert eta.simulations_per_hour is None
    assert eta.remaining_simulations > 0


def test_progress_outside_0_to_100_and_sizes_below_one_are_tamed() -> None:
    items = [
        timing(RUNNING, size=0, progress=150.0, started_at=NOW - 10),
        timing(RUNNING, size=-4, progress=-20.0, started_at=NOW - 10),
    ]
    eta = estimate_study(items, now=NOW)
    assert eta.remaining_simulations == 1.0
    assert eta.simulations_per_hour == pytest.approx(360.0)


def test_the_earliest_start_of_any_piece_sets_the_clock() -> None:
    items = [
        timing(COMPLETED, started_at=NOW - 50),
        timing(FAILED, started_at=NOW - 200),  # its time counts, its work does not
        timing(PENDING),
    ]
    assert estimate_study(items, now=NOW).eta_seconds == pytest.approx(200.0)


timings = st.builds(
    AssignmentTiming,
    st.sampled_from(list(AssignmentStatus)),
    st.integers(min_value=-2, max_value=500),
    st.floats(min_value=-50, max_value=150, allow_nan=False),
    st.none() | st.floats(min_value=NOW - 1e5, max_value=NOW + 100, allow_nan=False),
    st.none() | st.floats(min_value=NOW - 1e5, max_value=NOW + 1e5, allow_nan=False),
)


@given(st.lists(timings, max_size=20))
def test_estimate_invariants(items: list[AssignmentTiming]) -> None:
    eta = estimate_study(items, now=NOW)
    assert eta.remaining_simulations >= 0
    assert (eta.eta_seconds is None) == (eta.finish_at is None)
    if eta.eta_seconds is not None and eta.finish_at is not None:
        assert eta.eta_seconds >= 0
        if eta.remaining_simulations > 0:
            for item in items:
                if item.status == RUNNING and item.eta_at is not None:
                    assert eta.finish_at >= item.eta_at
    if eta.simulations_per_hour is not None:
        assert eta.simulations_per_hour > 0
