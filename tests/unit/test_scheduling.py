"""What a failed attempt leads to, and what a super study's state and master progress are."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goliat_monitor.domain.models import EXIT_CODE_OUT_OF_MEMORY, AssignmentStatus, StudyStatus
from goliat_monitor.domain.scheduling import (
    AssignmentView,
    FailurePolicy,
    after_failure,
    config_warnings,
    summarize_study,
)

PENDING, RUNNING, COMPLETED, FAILED, CANCELLED = (
    AssignmentStatus.PENDING,
    AssignmentStatus.RUNNING,
    AssignmentStatus.COMPLETED,
    AssignmentStatus.FAILED,
    AssignmentStatus.CANCELLED,
)


# -- after a failure ---------------------------------------------------------------------------


def _attempts_until_given_up(
    policy: FailurePolicy, *, exit_code: int | None, lease_lost: bool = False
) -> int:
    """How often an assignment that always fails this way is claimed (each claim counts one attempt)."""
    attempts = 0
    while True:
        attempts += 1
        if (
            after_failure(attempts=attempts, policy=policy, exit_code=exit_code, lease_lost=lease_lost)
            == FAILED
        ):
            return attempts
        assert attempts < 100, "never gave up"


@pytest.mark.parametrize("max_attempts", [1, 2, 3, 5])
def test_out_of_memory_is_retried_until_max_attempts(max_attempts: int) -> None:
    policy = FailurePolicy(max_attempts=max_attempts)
    assert _attempts_until_given_up(policy, exit_code=EXIT_CODE_OUT_OF_MEMORY) == max_attempts


@pytest.mark.parametrize("max_attempts", [1, 3])
def test_a_lost_lease_is_retried_until_max_attempts(max_attempts: int) -> None:
    policy = FailurePolicy(max_attempts=max_attempts)
    assert _attempts_until_given_up(policy, exit_code=None, lease_lost=True) == max_attempts


@pytest.mark.parametrize("exit_code", [1, 3, -9, None])
def test_other_failures_are_final_unless_the_policy_retries_them(exit_code: int | None) -> None:
    assert after_failure(attempts=1, policy=FailurePolicy(), exit_code=exit_code) == FAILED
    retrying = FailurePolicy(max_attempts=3, retry_fatal=True)
    assert after_failure(attempts=1, policy=retrying, exit_code=exit_code) == PENDING
    assert _attempts_until_given_up(retrying, exit_code=exit_code) == 3


def test_the_default_policy_tries_three_times_and_does_not_retry_fatal_errors() -> None:
    assert FailurePolicy() == FailurePolicy(max_attempts=3, retry_fatal=False)


def test_attempts_past_the_limit_are_never_requeued() -> None:
    """A limit lowered after the claims (or a bad counter) must not requeue forever."""
    policy = FailurePolicy(max_attempts=2, retry_fatal=True)
    for attempts in (2, 3, 10):
        assert after_failure(attempts=attempts, policy=policy, exit_code=None, lease_lost=True) == FAILED


# -- study summary -----------------------------------------------------------------------------


def _views(*statuses: str, progress: float = 0.0) -> list[AssignmentView]:
    return [AssignmentView(status, progress) for status in statuses]


@pytest.mark.parametrize(
    ("statuses", "cancelled", "expected"),
    [
        ((), False, StudyStatus.PENDING),
        ((PENDING, PENDING), False, StudyStatus.PENDING),
        ((PENDING, RUNNING), False, StudyStatus.RUNNING),
        ((PENDING, COMPLETED), False, StudyStatus.RUNNING),  # between claims: still running
        ((PENDING, FAILED), False, StudyStatus.RUNNING),
        ((COMPLETED, COMPLETED), False, StudyStatus.COMPLETED),
        ((COMPLETED, CANCELLED), False, StudyStatus.COMPLETED),
        ((COMPLETED, FAILED), False, StudyStatus.FAILED),
        ((FAILED, CANCELLED), False, StudyStatus.FAILED),
        ((CANCELLED, CANCELLED), False, StudyStatus.CANCELLED),  # nothing was ever completed
        ((), True, StudyStatus.CANCELLED),
        ((PENDING, COMPLETED), True, StudyStatus.CANCELLED),
        ((RUNNING, CANCELLED), True, StudyStatus.RUNNING),  # cancelled, but a worker is still stopping
        ((RUNNING, PENDING), False, StudyStatus.RUNNING),
    ],
)
def test_study_status(statuses: tuple[str, ...], cancelled: bool, expected: StudyStatus) -> None:
    assert summarize_study(_views(*statuses), cancelled=cancelled).status == expected


def test_counts_name_every_status_even_when_none_has_it() -> None:
    summary = summarize_study(_views(COMPLETED, COMPLETED, RUNNING), cancelled=False)
    assert summary.counts == {"PENDING": 0, "RUNNING": 1, "COMPLETED": 2, "FAILED": 0, "CANCELLED": 0}
    assert summary.total == 3
    assert summary.completed == 2


def test_master_progress_is_weighted_by_assignment_size() -> None:
    views = [AssignmentView(RUNNING, 50.0, size=3), AssignmentView(PENDING, 0.0, size=1)]
    assert summarize_study(views, cancelled=False).master_progress == 37.5


def test_completed_counts_as_100_whatever_its_last_progress_said() -> None:
    views = [AssignmentView(COMPLETED, 80.0), AssignmentView(PENDING, 0.0)]
    assert summarize_study(views, cancelled=False).master_progress == 50.0


def test_failed_and_cancelled_pieces_leave_the_denominator() -> None:
    views = [
        AssignmentView(COMPLETED, 100.0, size=2),
        AssignmentView(FAILED, 30.0, size=5),
        AssignmentView(CANCELLED, 10.0, size=5),
        AssignmentView(RUNNING, 50.0, size=2),
    ]
    assert summarize_study(views, cancelled=False).master_progress == 75.0


def test_degenerate_sizes_and_progress_are_tamed() -> None:
    views = [AssignmentView(RUNNING, 250.0, size=0), AssignmentView(RUNNING, -40.0, size=-3)]
    # Sizes below one weigh one, progress is clamped to [0, 100].
    assert summarize_study(views, cancelled=False).master_progress == 50.0


def test_master_progress_is_zero_when_nothing_counts() -> None:
    assert summarize_study([], cancelled=False).master_progress == 0.0
    assert summarize_study(_views(FAILED, CANCELLED), cancelled=False).master_progress == 0.0


def test_master_progress_is_rounded_to_four_places() -> None:
    views = [AssignmentView(COMPLETED, 0.0), AssignmentView(PENDING, 0.0), AssignmentView(PENDING, 0.0)]
    assert summarize_study(views, cancelled=False).master_progress == 33.3333


views_strategy = st.lists(
    st.builds(
        AssignmentView,
        st.sampled_from(list(AssignmentStatus)),
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
        st.integers(min_value=-5, max_value=1000),
    ),
    max_size=30,
)


@given(views_strategy, st.booleans())
def test_summary_invariants(views: list[AssignmentView], cancelled: bool) -> None:
    summary = summarize_study(views, cancelled=cancelled)
    assert 0.0 <= summary.master_progress <= 100.0
    assert sum(summary.counts.values()) == summary.total == len(views)
    if all(v.status == COMPLETED for v in views) and views and not cancelled:
        assert summary.status == StudyStatus.COMPLETED
        assert summary.master_progress == 100.0
    if any(v.status == RUNNING for v in views):
        assert summary.status == StudyStatus.RUNNING


# -- configs a worker cannot resolve -----------------------------------------------------------

CHILD = {"extends": "base_config", "frequencies_mhz": [700]}


def test_a_missing_extends_parent_is_one_warning_naming_its_assignments() -> None:
    warnings = config_warnings(
        [(0, "PENDING", CHILD), (1, "RUNNING", CHILD), (2, "PENDING", {"frequencies_mhz": [900]})], {}
    )
    assert len(warnings) == 1
    assert warnings[0].startswith("Assignments 0, 1: parent config 'base_config'")
    assert "parentConfigs" in warnings[0]


def test_a_parent_the_server_has_is_found_as_goliat_finds_it() -> None:
    assert config_warnings([(0, "PENDING", CHILD)], {"base_config.json": {"a": 1}}) == []


def test_finished_assignments_are_not_warned_about_and_long_lists_are_cut() -> None:
    assert config_warnings([(0, "COMPLETED", CHILD), (1, "CANCELLED", CHILD)], {}) == []
    many = config_warnings([(i, "PENDING", CHILD) for i in range(12)], {})
    assert many[0].startswith("Assignments 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 2 more:")
    assert config_warnings([(3, "FAILED", CHILD)], {})[0].startswith("Assignment 3:")
