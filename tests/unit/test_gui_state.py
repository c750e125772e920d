"""How GUI messages change a worker's state, without a database (log order: test_log_order.py)."""

from __future__ import annotations

from typing import Any

import pytest

from goliat_monitor.domain import gui_state
from goliat_monitor.domain.gui_state import (
    Ending,
    Interpretation,
    LogLine,
    count_logs,
    interpret,
    is_online,
    offline_after,
    percent,
    reopens_run,
    status_after,
)
from goliat_monitor.domain.models import EXIT_CODE_OUT_OF_MEMORY, FAILED_STUDY_MESSAGE, WorkerStatus

NOW = 1_000_000.0


# -- percent and log types ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "total", "expected"),
    [
        (1, 4, 25.0),
        (0, 0, 0.0),  # GOLIAT sends 0/0 before it knows how many simulations there are
        (5, 0, 0.0),
        (3, -2, 0.0),
        (7, 5, 100.0),
        (-1, 5, 0.0),
    ],
)
def test_percent_is_clamped_and_survives_a_zero_total(current: float, total: float, expected: float) -> None:
    assert percent(current, total) == expected


@pytest.mark.parametrize(
    ("given_type", "stored"), [("warning", "warning"), ("nonsense", "default"), (None, "default")]
)
def test_unknown_log_types_become_default(given_type: str | None, stored: str) -> None:
    result = interpret({"type": "status", "message": "m", "log_type": given_type}, now=NOW)
    assert result.logs == (LogLine("m", stored, NOW),)


# -- interpret ---------------------------------------------------------------------------------


def test_overall_progress_sets_the_percentage() -> None:
    result = interpret({"type": "overall_progress", "current": 3, "total": 12}, now=NOW)
    assert result.changes == {"progress": 25.0}
    assert result.is_progress
    assert not result.keep
    assert result.ending is None


def test_stage_progress_keeps_name_and_sub_stage_only_when_sent() -> None:
    bare = interpret({"type": "stage_progress", "current": 1, "total": 2, "name": ""}, now=NOW)
    assert bare.changes == {"stage_progress": 50.0}
    full = interpret(
        {"type": "stage_progress", "current": 1, "total": 4, "name": "Setup", "sub_stage": None}, now=NOW
    )
    # An explicit null sub_stage clears the old one; a missing key leaves it alone.
    assert full.changes == {"stage_progress": 25.0, "stage": "Setup", "sub_stage": None}
    assert full.is_progress


@pytest.mark.parametrize(("eta", "expected"), [(30.0, NOW + 30.0), (0.0, NOW), (-1.0, None), (None, None)])
def test_profiler_eta_is_absolute_and_a_negative_one_is_unknown(
    eta: float | None, expected: float | None
) -> None:
    result = interpret({"type": "profiler_update", "eta_seconds": eta}, now=NOW)
    assert result.changes == {"eta_at": expected}
    assert not result.is_progress  # a profiler tick alone does not mean the study is running


def test_both_spellings_of_simulation_details_fill_the_same_columns() -> None:
    expected = {"simulation_count": 2, "total_simulations": 9, "current_case": "x_pos"}
    new = interpret(
        {
            "type": "simulation_details",
            "simulation_count": 2,
            "total_simulations": 9,
            "current_case": "x_pos",
        },
        now=NOW,
    )
    old = interpret({"type": "sim_details", "count": 2, "total": 9, "details": "x_pos"}, now=NOW)
    for result in (new, old):
        assert result.changes == expected
        assert result.is_progress
        assert result.keep


def test_log_batch_timestamps_fall_back_to_sent_at_then_to_now() -> None:
    message = {
        "type": "log_batch",
        "sequence": 7,
        "logs": [
            {"message": "own", "log_type": "info", "timestamp": 5.0},
            {"message": "sender's", "log_type": "bogus"},
        ],
    }
    sent = interpret(message, now=NOW, sent_at=900.0)
    assert sent.logs == (LogLine("own", "info", 5.0), LogLine("sender's", "default", 900.0))
    assert sent.sequence == 7
    assert not sent.keep  # stored in log_lines, not again as a raw message
    unsent = interpret(message, now=NOW)
    assert unsent.logs[1].timestamp == NOW


def test_log_batch_keeps_the_order_of_its_lines() -> None:
    lines = [{"message": str(n), "log_type": "info", "timestamp": 1.0} for n in range(50)]
    result = interpret({"type": "log_batch", "logs": lines}, now=NOW)
    assert [line.message for line in result.logs] == [str(n) for n in range(50)]
    assert result.sequence is None


@pytest.mark.parametrize(
    ("message", "failed"),
    [
        ({"type": "finished", "message": "Study finished successfully"}, False),
        ({"type": "finished"}, False),
        ({"type": "finished", "exit_code": 0}, False),
        ({"type": "finished", "message": FAILED_STUDY_MESSAGE}, True),
        ({"type": "finished", "message": FAILED_STUDY_MESSAGE, "exit_code": 0}, True),
        ({"type": "finished", "message": "done", "exit_code": 3}, True),
    ],
)
def test_finished_fails_on_the_failure_text_or_a_nonzero_exit(message: dict[str, Any], failed: bool) -> None:
    result = interpret(message, now=NOW)
    assert result.ending is not None
    assert result.ending.failed is failed
    assert result.ending.message == message.get("message")
    assert result.keep


def test_memory_error_without_exit_code_is_out_of_memory() -> None:
    result = interpret({"type": "memory_error", "message": "CUDA out of memory"}, now=NOW)
    assert result.ending == Ending(True, "CUDA out of memory", EXIT_CODE_OUT_OF_MEMORY)
    assert result.ending.out_of_memory


def test_fatal_error_keeps_its_own_exit_code_and_is_not_out_of_memory() -> None:
    fatal = interpret({"type": "fatal_error", "message": "boom"}, now=NOW)
    assert fatal.ending == Ending(True, "boom", None)
    assert not fatal.ending.out_of_memory
    coded = interpret({"type": "memory_error", "message": "m", "exit_code": 9}, now=NOW)
    assert coded.ending is not None
    assert coded.ending.exit_code == 9


def test_unknown_messages_are_kept_and_change_nothing() -> None:
    assert interpret({"type": "something_new", "x": 1}, now=NOW) == Interpretation(keep=True)


def test_count_logs_counts_highlight_as_warning_and_fatal_as_error() -> None:
    lines = tuple(LogLine("m", t, 0.0) for t in ("warning", "highlight", "error", "fatal", "fatal", "info"))
    assert count_logs(lines) == (2, 3)
    assert count_logs(()) == (0, 0)


# -- status and run restarts -------------------------------------------------------------------


def test_progress_right_after_finished_is_a_straggler_not_a_new_run() -> None:
    assert reopens_run(finished_at=None, now=NOW, grace_s=5.0)
    assert not reopens_run(finished_at=NOW - 2.0, now=NOW, grace_s=5.0)
    assert not reopens_run(finished_at=NOW - 5.0, now=NOW, grace_s=5.0)
    assert reopens_run(finished_at=NOW - 5.01, now=NOW, grace_s=5.0)


PROGRESS = Interpretation({"progress": 1.0}, is_progress=True)
LOGS = Interpretation(logs=(LogLine("m", "info", 0.0),))


@pytest.mark.parametrize(
    ("current", "result", "reopen", "expected"),
    [
        (WorkerStatus.RUNNING, Interpretation(ending=Ending(True, None, 1)), True, WorkerStatus.ERROR),
        (WorkerStatus.RUNNING, Interpretation(ending=Ending(False, None, 0)), True, WorkerStatus.IDLE),
        (WorkerStatus.OFFLINE, Interpretation(ending=Ending(False, None, None)), False, WorkerStatus.IDLE),
        (WorkerStatus.IDLE, PROGRESS, True, WorkerStatus.RUNNING),
        (WorkerStatus.ERROR, PROGRESS, True, WorkerStatus.RUNNING),
        (WorkerStatus.IDLE, PROGRESS, False, WorkerStatus.IDLE),  # a straggler does not reopen the run
        (WorkerStatus.ERROR, PROGRESS, False, WorkerStatus.ERROR),
        (WorkerStatus.OFFLINE, LOGS, False, WorkerStatus.IDLE),  # any message shows it is back
        (WorkerStatus.OFFLINE, PROGRESS, True, WorkerStatus.RUNNING),
        (WorkerStatus.RUNNING, LOGS, True, WorkerStatus.RUNNING),
        (WorkerStatus.ERROR, LOGS, True, WorkerStatus.ERROR),
    ],
)
def test_status_after(current: str, result: Interpretation, reopen: bool, expected: str) -> None:
    assert status_after(current, result, reopen=reopen) == expected


# -- liveness ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "expected"),
    [(None, 30.0), (2.0, 30.0), (30.0, 50.0), (100.0, 155.0), (10_000.0, 905.0)],
)
def test_offline_after_stretches_for_slow_heartbeats_up_to_a_cap(
    interval: float | None, expected: float
) -> None:
    assert offline_after(configured_s=30.0, heartbeat_interval_s=interval) == expected


def test_is_online_up_to_and_including_the_limit() -> None:
    assert is_online(last_seen=NOW - 30.0, now=NOW, configured_s=30.0, heartbeat_interval_s=None)
    assert not is_online(last_seen=NOW - 30.1, now=NOW, configured_s=30.0, heartbeat_interval_s=None)
    assert is_online(last_seen=NOW - 50.0, now=NOW, configured_s=30.0, heartbeat_interval_s=30.0)


def test_progress_types_are_the_ones_interpret_marks_as_progress() -> None:
    samples: dict[str, dict[str, Any]] = {
        "overall_progress": {"current": 1, "total": 2},
        "stage_progress": {"current": 1, "total": 2},
        "simulation_details": {},
        "sim_details": {},
        "profiler_update": {},
        "log_batch": {"logs": []},
        "status": {"message": "m"},
        "finished": {},
    }
    marked = {
        kind for kind, body in samples.items() if interpret({"type": kind, **body}, now=NOW).is_progress
    }
    assert marked == gui_state.PROGRESS_TYPES
