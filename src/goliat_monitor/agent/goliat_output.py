"""Turn what an unmodified `goliat study` prints into the messages GOLIAT's GUI would have sent.

A plain `goliat study` cannot be pointed at our server (its GUI hard-codes the public dashboard),
so the agent watches its output instead. `GoliatOutputParser.feed(line, now)` takes one line of
that output and returns plain dicts shaped like GOLIAT's GUI queue messages
(`status`, `terminal_only`, `overall_progress`, `stage_progress`, `simulation_details`,
`profiler_update`; see docs/goliat-protocol.md). It does no I/O and never reads the
clock: `now` is passed in, so the same input always gives the same output. `tick(now)` refreshes
progress and ETA while GOLIAT is silent (a long setup or solver run prints little).

Feed one stream per parser: the console (stdout and stderr merged), or `logs/<ts>.progress.log`.
Console lines keep more detail (phase headers, timings, solver progress), so prefer them.

What GOLIAT prints, and how each form maps (GOLIAT sources named for reference only)
--------------------------------------------------------------------------------------

Console record, console mode (`logging_manager.ColorFormatter`, one per `_log` call)::

    {colour}{message}\\x1b[0m \\x1b[30m\\x1b[2m[Class.method]\\x1b[0m

  The caller suffix (black+dim) is dropped; `message` keeps its leading indentation. A message
  that starts with "\\n" spans two lines and the second one inherits the colour, so the parser
  tracks the SGR state across lines like a terminal. colorama's autoreset puts a stray
  `\\x1b[0m` at the start of the next line; it is harmless.

Console record, GUI mode (`gui/components/queue_handler.py`): progress-level messages are
printed as `{colour}{message}\\x1b[0m` with no caller; verbose-level ones keep the caller.
Seeing the first form switches the parser to "GUI mode" (see *Levels* below).

Colour -> `log_type` (`goliat/colors.py` COLOR_MAP; 9x "light" codes count as bright):

    =====================  ===========    =====================  ===========
    white 37 / none        default        yellow 33              warning
    green 32               progress       yellow 33 + bright     highlight
    green 32 + bright      success        red 31                 error
    cyan 36                info           magenta 35             fatal
    blue 34                verbose        magenta 35 + bright    header
    =====================  ===========    =====================  ===========

  GOLIAT strips colours unless `COLORAMA_STRIP=0` (or `JUPYTER_NOTEBOOK=1`) is set, so the agent
  should set that variable. Without colours the log_type is guessed from the text:
  `--- ... ---` header, `--- XStudy Finished ---` and `- Done in Ns` success, `- Name...`
  progress, `WARNING`/`- iSolve failed, retry` warning, `ERROR`/`iSolve: Error` error,
  `FATAL` fatal, otherwise default. A white line whose text starts with `FATAL ERROR` or
  `ERROR` (GOLIAT's `progress_logger.error(...)` calls pass no log_type) is upgraded the same way.

Log file record (`CustomFormatter`, files `logs/<DD-MM_HH-MM-SS>.progress.log`,
`logs/<DD-MM_HH-MM-SS>.log` and per simulation `progress.log` / `verbose.log`)::

    2025-10-14 10:23:45,123 - INFO - {message} [Class.method]

  Lines without the timestamp prefix continue the previous record and inherit its log_type.
  The level name only matters for `ERROR` (-> error) and `WARNING` (-> warning).

Console-mode boxes (`cli/run_study.ConsoleLogger`): 70 dashes, then
`Simulation 3/36 (8.3%)` + case line, `Overall Progress: 9/36 (25.0%)` or
`[SUCCESS] Setup Complete`, then 70 dashes. They become `simulation_details`,
`overall_progress` and `stage_progress`, never `status` lines.

Anything else (Sim4Life's own `[Info]`/`[Warn]` lines, iSolve's solver output) is tool output:
`terminal_only` with log_type default, so Sim4Life's `[Warn]` lines do not count as warnings.

Levels: GOLIAT's GUI shows and counts only progress-level records (`status`); verbose-level ones
go out as `terminal_only`. The console does not print the level, so it is recovered:

* GUI mode: no caller suffix means progress level, a caller suffix means verbose level.
* Console mode / files: a record with an empty caller and no colour of its own is a bare
  verbose-logger call (iSolve's echoed output). Otherwise the text is matched against a table of
  every message GOLIAT logs at progress level (`_PROGRESS_TEMPLATES`, made from its
  `_log(..., level="progress")` calls); anything else is verbose level. This matters: about 100
  of GOLIAT's 115 warnings and all of its highlights are verbose level ("--- Phantom Check
  Result: ...", "Run deliverables verified. Updating metadata.", "- Final Balance: 91.85%"), so
  counting them would show several warnings per simulation that GOLIAT's own GUI never shows.
* Errors and fatal errors are always `status`, although GOLIAT logs some at verbose level
  ("ERROR during simulation: ..."): a failure should never be hidden.
* `source="progress_log"`: every record is progress level.

A message of a future GOLIAT that is not in the table goes out as `terminal_only` (still with
its log_type), so a new progress-level warning would not be counted until the table is updated.

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

`overall_progress` (as `{current: percent, total: 100}`, like the GUI's periodic sync) and
`profiler_update` (`eta_seconds`) follow each of those events and every `tick`.
`status` / `terminal_only` messages carry `timestamp: now`, as GOLIAT's queue messages do.

Faithfulness
------------
Progress and ETA follow `goliat/profiler.py`: overall = (completed simulations + weighted
fraction of the current one) / total, where each phase (setup, run, extract) is weighted by its
average duration, and ETA = time left in the current phase + later phases of this simulation +
remaining simulations x (sum of phase estimates), with GOLIAT's recency-weighted estimate (last
three runs weighted 0.2/0.3/0.5 and 70 %, older ones 30 %) and its 60 s default. Differences:

* GOLIAT takes phase weights and first estimates from `profiling_config.json` history, which is
  never printed; we use the durations printed in this run (`--- Finished: x (took Ns) ---`, else
  the top-level `Done in`), or `phase_estimates` if the caller has them. A phase never observed
  is weighted like the average observed one (equal weights before any observation).
* GOLIAT animates the stage bar over the estimate; we use elapsed / estimate (at most 1), or the
  solver's own percentage and remaining time during the run phase when iSolve prints them.
* A cached setup (no `Setup simulation` subtask) is left out of the estimates, as in GOLIAT.
* Overall progress never goes backwards within a study (GOLIAT's can, when weights shift), and
  reaches 100 only when every simulation finished; GOLIAT's bridge sends 100 even after a fatal
  error. GOLIAT also sends an ETA of 0 after every phase (its profiler has no current phase
  then); we do not copy that.
* `finished` is not emitted: only the process exit code tells success, out of memory (42) or
  failure, and the runner that owns the process sends it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from goliat_monitor.domain.models import ANSI_ESCAPE, PHASES

__all__ = [
    "DEFAULT_PHASE_SECONDS",
    "GoliatOutputParser",
    "Messages",
    "classify_style",
    "strip_ansi",
]

Messages = list[dict[str, Any]]
"""Protocol messages as plain dicts, in the order GOLIAT would have sent them."""

DEFAULT_PHASE_SECONDS = 60.0
"""GOLIAT's estimate for a phase it has no timing for (`Profiler._get_smart_phase_estimate`)."""

# Stage names GOLIAT's study sends when a phase ends (`update_stage_progress(..., 1, 1)`).
_PHASE_DONE_NAME = {"setup": "Setup", "run": "Running Simulation", "extract": "Extracting Results"}

_SGR = re.compile(r"\x1b\[([0-9;]*)m")
_FILE_RECORD = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}) - ([A-Z]+) - (.*)$", re.DOTALL)
_CALLER_SUFFIX = re.compile(r" \[(?:[A-Za-z_<][\w.<>]*)?\]$")

_STUDY_START = re.compile(r"^--- Starting (Far-Field|Near-Field) Study: (.*) ---$")
_STUDY_END = re.compile(r"^--- (\w*Study) Finished ---$")
_PROCESSING = re.compile(r"^--- Processing Simulation (\d+)/(\d+): (.*) ---$")
_PHASE_START = re.compile(r"^--- Starting: (setup|run|extract) ---$")
_PHASE_END = re.compile(r"^--- Finished: (setup|run|extract) \(took ([\d.]+)s\) ---$")
_TOP_SUBTASK = re.compile(r"^  - (Setup simulation|Run simulation total|Extract results[^.]*)\.\.\.$")
_TOP_DONE = re.compile(r"^    - Done in ([\d.]+)s$")
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

# Every message GOLIAT logs at progress level except errors, `{}` standing for a value. Made from
# its `_log(..., level="progress")` calls (goliat/ at 67123d1); anything else is verbose-level.
_PROGRESS_TEMPLATES = (
    # studies, profile and subtasks
    "--- Starting Far-Field Study: {} ---",
    "--- Starting Near-Field Study: {} ---",
    "--- Processing Simulation {}/{}: {} ---",
    "--- {} Finished ---",
    "--- Study execution cancelled by user. ---",
    "  - Setup simulation...",
    "  - Run simulation total...",
    "  - Extract results total...",
    "  - Extract results {}...",
    "  - Auto induced {}...",
    "    - Done in {}s",
    "      - Done in {}s",
    "Project already done, skipping.",
    "GOLIAT_SKIP_IF_EXISTS: Extract deliverables found, skipping entire simulation.",
    "WARNING: 'only_write_input_file' is set to true, but 'do_run' is false. {}",
    "WARNING: 'auto_cleanup_previous_results' is enabled, but not all phases {}",
    "  Recommendation: Only use auto_cleanup when running complete serial workflows {}",
    "  Auto-cleanup will be DISABLED for safety. {}",
    "Auto-cleanup enabled: {} will be deleted after each simulation's results are extracted {}",
    "WARNING: Cannot verify run deliverables - project path not set.",
    "WARNING: Run deliverables not found. Cannot proceed with extraction. {}",
    "  - WARNING: Could not find or parse function '{}' for line profiling. Error: {}",
    # setup
    "    - Load phantom...",
    "    - Configure scene ({})...",
    "    - Assign materials...",
    "    - Configure solver ({})...",
    "    - Voxelize simulation...",
    "    - Save project...",
    "--- Extracting Material Properties ---",
    "--- Finished Extracting Material Properties ---",
    "--- Exported Material Properties to {} ---",
    # run
    "    - Write input file...",
    "'only_write_input_file' is true, skipping simulation run.",
    "Found matching server: '{}'",
    "No remote servers seem to be available.",
    "If you are running on the cloud, please ensure you are logged into Sim4Life {}",
    "    - Execute iSolve...",
    "      - FDTD: {}% ({} remaining @ {} MCells/s)",
    "    - iSolve failed, retry attempt {}",
    "iSolve: Memory/allocation error detected (attempt {}): {}",
    "Internal memory retry triggered: {}",
    "Attempting internal retry with garbage collection...",
    "Cleared CUDA cache",
    "    - Wait for results...",
    "    - Reload project...",
    "    - Memory usage at {}%, reloading project to free memory...",
    "Simulation finished on '{}'.",
    "--- Running simulation on oSPARC server: {} ---",
    "Creating job for input file: {}",
    "Job created with ID: {}. Starting job...",
    "Job started. Polling for status...",
    "Job {} finished with status: {}",
    "Warning: Could not get job status for {}.",
    "Use the osparc PyPI package for batch runs on 8.2, or upgrade to 9.2.",
    # extract
    "    - Extract input power...",
    "    - Extract SAR statistics...",
    "    - Extract SAPD statistics...",
    "    - Extract power balance...",
    "    - Extract point sensors...",
    "    - SAR extraction disabled by config",
    "    - Power balance extraction disabled by config",
    "    - Point sensor extraction disabled by config",
    "  - Cleaned up {} file(s) to save disk space.",
    "    - Warning: Could not delete {}: {}",
    "--- Auto-Induced Analysis: {}, {}MHz ---",
    "  Combining {} simulations, extracting top {} candidates",
    "  Search mode: {}",
    "  Pre-loading {}-fields from {} files...",
    "    {}-field cache ready ({} mode)",
    "    Candidate #{}/{}: {}",
    "  - Worst-case {}: {} {} (candidate #{})",
    "  Auto-induced for {}@{}MHz already complete, skipping.",
    "  Auto-induced complete for {}@{}MHz",
)
_PROGRESS_RECORD = re.compile(
    "|".join("(?:" + ".*".join(re.escape(part) for part in t.split("{}")) + ")" for t in _PROGRESS_TEMPLATES)
)
# Output of Sim4Life and iSolve themselves, never a GOLIAT record.
_TOOL_OUTPUT = re.compile(
    r"^(\s*\w[\w ]{0,40}:\s*\[(Info|Warn|Error|Debug)\]|\[(Info|Warn|Error|Debug)\]|\[PROGRESS\]:|\t)"
)


def strip_ansi(text: str) -> str:
    """`text` without ANSI escape sequences (colours, cursor moves)."""
    return ANSI_ESCAPE.sub("", text)


@dataclass(frozen=True, slots=True)
class _Style:
    """The SGR attributes GOLIAT's colours use: a foreground colour, bright and dim."""

    fg: int | None = None
    bright: bool = False
    dim: bool = False

    def apply(self, params: str) -> _Style:
        """The style after one `ESC[...m` sequence."""
        fg, bright, dim = self.fg, self.bright, self.dim
        for raw in params.split(";") if params else ["0"]:
            code = int(raw) if raw.isdigit() else 0
            if code == 0:
                fg, bright, dim = None, False, False
            elif code == 1:
                bright = True
            elif code == 2:
                dim = True
            elif code == 22:
                bright = dim = False
            elif code == 39:
                fg = None
            elif 30 <= code <= 37 or 90 <= code <= 97:
                fg = code
        return _Style(fg, bright, dim)

    @property
    def is_caller(self) -> bool:
        """Black + dim: the `[Class.method]` suffix GOLIAT appends."""
        return self.fg == 30 and self.dim


_PLAIN = _Style()


def classify_style(fg: int | None, bright: bool = False) -> str:
    """GOLIAT's log_type for a foreground colour (`goliat/colors.py`, inverted)."""
    if fg is not None and 90 <= fg <= 97:
        fg, bright = fg - 60, True
    if fg == 32:
        return "success" if bright else "progress"
    if fg == 36:
        return "info"
    if fg == 34:
        return "verbose"
    if fg == 33:
        return "highlight" if bright else "warning"
    if fg == 31:
        return "error"
    if fg == 35:
        return "header" if bright else "fatal"
    return "default"


def _guess_log_type(text: str) -> str:
    """A log_type from the words alone, for output whose colours were stripped."""
    s = text.strip()
    strong = _strong_log_type(s)
    if strong:
        return strong
    if re.match(r"^(- )?WARNING\b|^- Warning:|^- iSolve failed, retry attempt", s):
        return "warning"
    if _STUDY_END.match(s) or re.match(r"^- Done in [\d.]+s$", s):
        return "success"
    if s.startswith("--- ") and s.endswith(" ---"):
        return "header"
    if re.match(r"^- Subtask '.*' done in ", s):
        return "verbose"
    if re.match(r"^- .*\.\.\.$", s):
        return "progress"
    return "default"


def _level_from_form(
    log_type: str, text: str, named_caller: bool, empty_caller: bool, gui_mode: bool
) -> str | None:
    """The level ("progress"/"verbose") a console record's shape gives away, None if it does not.

    In GUI mode progress-level records come without a caller and verbose ones with one. In
    either mode a record with an empty caller comes from a bare logger call; apart from a few
    errors those are the verbose logger's (iSolve's echoed output, "Opening project: ...").
    """
    if gui_mode:
        return "verbose" if named_caller or empty_caller else "progress"
    if empty_caller and log_type == "default" and _strong_log_type(text.strip()) is None:
        return "verbose"
    return None


def _strong_log_type(s: str) -> str | None:
    """fatal/error for texts that say so, whatever colour they were printed in."""
    if re.match(r"^(--- )?FATAL ERROR|^MEMORY ERROR", s):
        return "fatal"
    if re.match(
        r"^(- )?ERROR\b|^iSolve: |^An (unexpected )?error occurred|^--- Memory/allocation error"
        r"|^--- Process exited with code|^Max internal retries exceeded",
        s,
    ):
        return "error"
    return None


@dataclass(slots=True)
class _PhaseRun:
    """One phase of one simulation as seen so far."""

    name: str
    started: float
    real: bool = True  # False for a setup that found its project cached (no setup subtask)
    subtask: str | None = None
    subtask_seconds: float = 0.0
    done: bool = False  # its top-level subtask finished: the phase is as good as over
    took: float | None = None  # GOLIAT's own measurement from `--- Finished: x (took Ns) ---`


@dataclass(slots=True)
class _Line:
    """One line after decoding: its text and what kind of record it belongs to."""

    text: str
    log_type: str
    is_record: bool  # a GOLIAT log record (or part of one), not tool output
    level: str | None = None  # "progress" / "verbose" when the way it was printed tells


@dataclass(slots=True)
class _Sent:
    """What was last reported, so unchanged values are not sent again."""

    overall: float | None = None
    eta: float | None = None
    stage: tuple[Any, ...] | None = None


@dataclass(slots=True)
class _Study:
    """Everything learnt about the study that is running."""

    total: int | None = None
    index: int = 0  # 1-based number of the simulation being processed, 0 before the first
    completed: int = 0
    case: str = ""
    phase: _PhaseRun | None = None  # active or last phase of the current simulation
    failed: bool = False  # a fatal error was printed for the current simulation
    finished: bool = False
    isolve_percent: float | None = None
    isolve_remaining: float | None = None
    isolve_at: float = 0.0
    floor: float = 0.0  # overall progress never goes below what was already reported
    durations: dict[str, list[float]] = field(default_factory=dict)


class GoliatOutputParser:
    """Incremental parser of `goliat study` output; see the module docstring for the mapping.

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
        self._source = source
        unknown = set(phases) - set(PHASES)
        if unknown:
            raise ValueError(f"unknown GOLIAT phases: {sorted(unknown)}")
        self.phases: tuple[str, ...] = tuple(p for p in PHASES if p in phases)
        self._priors = {p: float(v) for p, v in (phase_estimates or {}).items() if p in PHASES and v > 0}
        self._initial_total = total_simulations
        self._style = _PLAIN  # terminal SGR state carried from line to line
        self._file_log_type: str | None = None  # log_type of the file record being continued
        self._gui_mode = False
        self._saw_colour = False
        self._box: list[_Line] | None = None
        self._sent = _Sent()
        self.study = _Study(total=total_simulations)

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
        times = self.study.durations.get(phase, [])
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

    def overall_percent(self, now: float) -> float | None:
        """Overall progress 0-100, None while the number of simulations is unknown."""
        s = self.study
        if not s.total:
            return None
        if s.finished and s.completed >= s.total:
            return 100.0
        fraction = 0.0 if s.index <= s.completed else self._simulation_fraction(now)
        value = 100.0 * (s.completed + fraction) / s.total
        return max(s.floor, min(100.0, value))

    def eta_seconds(self, now: float) -> float | None:
        """Seconds left in the study, None while the number of simulations is unknown."""
        s = self.study
        if not s.total:
            return None
        if s.finished:
            return 0.0
        per_simulation = sum(self.phase_estimate(p) for p in self.phases)
        if s.index == 0:
            return s.total * per_simulation
        if s.index <= s.completed:
            return max(0, s.total - s.completed) * per_simulation
        left_here = self._time_left_in_simulation(now, per_simulation)
        later = max(0, s.total - s.completed - 1)
        return max(0.0, left_here + later * per_simulation)

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
            ratio = self._phase_ratio(phase, now)
            self._stage(out, phase.name.capitalize(), round(ratio * 100), 100, phase.subtask)
        self._progress(out, now)
        return out

    # --- one line ---------------------------------------------------------------------------

    def _feed_one(self, raw: str, now: float, out: Messages) -> None:
        decoded = self._decode(raw)
        if self._box is not None or _BOX_BORDER.match(decoded.text.strip()):
            self._feed_box(decoded, now, out)
        elif decoded.text.strip():
            self._emit_line(decoded, now, out)

    def _emit_line(self, line: _Line, now: float, out: Messages) -> None:
        """The line itself as `status` / `terminal_only`, then whatever its text implies."""
        text = line.text
        kind = "status" if line.is_record and self._level(line) == "progress" else "terminal_only"
        out.append({"type": kind, "message": text, "log_type": line.log_type, "timestamp": now})
        self._interpret(text.strip(), text, line.log_type, now, out)

    def _level(self, line: _Line) -> str:
        """GOLIAT's logger level for a record: only progress-level ones reach its GUI."""
        if self._source == "progress_log":
            return "progress"
        if line.level is not None:
            return line.level
        if line.log_type in ("error", "fatal"):
            return "progress"  # always surfaced, though GOLIAT logs some errors at verbose level
        return "progress" if _PROGRESS_RECORD.fullmatch(line.text.rstrip()) else "verbose"

    def _decode(self, raw: str) -> _Line:
        """Split off colours, caller suffix and file prefix; work out the log_type."""
        match = _FILE_RECORD.match(raw)
        if match:
            level, body = match.group(2), match.group(3)
            text = _CALLER_SUFFIX.sub("", strip_ansi(body)).rstrip()
            log_type = self._colour_of(body) or _strong_log_type(text.strip())
            if log_type is None:
                log_type = {"ERROR": "error", "CRITICAL": "fatal", "WARNING": "warning"}.get(level)
            log_type = log_type or _guess_log_type(text)
            self._file_log_type = log_type if text.strip() else ""  # "": decide on the next line
            return _Line(text, log_type, True)
        if self._file_log_type is not None and "\x1b" not in raw:
            # continuation of a multi-line file record (traceback, box, leading "\n")
            text = _CALLER_SUFFIX.sub("", raw).rstrip()
            if not self._file_log_type and text.strip():
                self._file_log_type = _strong_log_type(text.strip()) or _guess_log_type(text)
            return _Line(text, self._file_log_type or "default", True)
        if "\x1b" not in raw and self._style == _PLAIN:
            return self._decode_plain(raw)
        return self._decode_coloured(raw)

    def _colour_of(self, body: str) -> str | None:
        """The log_type of the first coloured text in a file record body, if it has colours."""
        style = _PLAIN
        pos = 0
        for m in _SGR.finditer(body):
            if body[pos : m.start()].strip():
                break
            style = style.apply(m.group(1))
            pos = m.end()
        return classify_style(style.fg, style.bright) if style.fg is not None else None

    def _decode_plain(self, raw: str) -> _Line:
        """A line without any colour: GOLIAT output with colours stripped, or tool output."""
        text = raw.rstrip()
        if self._saw_colour or _TOOL_OUTPUT.match(text):
            return _Line(text, "default", False)  # uncoloured in a coloured stream: not GOLIAT's
        named_caller = _CALLER_SUFFIX.search(text) is not None
        empty_caller = not named_caller and raw.endswith(" ")  # ColorFormatter with no caller
        text = _CALLER_SUFFIX.sub("", text).rstrip()
        log_type = _guess_log_type(text)
        return _Line(
            text, log_type, True, _level_from_form(log_type, text, named_caller, empty_caller, False)
        )

    def _decode_coloured(self, raw: str) -> _Line:
        """Replay SGR codes like a terminal; the colour at the first visible character wins."""
        style = self._style
        first_style: _Style | None = None
        fresh = False  # a colour was set on this line before its first visible character
        in_caller = False
        caller_text = ""
        parts: list[str] = []
        pos = 0
        for m in [*_SGR.finditer(raw), None]:
            end = m.start() if m is not None else len(raw)
            chunk = strip_ansi(raw[pos:end])
            if style.is_caller:
                in_caller = True
                caller_text += chunk
            elif chunk and not in_caller:
                if first_style is None and chunk.strip():
                    first_style = style
                parts.append(chunk)
            if m is None:
                break
            before = style
            style = style.apply(m.group(1))
            if first_style is None and style.fg is not None and style != before:
                fresh = True
            pos = m.end()
        self._style = style
        self._saw_colour = True
        text = "".join(parts).rstrip()
        if first_style is None or first_style.fg is None or _TOOL_OUTPUT.match(text):
            # nothing visible, or printed after a reset: Sim4Life / iSolve output
            return _Line(text, "default", first_style is None)
        log_type = classify_style(first_style.fg, first_style.bright)
        if log_type == "default":
            log_type = _strong_log_type(text.strip()) or "default"
        if fresh and not in_caller and raw.rstrip().endswith("\x1b[0m") and _PROGRESS_RECORD.fullmatch(text):
            self._gui_mode = True  # only GOLIAT's GUI prints its records without a caller
        named, empty = in_caller and bool(caller_text.strip()), in_caller and not caller_text.strip()
        return _Line(text, log_type, True, _level_from_form(log_type, text, named, empty, self._gui_mode))

    # --- console-mode boxes -----------------------------------------------------------------

    def _feed_box(self, line: _Line, now: float, out: Messages) -> None:
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
                self._close_phase()
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
        if m := _ISOLVE_PROGRESS.search(s):
            self._solver_progress(int(m.group(1)), _parse_duration(m.group(2)), now, out)
            return
        if m := _FDTD_MILESTONE.match(text):
            seconds = int(m.group(2)) * 3600 + int(m.group(3)) * 60 + int(m.group(4))
            self._solver_progress(int(m.group(1)), float(seconds), now, out)
            return
        if m := _STUDY_END.match(s):
            self._finish(now, out)
            return
        if _FATAL_MARKERS.match(s) or log_type == "fatal":
            study.failed = True

    def _reset(self) -> None:
        """A new study: estimates restart too, like GOLIAT's per-process profiler."""
        self.study = _Study(total=self._initial_total)
        self._sent = _Sent()

    def _start_simulation(self, index: int, total: int, case: str, now: float, out: Messages) -> None:
        study = self.study
        if study.finished:
            self._reset()
            study = self.study
        self._close_phase()
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
        self._close_phase()
        self.study.phase = _PhaseRun(name=name, started=now, real=real)
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
            phase = _PhaseRun(name=name, started=now - took, real=name != "setup")
            self.study.phase = phase
        phase.took = took
        phase.done = True
        self._commit(phase)
        self._stage(out, _PHASE_DONE_NAME[name], 1, 1, None)
        self._progress(out, now)

    def _close_phase(self) -> None:
        """Record the duration of a phase that ended without GOLIAT's `Finished` header."""
        phase = self.study.phase
        if phase is not None and phase.took is None and phase.done and phase.subtask_seconds > 0:
            phase.took = phase.subtask_seconds
            self._commit(phase)

    def _commit(self, phase: _PhaseRun) -> None:
        if phase.took is None or (phase.name == "setup" and not phase.real):
            return  # a cached setup says nothing about how long a real one takes
        self.study.durations.setdefault(phase.name, []).append(phase.took)

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
        self._close_phase()
        if study.index > study.completed and not study.failed:
            study.completed = study.index
        study.finished = True
        study.phase = None
        self._progress(out, now)

    # --- progress model ---------------------------------------------------------------------

    def _weights(self) -> dict[str, float]:
        """Each enabled phase's share of one simulation, from mean durations (GOLIAT's weights)."""
        means: dict[str, float] = {}
        for p in self.phases:
            times = self.study.durations.get(p)
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

    def _phase_ratio(self, phase: _PhaseRun, now: float) -> float:
        if phase.took is not None or phase.done:
            return 1.0
        if phase.name == "run" and self.study.isolve_percent is not None:
            return min(1.0, self.study.isolve_percent / 100.0)
        estimate = self.phase_estimate(phase.name)
        return min(1.0, max(0.0, (now - phase.started) / estimate)) if estimate > 0 else 1.0

    def _simulation_fraction(self, now: float) -> float:
        phase = self.study.phase
        if phase is None or phase.name not in self.phases:
            return 0.0
        weights = self._weights()
        before = sum(weights[p] for p in self.phases[: self.phases.index(phase.name)])
        return min(1.0, before + weights[phase.name] * self._phase_ratio(phase, now))

    def _time_left_in_simulation(self, now: float, per_simulation: float) -> float:
        phase = self.study.phase
        if phase is None or phase.name not in self.phases:
            return per_simulation
        later = sum(self.phase_estimate(p) for p in self.phases[self.phases.index(phase.name) + 1 :])
        if phase.took is not None or phase.done:
            return later
        study = self.study
        if phase.name == "run" and study.isolve_remaining is not None:
            left = max(0.0, study.isolve_remaining - (now - study.isolve_at))
        else:
            left = self.phase_estimate(phase.name) * (1.0 - self._phase_ratio(phase, now))
        return left + later

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
