"""GOLIAT's progress and ETA arithmetic, applied to what the output parser has seen of a study.

`goliat_output.GoliatOutputParser` keeps a `StudyState` up to date from GOLIAT's lines;
`ProgressModel` turns that state into overall progress and an ETA the way GOLIAT's profiler
does, so the numbers match what GOLIAT's own GUI would show. Pure: `now` is passed in.

Faithfulness
------------
Progress and ETA follow `goliat/profiler.py`: overall = (completed simulations + weighted
fraction of the current one) / total, where each phase (setup, run, extract) is weighted by its
average duration, and ETA = time left in the current phase + later phases of this simulation +
remaining simulations x (sum of phase estimates), with GOLIAT's recency-weighted estimate (last
three runs weighted 0.2/0.3/0.5 and 70 %, older ones 30 %) and its 60 s default. Differences:

* GOLIAT takes phase weights and first estimates from `profiling_config.json` history, which is
  never printed; we use the durations printed in this run (`--- Finished: x (took Ns) ---`, else
  the top-level `Done in`), or the parser's `phase_estimates` if the caller has them. A phase never observed
  is weighted like the average observed one (equal weights before any observation).
* GOLIAT animates the stage bar over the estimate; we use elapsed / estimate (at most 1), or the
  solver's own percentage and remaining time during the run phase when iSolve prints them.
* A cached setup (no `Setup simulation` subtask) is left out of the estimates, as in GOLIAT.
* Overall progress never goes backwards within a study (GOLIAT's can, when weights shift), and
  reaches 100 only when every simulation finished; GOLIAT's bridge sends 100 even after a fatal
  error. GOLIAT also sends an ETA of 0 after every phase (its profiler has no current phase
  then); we do not copy that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["DEFAULT_PHASE_SECONDS", "PhaseRun", "ProgressModel", "StudyState"]

DEFAULT_PHASE_SECONDS = 60.0
"""GOLIAT's estimate for a phase it has no timing for (`Profiler._get_smart_phase_estimate`)."""


@dataclass(slots=True)
class PhaseRun:
    """One phase of one simulation as seen so far."""

    name: str
    started: float
    real: bool = True  # False for a setup that found its project cached (no setup subtask)
    subtask: str | None = None
    subtask_seconds: float = 0.0
    done: bool = False  # its top-level subtask finished: the phase is as good as over
    took: float | None = None  # GOLIAT's own measurement from `--- Finished: x (took Ns) ---`


@dataclass(slots=True)
class StudyState:
    """Everything learnt about the study that is running."""

    total: int | None = None
    index: int = 0  # 1-based number of the simulation being processed, 0 before the first
    completed: int = 0
    case: str = ""
    phase: PhaseRun | None = None  # active or last phase of the current simulation
    failed: bool = False  # a fatal error was printed for the current simulation
    finished: bool = False
    isolve_percent: float | None = None
    isolve_remaining: float | None = None
    isolve_at: float = 0.0
    floor: float = 0.0  # overall progress never goes below what was already reported
    durations: dict[str, list[float]] = field(default_factory=dict)


class ProgressModel:
    """Overall progress and ETA of a study from its state, weighted like GOLIAT's profiler.

    `phases` are the phases the config enables, in GOLIAT's order; `priors` are durations in
    seconds to assume for a phase before this run has timed one.
    """

    def __init__(self, phases: tuple[str, ...], priors: Mapping[str, float]) -> None:
        self.phases = phases
        self._priors = dict(priors)

    def phase_estimate(self, study: StudyState, phase: str) -> float:
        """Seconds one `phase` is expected to take, GOLIAT's recency-weighted way."""
        times = study.durations.get(phase, [])
        if not times:
            return self._priors.get(phase, DEFAULT_PHASE_SECONDS)
        if len(times) == 1:
            return times[0]
        if len(times) == 2:
            return times[0] * 0.6 + times[1] * 0.4  # sic: GOLIAT weights the older run more
        last3 = times[-3:]
        weights = (0.2, 0.3, 0.5)
        older = times[:-3]
        if not older:
            return sum(t * w for t, w in zip(last3, weights, strict=True))
        recent = sum(t * w * 0.7 for t, w in zip(last3, weights, strict=True))
        return recent + 0.3 * sum(older) / len(older)

    def overall_percent(self, study: StudyState, now: float) -> float | None:
        """Overall progress 0-100, None while the number of simulations is unknown."""
        s = study
        if not s.total:
            return None
        if s.finished and s.completed >= s.total:
            return 100.0
        fraction = 0.0 if s.index <= s.completed else self._simulation_fraction(study, now)
        value = 100.0 * (s.completed + fraction) / s.total
        return max(s.floor, min(100.0, value))

    def eta_seconds(self, study: StudyState, now: float) -> float | None:
        """Seconds left in the study, None while the number of simulations is unknown."""
        s = study
        if not s.total:
            return None
        if s.finished:
            return 0.0
        per_simulation = sum(self.phase_estimate(study, p) for p in self.phases)
        if s.index == 0:
            return s.total * per_simulation
        if s.index <= s.completed:
            return max(0, s.total - s.completed) * per_simulation
        left_here = self._time_left_in_simulation(study, now, per_simulation)
        later = max(0, s.total - s.completed - 1)
        return max(0.0, left_here + later * per_simulation)

    def phase_ratio(self, study: StudyState, phase: PhaseRun, now: float) -> float:
        """How much of `phase` is done (0-1): the solver's own percentage, else elapsed / estimate."""
        if phase.took is not None or phase.done:
            return 1.0
        if phase.name == "run" and study.isolve_percent is not None:
            return min(1.0, study.isolve_percent / 100.0)
        estimate = self.phase_estimate(study, phase.name)
        return min(1.0, max(0.0, (now - phase.started) / estimate)) if estimate > 0 else 1.0

    def _weights(self, study: StudyState) -> dict[str, float]:
        """Each enabled phase's share of one simulation, from mean durations (GOLIAT's weights)."""
        means: dict[str, float] = {}
        for p in self.phases:
            times = study.durations.get(p)
            if times:
                means[p] = sum(times) / len(times)
            elif p in self._priors:
                means[p] = self._priors[p]
        if not means:
            return {p: 1.0 / len(self.phases) for p in self.phases} if self.phases else {}
        fill = sum(means.values()) / len(means)
        full = {p: means.get(p, fill) for p in self.phases}
        total = sum(full.values()) or 1.0
        return {p: v / total for p, v in full.items()}

    def _simulation_fraction(self, study: StudyState, now: float) -> float:
        phase = study.phase
        if phase is None or phase.name not in self.phases:
            return 0.0
        weights = self._weights(study)
        before = sum(weights[p] for p in self.phases[: self.phases.index(phase.name)])
        return min(1.0, before + weights[phase.name] * self.phase_ratio(study, phase, now))

    def _time_left_in_simulation(self, study: StudyState, now: float, per_simulation: float) -> float:
        phase = study.phase
        if phase is None or phase.name not in self.phases:
            return per_simulation
        later = sum(self.phase_estimate(study, p) for p in self.phases[self.phases.index(phase.name) + 1 :])
        if phase.took is not None or phase.done:
            return later
        if phase.name == "run" and study.isolve_remaining is not None:
            left = max(0.0, study.isolve_remaining - (now - study.isolve_at))
        else:
            left = self.phase_estimate(study, phase.name) * (1.0 - self.phase_ratio(study, phase, now))
        return left + later
