"""What GOLIAT's Timings and Timings Piecharts tabs and its window title show, from plain numbers.

Pure: the agent parses durations out of GOLIAT's output (`agent/goliat_output.py`) and sends
each as a `timing` message; the server keeps them and computes the views here on read.

A sample is one measured duration of one phase (`subtask` None: the whole phase, GOLIAT's
`--- Finished: setup (took 12.34s) ---`) or of one subtask (`Subtask 'setup_load_phantom'
done in 3.21s`, stored as phase "setup", subtask "load_phantom"). Like GOLIAT's GUI:

* the table shows every phase total (subtask "---") and subtask with mean, median, min, max and
  the 10th, 25th, 75th and 90th percentiles (`percentile`: linear interpolation between the
  closest ranks, numpy's default, which GOLIAT uses);
* the pies weigh each slice by its *mean* duration (GOLIAT's `avg_*` figures): first the
  phases, then the subtasks of setup, run and extract; slices under 3 % of a pie are merged
  into "Others", unless only one is that small (it then keeps its own name);
* both leave out the subtasks that only wrap a whole phase (`AGGREGATE_SUBTASKS`);
* the summary line says `[61%] Sim 23/36 · Running`, GOLIAT's window title made shorter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from goliat_monitor.domain.models import PHASES

__all__ = [
    "AGGREGATE_SUBTASKS",
    "OTHERS_LABEL",
    "SMALL_SLICE_PERCENT",
    "PieChart",
    "Slice",
    "SummaryStatus",
    "TimingRow",
    "TimingSample",
    "percentile",
    "pie_charts",
    "split_task_name",
    "summary_line",
    "summary_status",
    "task_label",
    "timings_table",
]


AGGREGATE_SUBTASKS: frozenset[tuple[str, str]] = frozenset(
    {("setup", "simulation"), ("run", "simulation_total"), ("extract", "results_total")}
)
"""(phase, subtask) pairs that time a whole phase again; GOLIAT's tabs hide them as "fake"."""

SMALL_SLICE_PERCENT = 3.0
OTHERS_LABEL = "Others"
_LABEL_WORDS = {"isolve": "iSolve", "sar": "SAR", "sapd": "SAPD"}


@dataclass(frozen=True, slots=True)
class TimingSample:
    """One measured duration; `subtask` None means the whole phase."""

    phase: str
    subtask: str | None
    seconds: float


@dataclass(frozen=True, slots=True)
class TimingRow:
    """One line of the Timings table; `subtask` None is the phase's own total ("---")."""

    phase: str
    subtask: str | None
    count: int
    mean: float
    median: float
    minimum: float
    maximum: float
    p10: float
    p25: float
    p75: float
    p90: float


@dataclass(frozen=True, slots=True)
class Slice:
    """One pie slice: `key` is the phase or subtask name (`OTHERS_LABEL` for the merged ones)."""

    key: str
    label: str
    seconds: float
    percent: float


@dataclass(frozen=True, slots=True)
class PieChart:
    """A titled pie; no slices means GOLIAT's "No data"."""

    title: str
    slices: tuple[Slice, ...]


class SummaryStatus(StrEnum):
    BOOTING = "Booting"
    RUNNING = "Running"
    FINISHED = "Finished"
    FAILED = "Finished with errors"


def split_task_name(task: str, phase_hint: str | None = None) -> tuple[str, str]:
    """(phase, subtask) of a GOLIAT task name: `run_isolve_execution` -> ("run", "isolve_execution").

    GOLIAT names nearly every task after its phase. A name that does not start with a phase
    (`auto_induced_focus_search`, timed inside extract) belongs to `phase_hint`, the phase that
    was running, and keeps its whole name; GOLIAT's own table would show it as phase "auto".
    """
    head, _, tail = task.partition("_")
    if head in PHASES and tail:
        return head, tail
    return (phase_hint or head), task


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks.

    With the values sorted, rank = q / 100 * (n - 1); the result lies between the values at the
    ranks either side, in proportion (numpy's default method, "linear", Hyndman-Fan type 7).
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0 and 100, not {q}")
    ordered = sorted(values)
    rank = q / 100.0 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _row(phase: str, subtask: str | None, values: list[float]) -> TimingRow:
    return TimingRow(
        phase=phase,
        subtask=subtask,
        count=len(values),
        mean=math.fsum(values) / len(values),
        median=percentile(values, 50),
        minimum=min(values),
        maximum=max(values),
        p10=percentile(values, 10),
        p25=percentile(values, 25),
        p75=percentile(values, 75),
        p90=percentile(values, 90),
    )


def _grouped(samples: Iterable[TimingSample]) -> dict[tuple[str, str | None], list[float]]:
    """Durations by (phase, subtask) in first-seen order, without GOLIAT's aggregate subtasks."""
    groups: dict[tuple[str, str | None], list[float]] = {}
    for sample in samples:
        key = (sample.phase, sample.subtask)
        if sample.subtask is not None and key in AGGREGATE_SUBTASKS:
            continue
        groups.setdefault(key, []).append(sample.seconds)
    return groups


def _phase_order(phase: str) -> int:
    return PHASES.index(phase) if phase in PHASES else len(PHASES)


def timings_table(samples: Iterable[TimingSample]) -> list[TimingRow]:
    """The Timings tab: per phase its total first, then its subtasks in the order first seen.

    Phases come in GOLIAT's order (setup, run, extract), then any other in the order first seen.
    """
    groups = _grouped(samples)
    phases = sorted(dict.fromkeys(phase for phase, _ in groups), key=_phase_order)
    rows: list[TimingRow] = []
    for phase in phases:
        if (phase, None) in groups:
            rows.append(_row(phase, None, groups[phase, None]))
        rows.extend(
            _row(phase, subtask, values)
            for (owner, subtask), values in groups.items()
            if owner == phase and subtask is not None
        )
    return rows


def task_label(name: str) -> str:
    """A subtask name as GOLIAT's pies label it: `isolve_execution` -> "iSolve Execution"."""
    return " ".join(_LABEL_WORDS.get(word.lower(), word.capitalize()) for word in name.split("_") if word)


def _slices(weights: dict[str, float], labels: dict[str, str]) -> tuple[Slice, ...]:
    """Slices in the given order, those under `SMALL_SLICE_PERCENT` merged at the end."""
    total = math.fsum(weights.values())
    if total <= 0:
        return ()
    threshold = total * SMALL_SLICE_PERCENT / 100.0
    large = [(key, size) for key, size in weights.items() if size >= threshold]
    small = [(key, size) for key, size in weights.items() if size < threshold]
    kept = [Slice(key, labels[key], size, 100.0 * size / total) for key, size in large]
    if len(small) == 1:
        key, size = small[0]
        kept.append(Slice(key, labels[key], size, 100.0 * size / total))
    elif small:
        size = math.fsum(size for _, size in small)
        kept.append(Slice(OTHERS_LABEL, OTHERS_LABEL, size, 100.0 * size / total))
    return tuple(kept)


def pie_charts(samples: Iterable[TimingSample]) -> list[PieChart]:
    """The Timings Piecharts tab: "Phase Weights", then "Setup/Run/Extract Subtasks".

    Each slice weighs the mean duration of its phase or subtask, as GOLIAT's pies do.
    """
    groups = _grouped(samples)

    def mean(values: list[float]) -> float:
        return math.fsum(values) / len(values)

    phase_means = {p: mean(groups[p, None]) for p in PHASES if (p, None) in groups}
    charts = [PieChart("Phase Weights", _slices(phase_means, {p: p.capitalize() for p in phase_means}))]
    for phase in PHASES:
        means = {sub: mean(v) for (owner, sub), v in groups.items() if owner == phase and sub is not None}
        labels = {sub: task_label(sub) for sub in means}
        charts.append(PieChart(f"{phase.capitalize()} Subtasks", _slices(means, labels)))
    return charts


def summary_status(
    *, progress: float | None, simulation_count: int | None, finished: bool, failed: bool
) -> SummaryStatus:
    """GOLIAT's title status: finished (with or without errors), running once anything moved, else booting."""
    if finished:
        return SummaryStatus.FAILED if failed else SummaryStatus.FINISHED
    if (progress or 0) > 0 or (simulation_count or 0) > 0:
        return SummaryStatus.RUNNING
    return SummaryStatus.BOOTING


def summary_line(
    *,
    progress: float | None,
    simulation_count: int | None,
    total_simulations: int | None,
    finished: bool = False,
    failed: bool = False,
) -> str:
    """`[61%] Sim 23/36 · Running`, from the worker's progress (0-100) and simulation counter.

    The percentage is rounded down, so 100 % shows only when the study is done; the simulation
    part is left out until GOLIAT says how many there are, as in its window title.
    """
    value = 0.0 if progress is None or not math.isfinite(progress) else max(0.0, min(100.0, progress))
    parts = [f"[{math.floor(value)}%]"]
    if total_simulations:
        parts.append(f"Sim {simulation_count or 0}/{total_simulations}")
    status = summary_status(
        progress=progress, simulation_count=simulation_count, finished=finished, failed=failed
    )
    return f"{' '.join(parts)} · {status.value}"
