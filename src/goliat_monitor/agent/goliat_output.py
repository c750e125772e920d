"""Turn what an unmodified `goliat study` prints into the messages GOLIAT's GUI would have sent.

A plain `goliat study` cannot be pointed at our server (its GUI hard-codes the public dashboard),
so the agent watches its output instead. `GoliatOutputParser.feed(line, now)` takes one line of
that output and returns plain dicts shaped like GOLIAT's GUI queue messages
(`status`, `terminal_only`, `overall_progress`, `stage_progress`, `simulation_details`,
`profiler_update`; see docs/goliat-protocol.md), plus our own `timing` message (one measured
duration, for the Timings tabs GOLIAT's GUI draws and never sends). It does no I/O and never reads the
clock: `now` is passed in, so the same input always gives the same output. `tick(now)` refreshes
progress and ETA while GOLIAT is silent (a long setup or solver run prints little).

Feed one stream per parser: the console (stdout and stderr merged), or `logs/<ts>.progress.log`.
Console lines keep more detail (phase headers, timings, solver progress), so prefer them.

How a single line is read (colours, caller suffix, file prefix, level) is `goliat_lines`; how
progress and ETA are computed from the state kept here is `goliat_progress`. This module is the
state machine between them: which lines start and end studies, simulations and phases, and the
messages each one implies.

Structure -> protocol messages
------------------------------

    =====================================================  =====================================
    `--- Starting Far-Field Study: cfg.json ---`           new study: all state reset
    `--- Processing Simulation 3/36: <case> ---`           simulation_details (3, 36, case);
                                                           simulations 1-2 count as done
    `--- Starting: setup ---` (run, extract)               stage_progress ("Setup", 0, 1)
    `  - Setup simulation...` (`Run simulation total`,     stage_progress (phase, 0, 1,
    `Extract results total`): GOLIAT's top-level subtasks  sub_stage); starts the phase when no
                                                           header was seen (progress.log)
    `    - Done in 37.61s` (4 spaces: top-level subtask)   stage_progress (phase, 1, 1)
    `--- Finished: run (took 100.66s) ---`                 stage_progress ("Running Simulation",
                                                           1, 1); duration recorded
    iSolve `[PROGRESS]: 41% [ 1192 / 2853 ] Time Update,   stage_progress ("Run", 41, 100);
    estimated remaining time 19 seconds @ ... MCells/s`,   run-phase fraction and remaining time
    or GOLIAT's `      - FDTD: 33% (0:05:12 remaining ...)`
    `--- FarFieldStudy Finished ---`                       current simulation done (unless a
                                                           fatal error was printed); progress
                                                           100 if all are done, ETA 0
    =====================================================  =====================================

Timings -> `timing` messages (`protocol.TimingSample`; `domain/timings.py` turns them into
GOLIAT's Timings table and pies). GOLIAT's profiler times each phase and subtask; its GUI keeps
the durations and never sends them, but its log records print them::

    --- Finished: setup (took 104.53s) ---            {phase: setup, subtask: None, seconds}
    `    - Subtask 'setup_simulation' done in 98.10s`   {phase: setup, subtask: simulation, ...}
    `      - Subtask 'run_isolve_execution' done in 812.40s`  (nested subtasks: 6 spaces)

  Subtask records are verbose level: on the console and in `logs/<ts>.log` or a simulation's
  `verbose.log`, never in a `*.progress.log`; from there only phase durations come (each from
  its `Finished` header, else its top-level `Done in`). A task name is split at its phase
  (`split_task_name`); a cached setup's duration is left out, as GOLIAT leaves it out.
  `simulation` is the 1-based simulation number when known.

`overall_progress` (as `{current: percent, total: 100}`, like the GUI's periodic sync) and
`profiler_update` (`eta_seconds`) follow each of those events and every `tick`.
`status` / `terminal_only` messages carry `timestamp: now`, as GOLIAT's queue messages do.
`finished` is not emitted: only the process exit code tells success, out of memory (42) or
failure, and the runner that owns the process sends it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from goliat_monitor.agent.goliat_lines import STUDY_END, Line, LineDecoder
from goliat_monitor.agent.goliat_progress import PhaseRun, ProgressModel, StudyState
from goliat_monitor.domain.models import PHASES
from goliat_monitor.domain.timings import split_task_name

__all__ = ["GoliatOutputParser", "Messages"]

Messages = list[dict[str, Any]]
"""Protocol messages as plain dicts, in the order GOLIAT would have sent them."""

# Stage names GOLIAT's study sends when a phase ends (`update_stage_progress(..., 1, 1)`).
_PHASE_DONE_NAME = {"setup": "Setup", "run": "Running Simulation", "extract": "Extracting Results"}

_STUDY_START = re.compile(r"^--- Starting (Far-Field|Near-Field) Study: (.*) ---$")
_PROCESSING = re.compile(r"^--- Processing Simulation (\d+)/(\d+): (.*) ---$")
_PHASE_START = re.compile(r"^--- Starting: (setup|run|extract) ---$")
_PHASE_END = re.compile(r"^--- Finished: (setup|run|extract) \(took ([\d.]+)s\) ---$")
_TOP_SUBTASK = re.compile(r"^  - (Setup simulation|Run simulation total|Extract results[^.]*)\.\.\.$")
_TOP_DONE = re.compile(r"^    - Done in ([\d.]+)s$")
_SUBTASK_DONE = re.compile(r"^- Subtask '([^']+)' done in ([\d.]+)s$")
_ISOLVE_PROGRESS = re.compile(
    r"\[PROGRESS\]:\s*(\d+)%\s*\[[^\]]*\]\s*Time Update[^@]*"
    r"estimated remaining time\s+([^@]+?)\s+@\s+([\d.]+)\s+MCells/s"
)
_FDTD_MILESTONE = re.compile(r"^\s*- FDTD: (\d+)% \((\d+):(\d{2}):(\d{2}) remaining")
_BOX_BORDER = re.compile(r"^-{70}$")
_BOX_SIMULATION = re.compile(r"^Simulation (\d+)/(\d+) \([\d.]+%\)$")
_BOX_OVERALL = re.compile(r"^Overall Progress: (\d+)/(\d+) \([\d.]+%\)$")
_BOX_STAGE = re.compile(r"^\[SUCCESS\] (.+) Complete$")
_BOX_FATAL = re.compile(r"^FATAL ERROR: (.*)$")
_FATAL_MARKERS = re.compile(
    r"^(--- FATAL ERROR|FATAL ERROR|--- Memory/allocation error detected|--- Process exited with code"
    r"|Max internal retries exceeded)"
)


@dataclass(slots=True)
class _Sent:
    """What was last reported, so unchanged values are not sent again."""

    overall: float | None = None
    eta: float | None = None
    stage: tuple[Any, ...] | None = None


class GoliatOutputParser:
    """Incremental parser of `goliat study` output; the module docstrings give the mapping.

    `phases` are the phases the config enables (`execution_control.do_setup/do_run/do_extract`);
    `phase_estimates` are prior durations in seconds (`avg_setup_time`... from GOLIAT's
    `profiling_config.json`, if the agent has one); `total_simulations` seeds the total before
    GOLIAT prints its first counter. `source="progress_log"` says every record fed is from a
    `*.progress.log` file, hence progress level (`status`) by definition.
    """

    def __init__(
        self,
        *,
        phases: Sequence[str] = PHASES,
        phase_estimates: Mapping[str, float] | None = None,
        total_simulations: int | None = None,
        source: Literal["console", "progress_log"] = "console",
    ) -> None:
        if source not in ("console", "progress_log"):
            raise ValueError(f"source must be 'console' or 'progress_log', not {source!r}")
        unknown = set(phases) - set(PHASES)
        if unknown:
            raise ValueError(f"unknown GOLIAT phases: {sorted(unknown)}")
        self.phases: tuple[str, ...] = tuple(p for p in PHASES if p in phases)
        priors = {p: float(v) for p, v in (phase_estimates or {}).items() if p in PHASES and v > 0}
        self._model = ProgressModel(self.phases, priors)
        self._initial_total = total_simulations
        self._lines = LineDecoder(source)
        self._box: list[Line] | None = None
        self._sent = _Sent()
        self.study = StudyState(total=total_simulations)

    # --- public state ---------------------------------------------------------------------

    @property
    def total_simulations(self) -> int | None:
        return self.study.total

    @property
    def simulation_count(self) -> int:
        """The 1-based number of the simulation GOLIAT is processing (0 before the first)."""
        return self.study.index

    @property
    def completed_simulations(self) -> int:
        return self.study.completed

    @property
    def current_case(self) -> str:
        return self.study.case

    @property
    def current_phase(self) -> str | None:
        """The phase running now, None between phases."""
        phase = self.study.phase
        return phase.name if phase is not None and phase.took is None and not phase.done else None

    @property
    def finished(self) -> bool:
        """GOLIAT printed its `--- XStudy Finished ---` line."""
        return self.study.finished

    @property
    def failed(self) -> bool:
        """A fatal error (or GOLIAT's out-of-memory exit) was printed for the current simulation."""
        return self.study.failed

    def phase_estimate(self, phase: str) -> float:
        """Seconds one `phase` is expected to take, GOLIAT's recency-weighted way."""
        return self._model.phase_estimate(self.study, phase)

    def overall_percent(self, now: float) -> float | None:
        """Overall progress 0-100, None while the number of simulations is unknown."""
        return self._model.overall_percent(self.study, now)

    def eta_seconds(self, now: float) -> float | None:
        """Seconds left in the study, None while the number of simulations is unknown."""
        return self._model.eta_seconds(self.study, now)

    # --- feeding ---------------------------------------------------------------------------

    def feed(self, line: str, now: float) -> Messages:
        """Parse one line (text with several lines is split) and return the messages it implies."""
        out: Messages = []
        for part in _split_lines(line):
            self._feed_one(part, now, out)
        return out

    def tick(self, now: float) -> Messages:
        """Progress, stage and ETA as of `now`, for the quiet stretches; only what changed."""
        out: Messages = []
        phase = self.study.phase
        if phase is not None and self.current_phase is not None and self.study.index > self.study.completed:
            ratio = self._model.phase_ratio(self.study, phase, now)
            self._stage(out, phase.name.capitalize(), round(ratio * 100), 100, phase.subtask)
        self._progress(out, now)
        return out

    # --- one line ---------------------------------------------------------------------------

    def _feed_one(self, raw: str, now: float, out: Messages) -> None:
        decoded = self._lines.decode(raw)
        if self._box is not None or _BOX_BORDER.match(decoded.text.strip()):
            self._feed_box(decoded, now, out)
        elif decoded.text.strip():
            self._emit_line(decoded, now, out)

    def _emit_line(self, line: Line, now: float, out: Messages) -> None:
        """The line itself as `status` / `terminal_only`, then whatever its text implies."""
        text = line.text
        kind = "status" if line.is_record and self._lines.level(line) == "progress" else "terminal_only"
        out.append({"type": kind, "message": text, "log_type": line.log_type, "timestamp": now})
        self._interpret(text.strip(), text, line.log_type, now, out)

    # --- console-mode boxes -----------------------------------------------------------------

    def _feed_box(self, line: Line, now: float, out: Messages) -> None:
        """Collect a ConsoleLogger box and act on it once its closing border arrives."""
        if _BOX_BORDER.match(line.text.strip()):
            if self._box is None:
                self._box = []
            else:
                content, self._box = self._box, None
                self._apply_box([c.text.strip() for c in content if c.text.strip()], now, out)
            return
        assert self._box is not None
        self._box.append(line)
        if len(self._box) > 4:  # not a box after all: let the held lines through
            held, self._box = self._box, None
            for item in held:
                if item.text.strip():
                    self._emit_line(item, now, out)

    def _apply_box(self, content: list[str], now: float, out: Messages) -> None:
        if not content:
            return
        first = content[0]
        if m := _BOX_SIMULATION.match(first):
            index, total = int(m.group(1)), int(m.group(2))
            case = content[1] if len(content) > 1 else self.study.case
            if index != self.study.index or total != self.study.total:
                self._start_simulation(index, total, case, now, out)
            elif case != self.study.case:
                self.study.case = case
                self._simulation_details(out)
        elif m := _BOX_OVERALL.match(first):
            done, total = int(m.group(1)), int(m.group(2))
            self.study.total = total
            if done >= self.study.completed:
                self._close_phase(out)
                self.study.completed = min(done, total)
            self._progress(out, now)
        elif m := _BOX_STAGE.match(first):
            self._stage(out, m.group(1), 1, 1, None)
        elif m := _BOX_FATAL.match(first):
            self.study.failed = True
            out.append({"type": "status", "message": first, "log_type": "fatal", "timestamp": now})

    # --- meaning ----------------------------------------------------------------------------

    def _interpret(self, s: str, text: str, log_type: str, now: float, out: Messages) -> None:
        """Update the study state from one line's text and add the messages that follow."""
        study = self.study
        if _STUDY_START.match(s):
            self._reset()
            return
        if m := _PROCESSING.match(s):
            self._start_simulation(int(m.group(1)), int(m.group(2)), m.group(3), now, out)
            return
        if m := _PHASE_START.match(s):
            self._start_phase(m.group(1), now, out, real=m.group(1) != "setup")
            return
        if m := _PHASE_END.match(s):
            self._end_phase(m.group(1), float(m.group(2)), now, out)
            return
        if m := _TOP_SUBTASK.match(text):
            self._start_subtask(m.group(1), now, out)
            return
        if m := _TOP_DONE.match(text):
            phase = study.phase
            if phase is not None and phase.subtask is not None and phase.took is None:
                phase.subtask_seconds += float(m.group(1))
                phase.done = True
                self._stage(out, phase.name.capitalize(), 1, 1, None)
                self._progress(out, now)
            return
        if m := _SUBTASK_DONE.match(s):
            self._subtask_timing(m.group(1), float(m.group(2)), out)
            return
        if m := _ISOLVE_PROGRESS.search(s):
            self._solver_progress(int(m.group(1)), _parse_duration(m.group(2)), now, out)
            return
        if m := _FDTD_MILESTONE.match(text):
            seconds = int(m.group(2)) * 3600 + int(m.group(3)) * 60 + int(m.group(4))
            self._solver_progress(int(m.group(1)), float(seconds), now, out)
            return
        if m := STUDY_END.match(s):
            self._finish(now, out)
            return
        if _FATAL_MARKERS.match(s) or log_type == "fatal":
            study.failed = True

    def _reset(self) -> None:
        """A new study: estimates restart too, like GOLIAT's per-process profiler."""
        self.study = StudyState(total=self._initial_total)
        self._sent = _Sent()

    def _start_simulation(self, index: int, total: int, case: str, now: float, out: Messages) -> None:
        study = self.study
        if study.finished:
            self._reset()
            study = self.study
        self._close_phase(out)
        study.total = total
        if index > study.index:
            study.completed = max(study.completed, index - 1)
        study.index = index
        study.case = case
        study.phase = None
        study.failed = False
        study.isolve_percent = study.isolve_remaining = None
        self._simulation_details(out)
        self._progress(out, now)

    def _simulation_details(self, out: Messages) -> None:
        s = self.study
        out.append(
            {
                "type": "simulation_details",
                "simulation_count": s.index,
                "total_simulations": s.total or 0,
                "current_case": s.case,
            }
        )

    def _start_phase(self, name: str, now: float, out: Messages, *, real: bool) -> None:
        self._close_phase(out)
        self.study.phase = PhaseRun(name=name, started=now, real=real)
        self.study.isolve_percent = self.study.isolve_remaining = None
        self._stage(out, name.capitalize(), 0, 1, None)
        self._progress(out, now)

    def _start_subtask(self, label: str, now: float, out: Messages) -> None:
        name = "setup" if label.startswith("Setup") else "run" if label.startswith("Run") else "extract"
        phase = self.study.phase
        if phase is None or phase.name != name or phase.took is not None:
            self._start_phase(name, now, out, real=True)
            phase = self.study.phase
            assert phase is not None
        phase.real = True
        phase.subtask = label
        phase.done = False
        self._stage(out, name.capitalize(), 0, 1, label)

    def _end_phase(self, name: str, took: float, now: float, out: Messages) -> None:
        phase = self.study.phase
        if phase is None or phase.name != name or phase.took is not None:
            phase = PhaseRun(name=name, started=now - took, real=name != "setup")
            self.study.phase = phase
        phase.took = took
        phase.done = True
        self._commit(phase, out)
        self._stage(out, _PHASE_DONE_NAME[name], 1, 1, None)
        self._progress(out, now)

    def _close_phase(self, out: Messages) -> None:
        """Record the duration of a phase that ended without GOLIAT's `Finished` header."""
        phase = self.study.phase
        if phase is not None and phase.took is None and phase.done and phase.subtask_seconds > 0:
            phase.took = phase.subtask_seconds
            self._commit(phase, out)

    def _commit(self, phase: PhaseRun, out: Messages) -> None:
        if phase.took is None or (phase.name == "setup" and not phase.real):
            return  # a cached setup says nothing about how long a real one takes
        self.study.durations.setdefault(phase.name, []).append(phase.took)
        self._timing(phase.name, None, phase.took, out)

    def _subtask_timing(self, task: str, seconds: float, out: Messages) -> None:
        running = self.study.phase
        phase, subtask = split_task_name(task, running.name if running is not None else None)
        self._timing(phase, subtask, seconds, out)

    def _timing(self, phase: str, subtask: str | None, seconds: float, out: Messages) -> None:
        message: dict[str, Any] = {"type": "timing", "phase": phase, "subtask": subtask, "seconds": seconds}
        if self.study.index > 0:
            message["simulation"] = self.study.index
        out.append(message)

    def _solver_progress(self, percent: int, remaining: float | None, now: float, out: Messages) -> None:
        study = self.study
        phase = study.phase
        if phase is None or phase.name != "run" or phase.took is not None:
            return
        if study.isolve_percent == percent and remaining is None:
            return
        study.isolve_percent = float(percent)
        study.isolve_remaining = remaining
        study.isolve_at = now
        self._stage(out, "Run", percent, 100, phase.subtask)
        self._progress(out, now)

    def _finish(self, now: float, out: Messages) -> None:
        study = self.study
        self._close_phase(out)
        if study.index > study.completed and not study.failed:
            study.completed = study.index
        study.finished = True
        study.phase = None
        self._progress(out, now)

    # --- emitting ---------------------------------------------------------------------------

    def _progress(self, out: Messages, now: float) -> None:
        overall = self.overall_percent(now)
        if overall is not None:
            self.study.floor = overall
            rounded = round(overall, 2)
            if self._sent.overall is None or abs(rounded - self._sent.overall) >= 0.01:
                self._sent.overall = rounded
                out.append({"type": "overall_progress", "current": rounded, "total": 100})
        eta = self.eta_seconds(now)
        if eta is None:
            return
        eta = round(eta, 1)
        last = self._sent.eta
        if last is None or abs(eta - last) >= 1.0 or (eta == 0.0 and last != 0.0):
            self._sent.eta = eta
            out.append({"type": "profiler_update", "eta_seconds": eta})

    def _stage(self, out: Messages, name: str, current: int, total: int, sub_stage: str | None) -> None:
        key = (name, current, total, sub_stage)
        if key == self._sent.stage:
            return
        self._sent.stage = key
        message: dict[str, Any] = {"type": "stage_progress", "name": name, "current": current, "total": total}
        if sub_stage:
            message["sub_stage"] = sub_stage
        out.append(message)


def _split_lines(text: str) -> list[str]:
    """Lines of `text` without their endings; a carriage return keeps only what was drawn last."""
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith(("\n", "\r")):
        text = text[:-1]
    lines = []
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        if "\r" in line:
            line = line.rsplit("\r", 1)[1]
        lines.append(line)
    return lines


def _parse_duration(text: str) -> float | None:
    """Seconds in iSolve's "1 hours 9 minutes 3 seconds" style, None if there is no number."""
    total = 0.0
    found = False
    for amount, unit in re.findall(r"(\d+)\s*(hour|minute|second)s?", text, re.IGNORECASE):
        found = True
        total += int(amount) * {"hour": 3600, "minute": 60, "second": 1}[unit.lower()]
    return total if found else None
