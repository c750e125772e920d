"""Decode one line of GOLIAT's output: its text, its log_type and, where it shows, its level.

`goliat_output.GoliatOutputParser` turns lines into protocol messages; this module only reads
a single line: the colours and caller suffix of a console record, the prefix of a log file
record, and which logger level printed it. It keeps the little state a terminal keeps (the
colour carried to the next line, the file record being continued) and nothing about the study.

What GOLIAT prints, and how each form maps (GOLIAT sources named for reference only)
--------------------------------------------------------------------------------------

Console record, console mode (`logging_manager.ColorFormatter`, one per `_log` call)::

    {colour}{message}\\x1b[0m \\x1b[30m\\x1b[2m[Class.method]\\x1b[0m

  The caller suffix (black+dim) is dropped; `message` keeps its leading indentation. A message
  that starts with "\\n" spans two lines and the second one inherits the colour, so the decoder
  tracks the SGR state across lines like a terminal. colorama's autoreset puts a stray
  `\\x1b[0m` at the start of the next line; it is harmless.

Console record, GUI mode (`gui/components/queue_handler.py`): progress-level messages are
printed as `{colour}{message}\\x1b[0m` with no caller; verbose-level ones keep the caller.
Seeing the first form switches the decoder to "GUI mode" (see *Levels* below).

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
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from goliat_monitor.domain.models import ANSI_ESCAPE

__all__ = ["STUDY_END", "Line", "LineDecoder", "classify_style", "strip_ansi"]

_SGR = re.compile(r"\x1b\[([0-9;]*)m")
_FILE_RECORD = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}) - ([A-Z]+) - (.*)$", re.DOTALL)
_CALLER_SUFFIX = re.compile(r" \[(?:[A-Za-z_<][\w.<>]*)?\]$")
STUDY_END = re.compile(r"^--- (\w*Study) Finished ---$")
"""GOLIAT's `--- XStudy Finished ---`: a success line, and the end of a study for the parser."""

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
    if STUDY_END.match(s) or re.match(r"^- Done in [\d.]+s$", s):
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
class Line:
    """One line after decoding: its text and what kind of record it belongs to."""

    text: str
    log_type: str
    is_record: bool  # a GOLIAT log record (or part of one), not tool output
    level: str | None = None  # "progress" / "verbose" when the way it was printed tells


class LineDecoder:
    """Decodes the lines of one stream in order, carrying what a terminal carries between them.

    `source="progress_log"` says every record is from a `*.progress.log` file, hence progress level.
    """

    def __init__(self, source: Literal["console", "progress_log"] = "console") -> None:
        self._source = source
        self._style = _PLAIN  # terminal SGR state carried from line to line
        self._file_log_type: str | None = None  # log_type of the file record being continued
        self._gui_mode = False
        self._saw_colour = False

    def level(self, line: Line) -> str:
        """GOLIAT's logger level for a record: only progress-level ones reach its GUI."""
        if self._source == "progress_log":
            return "progress"
        if line.level is not None:
            return line.level
        if line.log_type in ("error", "fatal"):
            return "progress"  # always surfaced, though GOLIAT logs some errors at verbose level
        return "progress" if _PROGRESS_RECORD.fullmatch(line.text.rstrip()) else "verbose"

    def decode(self, raw: str) -> Line:
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
            return Line(text, log_type, True)
        if self._file_log_type is not None and "\x1b" not in raw:
            # continuation of a multi-line file record (traceback, box, leading "\n")
            text = _CALLER_SUFFIX.sub("", raw).rstrip()
            if not self._file_log_type and text.strip():
                self._file_log_type = _strong_log_type(text.strip()) or _guess_log_type(text)
            return Line(text, self._file_log_type or "default", True)
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

    def _decode_plain(self, raw: str) -> Line:
        """A line without any colour: GOLIAT output with colours stripped, or tool output."""
        text = raw.rstrip()
        if self._saw_colour or _TOOL_OUTPUT.match(text):
            return Line(text, "default", False)  # uncoloured in a coloured stream: not GOLIAT's
        named_caller = _CALLER_SUFFIX.search(text) is not None
        empty_caller = not named_caller and raw.endswith(" ")  # ColorFormatter with no caller
        text = _CALLER_SUFFIX.sub("", text).rstrip()
        log_type = _guess_log_type(text)
        return Line(text, log_type, True, _level_from_form(log_type, text, named_caller, empty_caller, False))

    def _decode_coloured(self, raw: str) -> Line:
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
            return Line(text, "default", first_style is None)
        log_type = classify_style(first_style.fg, first_style.bright)
        if log_type == "default":
            log_type = _strong_log_type(text.strip()) or "default"
        if fresh and not in_caller and raw.rstrip().endswith("\x1b[0m") and _PROGRESS_RECORD.fullmatch(text):
            self._gui_mode = True  # only GOLIAT's GUI prints its records without a caller
        named, empty = in_caller and bool(caller_text.strip()), in_caller and not caller_text.strip()
        return Line(text, log_type, True, _level_from_form(log_type, text, named, empty, self._gui_mode))
