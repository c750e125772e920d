"""When will a super study finish? Estimated from its observed throughput, pure and clock-free."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from goliat_monitor.domain.models import AssignmentStatus


@dataclass(frozen=True)
class AssignmentTiming:
    status: str
    size: int
    progress: float
    started_at: float | None
    eta_at: float | None


@dataclass(frozen=True)
class StudyEta:
    eta_seconds: float | None
    finish_at: float | None
    simulations_per_hour: float | None
    remaining_simulations: float


def estimate_study(assignments: Iterable[AssignmentTiming], *, now: float) -> StudyEta:
    """Remaining work divided by the work done per second so far, across all workers.

    Work is counted in simulations (an assignment's size times its progress), so a study whose
    pieces differ in size is not misjudged. The result is never earlier than the latest ETA a
    running assignment reports for itself: the study cannot end before its slowest piece.
    """
    items = list(assignments)
    done = 0.0
    remaining = 0.0
    first_start: float | None = None
    latest_running_eta: float | None = None
    for item in items:
        size = max(item.size, 1)
        if item.status == AssignmentStatus.COMPLETED:
            done += size
        elif item.status in (AssignmentStatus.RUNNING, AssignmentStatus.PENDING):
            fraction = max(0.0, min(100.0, item.progress)) / 100.0
            done += size * fraction
            remaining += size * (1.0 - fraction)
        if item.started_at is not None:
            first_start = item.started_at if first_start is None else min(first_start, item.started_at)
        if item.status == AssignmentStatus.RUNNING and item.eta_at is not None:
            latest_running_eta = (
                item.eta_at if latest_running_eta is None else max(latest_running_eta, item.eta_at)
            )
    if remaining <= 0:
        return StudyEta(0.0 if items else None, now if items else None, None, 0.0)
    rate = None
    if first_start is not None and now > first_start and done > 0:
        rate = done / (now - first_start)
    finish: float | None = None
    if rate:
        finish = now + remaining / rate
    if latest_running_eta is not None:
        finish = latest_running_eta if finish is None else max(finish, latest_running_eta)
    return StudyEta(
        eta_seconds=None if finish is None else max(0.0, finish - now),
        finish_at=finish,
        simulations_per_hour=None if rate is None else rate * 3600.0,
        remaining_simulations=remaining,
    )
