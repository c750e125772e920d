"""GPU-hours and what they cost: pure rules over assignment history, no I/O, `now` passed in.

Definitions (README "GPU-hours and cost" says the same for users):

- An **attempt** is one RUNNING period of an assignment: from the event that made it RUNNING (a
  claim) to the next event that took it out of RUNNING (finished, failed, retried, requeued, lease
  lost, stopped), or to `now` while it still runs. Every attempt counts, failed ones too: the GPU
  ran. One attempt occupies one worker, so its GPU-hours are its duration in hours.
- An **assignment's** GPU-hours are the sum of its attempts; its cost is each attempt's hours at
  the price of the worker that ran it (the worker's own price, else the server's default). The
  current price applies to all past hours: changing a price re-prices the history.
- A **super study's** GPU-hours and cost are the sums over its assignments. Its **projected**
  cost adds what the unfinished assignments still need: a RUNNING one with an ETA for its
  remaining time at its worker's price; the others (PENDING, or RUNNING without an ETA) their
  remaining simulations times the GPU-hours per simulation the study has shown so far, at the
  study's mean price so far. Unknown (None) until some work is done or an ETA is known.
- A **worker** is one session (as in the API): its online time runs from its first message
  (`created_at`) to its last (`last_seen`), or to `now` while it is online. A machine silent
  for longer than the offline time comes back as a new session whose hours start at zero (its
  earlier sessions keep theirs, and the studies' costs keep all of them). Its busy hours
  (`gpuHours`) are the union of the attempts it ran within that window; its idle hours the
  rest of the window. Gaps between messages shorter than the offline time count as online:
  the approximation is as coarse as the heartbeat (GOLIAT's bridge beats every 30 s when idle).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from goliat_monitor.domain.models import AssignmentStatus

HOUR_S = 3600.0
RUNNING = AssignmentStatus.RUNNING


@dataclass(frozen=True)
class Transition:
    """One line of an assignment's history (an `assignment_events` row)."""

    assignment_id: str
    at: float
    from_status: str | None
    to_status: str
    worker_id: str | None


def opens(transition: Transition) -> bool:
    return transition.to_status == RUNNING and transition.from_status != RUNNING


def closes(transition: Transition) -> bool:
    """Out of RUNNING; a stop request (RUNNING -> RUNNING) does not end the attempt."""
    return transition.from_status == RUNNING and transition.to_status != RUNNING


@dataclass(frozen=True)
class Attempt:
    assignment_id: str
    worker_id: str | None
    started_at: float
    ended_at: float

    @property
    def hours(self) -> float:
        return max(0.0, self.ended_at - self.started_at) / HOUR_S


def attempts(
    transitions: Iterable[Transition], *, running: Mapping[str, str | None], now: float
) -> list[Attempt]:
    """The attempts a history describes, transitions given oldest first.

    `running` maps each assignment that is RUNNING now to its worker: its open attempt ends at
    `now`. An attempt still open in the history of an assignment that is no longer RUNNING has
    lost its ending and is left out; so is an ending without a start.
    """
    open_: dict[str, Transition] = {}
    out: list[Attempt] = []
    for transition in transitions:
        started = open_.get(transition.assignment_id)
        if opens(transition):
            open_[transition.assignment_id] = transition
        elif closes(transition) and started is not None:
            del open_[transition.assignment_id]
            out.append(Attempt(transition.assignment_id, started.worker_id, started.at, transition.at))
    for assignment_id, started in open_.items():
        if assignment_id in running:
            worker = running[assignment_id] or started.worker_id
            out.append(Attempt(assignment_id, worker, started.at, max(started.at, now)))
    return out


def price_of(worker_id: str | None, prices: Mapping[str, float | None], default: float) -> float:
    own = prices.get(worker_id) if worker_id is not None else None
    return default if own is None else own


@dataclass(frozen=True)
class Pricing:
    """The server's default price per hour and the currency every figure is in."""

    default_price: float = 0.0
    currency: str = "USD"


# -- super studies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Work:
    """What an assignment still has to do (its row)."""

    assignment_id: str
    status: str
    size: int
    progress: float
    eta_at: float | None
    worker_id: str | None


@dataclass(frozen=True)
class Cost:
    gpu_hours: float
    cost: float
    projected_cost: float | None


@dataclass(frozen=True)
class StudyCost:
    total: Cost
    assignments: dict[str, Cost]


UNFINISHED = frozenset({AssignmentStatus.PENDING, AssignmentStatus.RUNNING})


def study_cost(
    work: Sequence[Work],
    history: Iterable[Attempt],
    *,
    prices: Mapping[str, float | None],
    default_price: float,
    now: float,
) -> StudyCost:
    """Spent and projected GPU-hours and cost of a study's assignments (see the module's rules)."""
    hours: dict[str, float] = {item.assignment_id: 0.0 for item in work}
    cost: dict[str, float] = dict(hours)
    for attempt in history:
        if attempt.assignment_id in hours:
            hours[attempt.assignment_id] += attempt.hours
            cost[attempt.assignment_id] += attempt.hours * price_of(attempt.worker_id, prices, default_price)
    spent_hours = sum(hours.values())
    spent_cost = sum(cost.values())
    done = 0.0
    for item in work:
        if item.status == AssignmentStatus.COMPLETED:
            done += max(item.size, 1)
        elif item.status in UNFINISHED:
            done += max(item.size, 1) * _fraction(item.progress)
    hours_per_simulation = spent_hours / done if done > 0 and spent_hours > 0 else None
    mean_price = spent_cost / spent_hours if spent_hours > 0 else default_price

    per: dict[str, Cost] = {}
    projected_total: float | None = spent_cost
    for item in work:
        spent = cost[item.assignment_id]
        projected: float | None = spent
        if item.status in UNFINISHED:
            remaining = _remaining_hours(item, hours_per_simulation, now)
            if remaining is None:
                projected = None
            else:
                running = item.status == RUNNING
                price = price_of(item.worker_id, prices, default_price) if running else mean_price
                projected = spent + remaining * price
        per[item.assignment_id] = Cost(hours[item.assignment_id], spent, projected)
        if projected is None:
            projected_total = None
        elif projected_total is not None:
            projected_total += projected - spent
    return StudyCost(Cost(spent_hours, spent_cost, projected_total), per)


def _fraction(progress: float) -> float:
    return max(0.0, min(100.0, progress)) / 100.0


def _remaining_hours(item: Work, hours_per_simulation: float | None, now: float) -> float | None:
    if item.status == RUNNING and item.eta_at is not None:
        return max(0.0, item.eta_at - now) / HOUR_S
    if hours_per_simulation is None:
        return None
    return max(item.size, 1) * (1.0 - _fraction(item.progress)) * hours_per_simulation


# -- workers -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerCost:
    gpu_hours: float
    cost: float
    idle_hours: float
    idle_cost: float


def busy_intervals(
    transitions: Iterable[Transition],
    *,
    window: tuple[float, float],
    holding: Iterable[str] = (),
) -> list[tuple[float, float]]:
    """The periods one session ran assignments, from the transitions it took part in.

    A session's history can start or end mid-attempt: a machine that comes back after being
    offline gets a new session and its RUNNING assignments move to it without an event. So an
    ending without a start here began when the session did, a start without an ending lasts until
    the session's end, and an assignment it holds now without any event of its own ran the whole
    window. Everything is clipped to `window` (the session's online time).
    """
    start, end = window
    open_: dict[str, float] = {}
    seen: set[str] = set()
    out: list[tuple[float, float]] = []
    for transition in transitions:
        seen.add(transition.assignment_id)
        if opens(transition):
            open_[transition.assignment_id] = transition.at
        elif closes(transition):
            out.append((open_.pop(transition.assignment_id, start), transition.at))
    out.extend((began, end) for began in open_.values())
    out.extend((start, end) for assignment_id in holding if assignment_id not in seen)
    return [(max(a, start), min(b, end)) for a, b in out if min(b, end) > max(a, start)]


def union_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """Length of the union of intervals: a worker running two pieces at once is busy once."""
    total = 0.0
    reach = -float("inf")
    for a, b in sorted(intervals):
        if b <= reach:
            continue
        total += b - max(a, reach)
        reach = b
    return total


def worker_cost(
    *, online: tuple[float, float], busy: Iterable[tuple[float, float]], price: float
) -> WorkerCost:
    """Busy and idle hours of one session's online window, and their cost at `price` per hour."""
    start, end = online
    online_s = max(0.0, end - start)
    clipped = [(max(a, start), min(b, end)) for a, b in busy]
    busy_s = min(online_s, union_seconds((a, b) for a, b in clipped if b > a))
    busy_h = busy_s / HOUR_S
    idle_h = max(0.0, online_s - busy_s) / HOUR_S
    return WorkerCost(busy_h, busy_h * price, idle_h, idle_h * price)
