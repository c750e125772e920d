"""GOLIAT's console text and log files, as the simulated study writes them.

The monitor's agent parses what `goliat study` prints and the files it leaves in `logs/`, so the
stand-in has to write exactly those formats; keeping them here, apart from the study driver in
`simulated_study.py`, puts every format rule in one place:

* every log record as GOLIAT's `ColorFormatter` writes it,
  `{colour}{message}\\x1b[0m \\x1b[30m\\x1b[2m[Class.method]\\x1b[0m`, with the colours of
  `goliat/colors.py`, and, like GOLIAT's `init_colorama`, only when `COLORAMA_STRIP=0` or
  `JUPYTER_NOTEBOOK=1` is set (otherwise colorama strips them); when colours are kept, colorama's
  autoreset adds `\\x1b[0m` after each record;
* `ConsoleLogger`'s boxes ("Simulation 3/36 (8.3%)", "[SUCCESS] Setup Complete");
* GOLIAT's log files, `logs/<DD-MM_HH-MM-SS>.progress.log` (progress level) and
  `logs/<DD-MM_HH-MM-SS>.log` (everything) in the working directory, plus `progress.log` and
  `verbose.log` in each simulation's folder, in `CustomFormatter`'s
  `2025-10-14 10:23:45,123 - INFO - message [Class.method]` form.

Real GOLIAT's console mode logs to stderr; this writes everything to stdout (one stream is what
a runner that merges stderr into stdout sees anyway), flushed per line.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TextIO

from goliat_monitor.domain.models import ANSI_ESCAPE

__all__ = ["GoliatLogs", "keep_colours"]


RESET = "\x1b[0m"
_CALLER = "\x1b[30m\x1b[2m"  # Fore.BLACK + Style.DIM
# GOLIAT's terminal colour per log_type (goliat/colors.py), as raw SGR codes.
_COLOURS = {
    "default": "\x1b[37m",
    "progress": "\x1b[32m",
    "info": "\x1b[36m",
    "verbose": "\x1b[34m",
    "warning": "\x1b[33m",
    "error": "\x1b[31m",
    "fatal": "\x1b[35m",
    "success": "\x1b[32m\x1b[1m",
    "header": "\x1b[35m\x1b[1m",
    "highlight": "\x1b[33m\x1b[1m",
}
_BOX_BORDER = "-" * 70


def keep_colours() -> bool:
    """GOLIAT's `init_colorama`: colorama strips colours unless told not to by these variables."""
    return (
        os.environ.get("COLORAMA_STRIP", "").lower() == "0"
        or os.environ.get("JUPYTER_NOTEBOOK", "").lower() == "1"
    )


class GoliatLogs:
    """GOLIAT's two loggers: console, session log files and per-simulation log files."""

    def __init__(self, out: TextIO, workdir: Path, colours: bool, clock: Callable[[], float]) -> None:
        self._out = out
        self._colours = colours
        self._clock = clock
        logs = workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromtimestamp(clock()).strftime("%d-%m_%H-%M-%S")
        self.progress_path = logs / f"{stamp}.progress.log"
        self.main_path = logs / f"{stamp}.log"
        self._progress_file = self.progress_path.open("a", encoding="utf-8")
        self._main_file = self.main_path.open("a", encoding="utf-8")
        self._simulation_files: tuple[TextIO, TextIO] | None = None
        started = f"--- Progress logging started for file: {self.progress_path.resolve()} ---"
        self._write_file(self._progress_file, started, "INFO", "")
        self._write_file(self._main_file, started, "INFO", "")
        self._write_file(
            self._main_file, f"--- Main logging started for file: {self.main_path.resolve()} ---", "INFO", ""
        )

    def log(
        self, message: str, *, level: str = "verbose", log_type: str = "default", caller: str | None = None
    ) -> None:
        """One `_log` call (caller set) or bare logger call (caller None): console and files."""
        self.record(
            message, level=level, log_type=log_type, caller_info=f"[{caller}]" if caller is not None else ""
        )

    def record(
        self,
        message: str,
        *,
        level: str,
        log_type: str = "default",
        caller_info: str = "",
        levelname: str = "INFO",
    ) -> None:
        colour = _COLOURS.get(log_type, _COLOURS["default"])
        self._console(f"{colour}{message}{RESET} {_CALLER}{caller_info}{RESET}\n")
        files: list[TextIO] = [self._main_file]
        if level == "progress":
            files.append(self._progress_file)
        if self._simulation_files is not None:
            files.append(self._simulation_files[0 if level == "progress" else 1])
        for handle in files:
            self._write_file(handle, message, levelname, caller_info)

    def raw(self, text: str) -> None:
        """Output of Sim4Life or iSolve themselves: console only, no colours, no log files."""
        self._console(text + "\n", autoreset=False)

    def box(self, message: str, log_type: str) -> None:
        """`ConsoleLogger._format_box`, logged on the progress logger without a log_type."""
        colour = _COLOURS[log_type]
        self.record(f"\n{colour}{_BOX_BORDER}\n{message}\n{_BOX_BORDER}{RESET}\n", level="progress")

    @contextmanager
    def simulation_files(self, folder: Path) -> Iterator[None]:
        """`add_simulation_log_handlers` / `remove_simulation_log_handlers` around a simulation."""
        folder.mkdir(parents=True, exist_ok=True)
        progress = (folder / "progress.log").open("a", encoding="utf-8")
        verbose = (folder / "verbose.log").open("a", encoding="utf-8")
        started = "--- Simulation-specific {} logging started: {} ---"
        self._write_file(progress, started.format("progress", folder / "progress.log"), "INFO", "")
        self._write_file(verbose, started.format("verbose", folder / "verbose.log"), "INFO", "")
        self._simulation_files = (progress, verbose)
        try:
            yield
        finally:
            self._simulation_files = None
            progress.close()
            verbose.close()

    def shutdown(self) -> None:
        """`shutdown_loggers`: a last line on each logger, then the files are closed."""
        self.record("--- Logging shutdown ---", level="progress")
        self.record("--- Logging shutdown ---", level="verbose")
        self._progress_file.close()
        self._main_file.close()

    def _console(self, text: str, autoreset: bool = True) -> None:
        if self._colours:
            self._out.write(text + (RESET if autoreset else ""))
        else:
            self._out.write(ANSI_ESCAPE.sub("", text))
        self._out.flush()

    def _write_file(self, handle: TextIO, message: str, levelname: str, caller_info: str) -> None:
        now = self._clock()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f",{int(now % 1 * 1000):03d}"
        suffix = f" {caller_info}" if caller_info else ""
        handle.write(f"{stamp} - {levelname} - {message}{suffix}\n")
        handle.flush()
