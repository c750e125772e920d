"""A stand-in for `goliat study`: same console text, same log files, fake solver, real result files.

Demos, tests and benchmarks need a GOLIAT that runs anywhere in seconds. This module reads a real
GOLIAT config (resolving `extends` from the files beside it), lists the simulations it implies
with `goliat_monitor.domain.campaign`, and walks each through GOLIAT's setup / run / extract
phases, printing what GOLIAT's console mode prints (`cli/run_study.py` without a GUI):

* every log record as GOLIAT's `ColorFormatter` writes it,
  `{colour}{message}\\x1b[0m \\x1b[30m\\x1b[2m[Class.method]\\x1b[0m`, with the colours of
  `goliat/colors.py`, and, like GOLIAT's `init_colorama`, only when `COLORAMA_STRIP=0` or
  `JUPYTER_NOTEBOOK=1` is set (otherwise colorama strips them); when colours are kept, colorama's
  autoreset adds `\\x1b[0m` after each record;
* `ConsoleLogger`'s boxes ("Simulation 3/36 (8.3%)", "[SUCCESS] Setup Complete",
  "Overall Progress: 9/36 (25.0%)");
* the phase headers and timings of `utils.profile` and `BaseStudy.subtask`, iSolve's echoed
  output with `[PROGRESS]` lines, GOLIAT's FDTD milestones, a few raw Sim4Life lines;
* warnings: each simulation logs GOLIAT's routine verbose-level warnings, and every third one
  (the 1st, 4th, ... shifted by `seed`) also a progress-level "    - iSolve failed, retry attempt 1".

It writes GOLIAT's log files, `logs/<DD-MM_HH-MM-SS>.progress.log` (progress level) and
`logs/<DD-MM_HH-MM-SS>.log` (everything) in the working directory, plus `progress.log` and
`verbose.log` in each simulation's folder, in `CustomFormatter`'s
`2025-10-14 10:23:45,123 - INFO - message [Class.method]` form. Result files go to
`<results_dir>/results/<study_type>/<phantom>/<freq>MHz/<case>/`: `config.json`,
`sar_results.json`, `sar_stats_all_tissues.pkl`, `sar_stats_all_tissues.html` and
`point_sensor_data.png`.

Real GOLIAT's console mode logs to stderr; this writes everything to stdout (one stream is what
a runner that merges stderr into stdout sees anyway), flushed per line.

Failures (`fail_at`): the run breaks in that phase of simulation `fail_simulation` and leaves the
way GOLIAT's `BaseStudy.run` does when an error escapes the study ("--- FATAL ERROR in study: ...
---", a traceback, "--- FarFieldStudy Finished ---"), exiting with `exit_code` (default 1;
GOLIAT's console mode itself would exit 0 there). With exit code 42 in the run phase it prints
GOLIAT's iSolve out-of-memory sequence instead (one internal retry, then "Max internal retries
exceeded. Exiting with code 42 to trigger session restart.").
"""

from __future__ import annotations

import json
import os
import pickle
import random
import struct
import sys
import time
import traceback
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from goliat_monitor.config_files import read_config
from goliat_monitor.domain.campaign import (
    FAR_FIELD,
    ConfigError,
    Simulation,
    enumerate_simulations,
    merge_extends,
)
from goliat_monitor.domain.models import ANSI_ESCAPE, EXIT_CODE_OUT_OF_MEMORY, PHASES

__all__ = [
    "SimulatedStudyError",
    "load_config",
    "png_bytes",
    "run_simulated_study",
]


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

# Seconds each subtask takes at speed 1 (about 4 s per simulation in all).
_SETUP_STEPS = (
    ("Load phantom", "setup_load_phantom", 0.35),
    ("Configure scene ({scene})", "setup_configure_scene", 0.10),
    ("Assign materials", "setup_materials", 0.25),
    ("Configure solver ({solver})", "setup_solver", 0.10),
    ("Voxelize simulation", "setup_voxelize", 0.40),
    ("Save project", "setup_save_project", 0.10),
)
_WRITE_INPUT, _ISOLVE, _WAIT, _RELOAD = 0.20, 1.60, 0.10, 0.15
_EXTRACT_STEPS = (
    ("Extract input power", "extract_input_power", "PowerExtractor.extract_input_power", 0.05),
    ("Extract SAR statistics", "extract_sar_statistics", "SarExtractor.extract_sar_statistics", 0.35),
    ("Extract power balance", "extract_power_balance", "PowerExtractor.extract_power_balance", 0.15),
    ("Extract point sensors", "extract_point_sensor_data", "SensorExtractor.extract_point_sensor_data", 0.10),
)
_ISOLVE_STEPS = 10
_TISSUES = (
    "Skin",
    "Muscle",
    "Fat",
    "Bone (Cortical)",
    "Brain (Grey Matter)",
    "Eye (Vitreous Humor)",
    "Heart Muscle",
)


class SimulatedStudyError(Exception):
    """The config cannot be read or implies no simulation GOLIAT could run."""


class _StageFailure(Exception):
    """The failure asked for with `fail_at`."""


class _OutOfMemory(BaseException):
    """GOLIAT's `sys.exit(42)` from the iSolve strategy: escapes `except Exception` like SystemExit."""


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a GOLIAT config and merge its `extends` chain, looking for parents beside it."""
    config_path = Path(path)
    try:
        config, parents = read_config(config_path.parent, config_path.name)
        return merge_extends(config, parents)
    except ConfigError as exc:
        raise SimulatedStudyError(f"{config_path.name}: {exc}") from exc


def png_bytes(width: int = 16, height: int = 16, seed: int = 0) -> bytes:
    """A small valid RGB PNG (a colour gradient), built with zlib and struct only."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type: none
        for x in range(width):
            rows += bytes(
                ((x * 255) // max(1, width - 1), (y * 255) // max(1, height - 1), (seed * 37) % 256)
            )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows)))
        + chunk(b"IEND", b"")
    )


def _keep_colours() -> bool:
    """GOLIAT's `init_colorama`: colorama strips colours unless told not to by these variables."""
    return (
        os.environ.get("COLORAMA_STRIP", "").lower() == "0"
        or os.environ.get("JUPYTER_NOTEBOOK", "").lower() == "1"
    )


class _GoliatLogs:
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


@dataclass(frozen=True)
class _Names:
    """How GOLIAT names one simulation in its messages."""

    details: str
    sim_name: str
    project: str
    study_class: str
    setup_class: str


def _names(sim: Simulation, folder: Path) -> _Names:
    freq = sim.frequency_label
    if sim.study_type == FAR_FIELD:
        details = f"{sim.phantom}, {freq}MHz, {sim.position}, {sim.orientation}"
        sim_name = f"EM_FDTD_{sim.phantom}_{freq}MHz_{sim.position}_{sim.orientation}"
        classes = ("FarFieldStudy", "FarFieldSetup")
    else:
        placement = f"{sim.scenario}_{sim.position}_{sim.orientation}"
        details = f"{sim.phantom}, {freq}MHz, {placement}"
        sim_name = f"EM_FDTD_{sim.phantom}_{freq}MHz_{placement}"
        classes = ("NearFieldStudy", "NearFieldSetup")
    project = (folder / f"{sim.study_type}_{sim.phantom.lower()}_{freq}MHz_{sim.case}.smash").as_posix()
    return _Names(details, sim_name, project, *classes)


class _SimulatedStudy:
    """One run of the fake study; methods follow GOLIAT's call structure."""

    def __init__(
        self,
        config: Mapping[str, Any],
        config_name: str,
        logs: _GoliatLogs,
        *,
        results_root: Path,
        speed: float,
        fail_at: str | None,
        fail_simulation: int,
        exit_code: int,
        seed: int,
        sleep: Callable[[float], None],
        monotonic: Callable[[], float],
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.config_name = config_name
        self.logs = logs
        self.results_root = results_root
        self.speed = speed
        self.fail_at = fail_at
        self.fail_simulation = fail_simulation
        self.exit_code = exit_code
        self.seed = seed
        self.rng = random.Random(seed)
        self._sleep = sleep
        self._monotonic = monotonic
        self._clock = clock
        control = config.get("execution_control") or {}
        self.enabled = [p for p in PHASES if control.get(f"do_{p}", True) is not False]
        self.study_class = "FarFieldStudy" if config.get("study_type") == FAR_FIELD else "NearFieldStudy"
        self.stage_shown: str | None = None  # ConsoleLogger.current_stage
        self.index = 0
        self.completed = 0

    # --- helpers ---------------------------------------------------------------------------

    def wait(self, seconds: float) -> None:
        """Sleep for `seconds` at speed 1, with a little seeded jitter."""
        self._sleep(seconds * self.rng.uniform(0.85, 1.15) / self.speed)

    def fails(self, phase: str) -> bool:
        return self.fail_at == phase and self.index == self.fail_simulation

    def stage_complete(self, name: str) -> None:
        """`ConsoleLogger.update_stage_progress(name, 1, 1)`: a box when the stage name changes."""
        if name != self.stage_shown:
            self.stage_shown = name
            self.logs.box(f"[SUCCESS] {name} Complete", "success")

    @contextmanager
    def profile(self, phase: str) -> Iterator[None]:
        """`goliat.utils.profile`: phase headers with GOLIAT's own timing, even on failure."""
        self.logs.log(f"--- Starting: {phase} ---", log_type="header", caller="profile")
        start = self._monotonic()
        try:
            yield
        finally:
            took = self._monotonic() - start
            self.logs.log(
                f"--- Finished: {phase} (took {took:.2f}s) ---", log_type="header", caller="profile"
            )

    @contextmanager
    def subtask(self, task: str, phase: str) -> Iterator[None]:
        """`BaseStudy.subtask` for a top-level subtask: its "Done in" is printed even on failure."""
        label = task.replace("_", " ").capitalize()
        self.logs.log(
            f"  - {label}...", level="progress", log_type="progress", caller=f"{self.study_class}.subtask"
        )
        start = self._monotonic()
        try:
            yield
        finally:
            elapsed = self._monotonic() - start
            caller = f"{self.study_class}.subtask"
            self.logs.log(f"    - Subtask '{task}' done in {elapsed:.2f}s", log_type="verbose", caller=caller)
            self.logs.log(
                f"    - Done in {elapsed:.2f}s", level="progress", log_type="success", caller=caller
            )
            self.stage_complete(phase.capitalize())

    def step(
        self, label: str, task: str, caller: str, seconds: float, extra: Callable[[], None] | None = None
    ) -> None:
        """A nested subtask as the setup and extractor classes log it."""
        self.logs.log(f"    - {label}...", level="progress", log_type="progress", caller=caller)
        start = self._monotonic()
        if extra is not None:
            extra()
        self.wait(seconds)
        elapsed = self._monotonic() - start
        self.logs.log(f"      - Subtask '{task}' done in {elapsed:.2f}s", log_type="verbose", caller=caller)
        self.logs.log(f"      - Done in {elapsed:.2f}s", level="progress", log_type="success", caller=caller)

    # --- the study -------------------------------------------------------------------------

    def run(self, simulations: list[Simulation]) -> int:
        """`BaseStudy.run`: the study, its fatal-error path and the closing lines."""
        logs = self.logs
        logs.log("Starting Sim4Life application...", log_type="info")
        logs.raw("Initializing Application [stdout]")
        logs.log("Sim4Life application started.", log_type="success")
        code = 0
        try:
            self.run_study(simulations)
        except _OutOfMemory:
            code = EXIT_CODE_OUT_OF_MEMORY
        except _StageFailure as exc:
            logs.log(
                f"--- FATAL ERROR in study: {exc} ---",
                level="progress",
                log_type="fatal",
                caller=f"{self.study_class}.run",
            )
            logs.record(_traceback_text(exc), level="verbose", levelname="ERROR")
            code = self.exit_code
        finally:
            logs.log(
                f"\n--- {self.study_class} Finished ---",
                level="progress",
                log_type="success",
                caller=f"{self.study_class}.run",
            )
        return code

    def run_study(self, simulations: list[Simulation]) -> None:
        kind = "Far-Field" if self.study_class == "FarFieldStudy" else "Near-Field"
        self.logs.log(
            f"--- Starting {kind} Study: {self.config_name} ---",
            level="progress",
            log_type="header",
            caller=f"{self.study_class}._run_study",
        )
        total = len(simulations)
        for index, sim in enumerate(simulations, start=1):
            self.index = index
            self.process(sim, total)
            self.completed += 1
            percent = self.index / total * 100
            if int(percent) in (25, 50, 75) or self.index == total:
                self.logs.box(f"Overall Progress: {self.index}/{total} ({percent:.1f}%)", "progress")

    def process(self, sim: Simulation, total: int) -> None:
        folder = self.results_root / "results" / sim.relative_path
        names = _names(sim, folder)
        method = (
            "_process_single_far_field_simulation"
            if sim.study_type == FAR_FIELD
            else "_process_single_near_field_simulation"
        )
        self.logs.log(
            f"\n--- Processing Simulation {self.index}/{total}: {names.details} ---",
            level="progress",
            log_type="header",
            caller=f"{self.study_class}.{method}",
        )
        self.logs.box(
            f"Simulation {self.index}/{total} ({self.index / total * 100:.1f}%)\n{names.details}", "header"
        )
        with self.logs.simulation_files(folder):
            if "setup" in self.enabled:
                with self.profile("setup"):
                    self.setup(sim, folder, names)
            if "run" in self.enabled:
                with self.profile("run"):
                    self.run_phase(names)
            if "extract" in self.enabled:
                with self.profile("extract"):
                    self.extract(sim, folder, names)

    def setup(self, sim: Simulation, folder: Path, names: _Names) -> None:
        logs = self.logs
        pm = "ProjectManager"
        logs.log(
            f"Project path set to: {names.project}", log_type="info", caller=f"{pm}.create_or_open_project"
        )
        logs.log(
            "No metadata file found at config.json.",
            log_type="info",
            caller=f"{pm}.verify_simulation_metadata",
        )
        logs.log(
            "Existing project is invalid or out of date. A new setup is required.",
            log_type="info",
            caller=f"{pm}.create_or_open_project",
        )
        logs.log("Creating a new empty project in memory.", log_type="info", caller=f"{pm}.create_new")
        setup_caller = f"{names.setup_class}.run_full_setup"
        near = sim.study_type != FAR_FIELD
        with self.subtask("setup_simulation", "setup"):
            kind = "Near-Field" if near else "Far-Field"
            logs.log(f"--- Setting up single {kind} sim ---", log_type="header", caller=setup_caller)
            for label, task, seconds in _SETUP_STEPS:
                label = label.format(
                    scene="bboxes, placement, simulation, sensors" if near else "bbox, plane wave",
                    solver="gridding, boundaries, sources" if near else "gridding, boundaries, sensors",
                )
                extra = self._setup_details(task, sim, names)
                if task == "setup_voxelize" and self.fails("setup"):
                    logs.log(f"    - {label}...", level="progress", log_type="progress", caller=setup_caller)
                    self.wait(seconds / 2)
                    raise _StageFailure("Voxeling failed: the voxel scene could not be created")
                self.step(label, task, setup_caller, seconds, extra)
            logs.log("Common settings applied.", log_type="success", caller=setup_caller)
        self._write_metadata(sim, folder)
        logs.log(
            "  - Saved configuration metadata to config.json",
            log_type="info",
            caller=f"{pm}.write_simulation_metadata",
        )

    def _setup_details(self, task: str, sim: Simulation, names: _Names) -> Callable[[], None] | None:
        logs = self.logs
        if task == "setup_load_phantom":

            def phantom() -> None:
                logs.log("--- Running Phantom Check ---", log_type="header", caller="PhantomSetup._log")
                logs.log(
                    "--- Phantom Check Result: Phantom not found in project. ---",
                    log_type="warning",
                    caller="PhantomSetup._log",
                )
                logs.raw(f"License  : [Info]  Acquired [ MODEL_{sim.phantom.upper()} 1.0 ]")
                logs.log("Phantom imported successfully.", log_type="success", caller="PhantomSetup._log")

            return phantom
        if task == "setup_materials":

            def materials() -> None:
                logs.log(
                    "Assigning materials...", log_type="progress", caller="MaterialSetup.assign_materials"
                )
                for tissue in self.rng.sample(_TISSUES, 3):
                    logs.raw(
                        f'Simulation : [Warn]  Some properties for material "{tissue}" have been set to '
                        "their value according to the selected database"
                    )

            return materials
        if task == "setup_configure_scene":

            def scene() -> None:
                caller = f"{names.setup_class}._create_simulation_entity"
                logs.log(f"  - Creating simulation: {names.sim_name}", log_type="info", caller=caller)

            return scene
        if task == "setup_voxelize":
            return lambda: logs.raw("[Info]  Voxeling succeeded.")
        return None

    def run_phase(self, names: _Names) -> None:
        logs = self.logs
        runner = "SimulationRunner.run"
        strategy = "ISolveManualStrategy"
        with self.subtask("run_simulation_total", "run"):
            logs.log(f"Running simulation: {names.sim_name}", log_type="verbose", caller=runner)
            self.step("Write input file", "run_write_input_file", runner, _WRITE_INPUT)
            input_file = f"{uuid.UUID(int=self.rng.getrandbits(128))}_Input.h5"
            logs.log(
                f"Running iSolve with acceleware on {input_file}",
                log_type="info",
                caller=f"{strategy}._prepare_isolve_command",
            )
            logs.log(
                "    - Execute iSolve...", level="progress", log_type="progress", caller=f"{strategy}.run"
            )
            start = self._monotonic()
            if (self.index - 1 + self.seed) % 3 == 0:
                self._isolve_banner(names)
                logs.log("iSolve exited with code 1", log_type="verbose")
                logs.log(
                    "    - iSolve failed, retry attempt 1",
                    level="progress",
                    log_type="warning",
                    caller="RetryHandler.record_attempt",
                )
            self._isolve(names)
            elapsed = self._monotonic() - start
            logs.log(
                f"      - Subtask 'run_isolve_execution' done in {elapsed:.2f}s",
                log_type="verbose",
                caller=f"{strategy}.run",
            )
            logs.log(
                f"      - Done in {elapsed:.2f}s",
                level="progress",
                log_type="success",
                caller=f"{strategy}.run",
            )
            post = "PostSimulationHandler.wait_and_reload"
            self.step("Wait for results", "run_wait_for_results", post, _WAIT)
            self.step("Reload project", "run_reload_project", post, _RELOAD)
            logs.log("Project reloaded and results are available.", log_type="success", caller=post)
        study = self.study_class
        _log_metadata_update(logs, study, "Run")
        self.stage_complete("Running Simulation")

    def _isolve_banner(self, names: _Names) -> None:
        for line in (
            "Reading command line",
            "iSolve X, Version 8.2.0 (16876), 64Bit Windows",
            "Running MPI version 2.0 on 1 process.",
            f"Simulation '{names.sim_name}' ",
            "Solver type: EmFdtd, SinglePrecision, Acceleware",
        ):
            self.logs.log(line)

    def _isolve(self, names: _Names) -> None:
        """iSolve's output as GOLIAT echoes it, with its progress milestones; OOM when asked."""
        logs = self.logs
        self._isolve_banner(names)
        logs.log("Time Update")
        iterations = self.rng.randint(2000, 3000)
        rate = self.rng.uniform(1800, 2300)
        step_seconds = _ISOLVE / _ISOLVE_STEPS
        milestones: set[int] = set()
        for step in range(_ISOLVE_STEPS + 1):
            percent = 2 if step == 0 else step * 100 // _ISOLVE_STEPS
            if percent >= 100:
                break
            remaining = int((_ISOLVE_STEPS - step) * step_seconds / self.speed)
            logs.log(
                f"[PROGRESS]: {percent}% [ {iterations * percent // 100} / {iterations} ] Time Update, "
                f"estimated remaining time {remaining} seconds  @ {rate:.2f} MCells/s"
            )
            for mark, threshold in ((0, 2), (33, 33), (66, 66)):
                if percent >= threshold and mark not in milestones:
                    milestones.add(mark)
                    left = f"0:00:{min(remaining, 59):02d}"
                    logs.log(
                        f"      - FDTD: {mark}% ({left} remaining @ {rate:.2f} MCells/s)",
                        level="progress",
                        caller="ISolveOutputParser.log_milestone",
                    )
                    break
            if self.fails("run") and percent >= 50:
                self._fail_run()
            self.wait(step_seconds)
        logs.log(f"Simulation performed {iterations} iterations.")
        logs.log("FDTD simulation finished successfully.")
        logs.log("iSolve ended successfully.")

    def _fail_run(self) -> None:
        logs = self.logs
        if self.exit_code != EXIT_CODE_OUT_OF_MEMORY:
            raise _StageFailure("iSolve.exe exited with code 3: Error: iSolve framework failed")
        strategy = "ISolveManualStrategy"
        for attempt in (1, 2):
            logs.log("Error: bad allocation")
            logs.log(
                "iSolve: Error: bad allocation",
                level="progress",
                log_type="error",
                caller=f"{strategy}._process_output_line",
            )
            if attempt == 1:
                logs.log(
                    "iSolve: Memory/allocation error detected (attempt 1): Error: bad allocation",
                    level="progress",
                    log_type="warning",
                    caller=f"{strategy}._check_for_memory_error_and_exit",
                )
                logs.log(
                    "Attempting internal retry with garbage collection...",
                    level="progress",
                    log_type="info",
                    caller=f"{strategy}._check_for_memory_error_and_exit",
                )
                logs.log(
                    "Internal memory retry triggered: Memory error detected: Error: bad allocation",
                    level="progress",
                    log_type="info",
                    caller=f"{strategy}._run_single_attempt",
                )
                self.wait(_ISOLVE / _ISOLVE_STEPS)
        logs.log(
            "iSolve: Memory/allocation error detected after 2 attempts: Error: bad allocation",
            level="progress",
            log_type="error",
            caller=f"{strategy}._check_for_memory_error_and_exit",
        )
        logs.log(
            "Max internal retries exceeded. Exiting with code 42 to trigger session restart.",
            level="progress",
            log_type="error",
            caller=f"{strategy}._check_for_memory_error_and_exit",
        )
        raise _OutOfMemory

    def extract(self, sim: Simulation, folder: Path, names: _Names) -> None:
        logs = self.logs
        study = self.study_class
        logs.log(
            "Run deliverables verified. Proceeding with extraction.",
            log_type="info",
            caller=f"{study}._verify_run_deliverables_before_extraction",
        )
        if self.fails("extract"):
            raise _StageFailure(f"Could not find simulation '{names.sim_name}' after reloading.")
        logs.log("Project reloaded.", log_type="success", caller="ProjectManager.reload_project")
        results = _fake_results(sim, self.rng)
        power, balance = results["input_power_W"], results["power_balance"]["Balance"]
        extras: dict[str, Callable[[], None]] = {
            "extract_input_power": lambda: logs.log(
                f"  - Calculated theoretical input power: {power:.4e} W",
                log_type="highlight",
                caller="PowerExtractor._extract_far_field_power",
            ),
            "extract_power_balance": lambda: logs.log(
                f"    - Final Balance: {balance:.2f}%",
                log_type="highlight",
                caller="PowerExtractor.extract_power_balance",
            ),
        }
        with self.subtask("extract_results_total", "extract"):
            for label, task, caller, seconds in _EXTRACT_STEPS:
                self.step(label, task, caller, seconds, extras.get(task))
            self._write_results(folder, results)
        _log_metadata_update(logs, study, "Extract")
        logs.log(f"Saving project to {names.project}...", log_type="info", caller="ProjectManager.save")
        logs.raw("[Info]  Document produced by Sim4Life version 8.2.0.16876")
        logs.log("Project saved.", log_type="success", caller="ProjectManager.save")
        self.stage_complete("Extracting Results")

    # --- files -----------------------------------------------------------------------------

    def _write_metadata(self, sim: Simulation, folder: Path) -> None:
        snapshot = {
            "study_type": sim.study_type,
            "phantom": sim.phantom,
            "frequency_mhz": sim.frequency_label,
            "scenario": sim.scenario,
            "position": sim.position,
            "orientation": sim.orientation,
        }
        metadata = {
            "config_hash": f"{zlib.crc32(json.dumps(snapshot, sort_keys=True).encode()):08x}",
            "config_snapshot": snapshot,
            "setup_timestamp": self._clock(),
            "run_done": False,
            "extract_done": False,
        }
        (folder / "config.json").write_text(json.dumps(metadata, indent=4), encoding="utf-8")

    def _write_results(self, folder: Path, results: dict[str, Any]) -> None:
        logs = self.logs
        folder.mkdir(parents=True, exist_ok=True)
        png = folder / "point_sensor_data.png"
        png.write_bytes(png_bytes(seed=self.index))
        logs.log(
            f"  - Point sensor plot saved to: {png}", log_type="info", caller="SensorExtractor._save_plot"
        )
        tissues = results.pop("_tissues")
        pkl = folder / "sar_stats_all_tissues.pkl"
        with pkl.open("wb") as handle:
            pickle.dump({"tissues": tissues, "summary": dict(results)}, handle)
        logs.log(f"  - Pickle report saved to: {pkl}", log_type="info", caller="Reporter._save_pickle_report")
        html = folder / "sar_stats_all_tissues.html"
        rows = "".join(f"<tr><td>{t['tissue']}</td><td>{t['mass_avg_sar']:.4e}</td></tr>" for t in tissues)
        html.write_text(
            f"<html><body><table><tr><th>Tissue</th><th>SAR (W/kg)</th></tr>{rows}</table></body></html>"
        )
        logs.log(f"  - HTML report saved to: {html}", log_type="info", caller="Reporter._save_html_report")
        sar = folder / "sar_results.json"
        sar.write_text(json.dumps(results, indent=4), encoding="utf-8")
        logs.log(
            f"  - SAR results saved to: {sar}", log_type="info", caller="ResultsExtractor._save_json_results"
        )
        meta_path = folder / "config.json"
        if meta_path.is_file():
            metadata = json.loads(meta_path.read_text(encoding="utf-8"))
            metadata.update(run_done=True, extract_done=True)
            meta_path.write_text(json.dumps(metadata, indent=4), encoding="utf-8")


def _log_metadata_update(logs: _GoliatLogs, study: str, phase: str) -> None:
    """The two lines GOLIAT prints after a phase's deliverables check (run or extract)."""
    logs.log(
        f"{phase} deliverables verified. Updating metadata.",
        log_type="warning",
        caller=f"{study}._verify_and_update_metadata",
    )
    logs.log(
        "Updated metadata in config.json",
        log_type="info",
        caller="ProjectManager.update_simulation_metadata",
    )


def _fake_results(sim: Simulation, rng: random.Random) -> dict[str, Any]:
    """Plausible numbers in the shape of GOLIAT's `sar_results.json`."""
    power = rng.uniform(1e-4, 6e-4)
    tissues: list[dict[str, Any]] = [
        {"tissue": t, "mass_avg_sar": rng.uniform(1e-6, 5e-4), "peak_sar_10g": rng.uniform(1e-5, 2e-3)}
        for t in _TISSUES
    ]
    whole_body = rng.uniform(2e-6, 4e-5)
    return {
        "study_type": sim.study_type,
        "phantom": sim.phantom,
        "frequency_mhz": sim.frequency_label,
        "placement": sim.case,
        "input_power_W": power,
        "whole_body_sar": whole_body,
        "peak_sar_10g_W_kg": max(float(t["peak_sar_10g"]) for t in tissues),
        "head_SAR": rng.uniform(1e-6, 5e-5),
        "trunk_SAR": rng.uniform(1e-6, 5e-5),
        "power_balance": {"Pin": power, "Balance": rng.uniform(88.0, 112.0)},
        "_tissues": tissues,
    }


def _traceback_text(exc: BaseException) -> str:
    """A traceback like the one GOLIAT logs after a fatal error (a RuntimeError in GOLIAT)."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    return f"Traceback (most recent call last):\n{frames}RuntimeError: {exc}"


def run_simulated_study(
    config_path: str | os.PathLike[str],
    *,
    speed: float = 1.0,
    fail_at: str | None = None,
    exit_code: int | None = None,
    fail_simulation: int = 1,
    results_dir: str | os.PathLike[str] | None = None,
    workdir: str | os.PathLike[str] | None = None,
    stdout: TextIO | None = None,
    seed: int = 0,
    colours: bool | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    clock: Callable[[], float] = time.time,
) -> int:
    """Run the fake study and return its exit code (0, `exit_code` on failure, 42 out of memory).

    `exit_code` without `fail_at` fails the run phase (where GOLIAT runs out of memory).
    `workdir` gets `logs/` (default: current directory); `results_dir` gets `results/`
    (default: `workdir`). `colours` overrides the COLORAMA_STRIP / JUPYTER_NOTEBOOK rule;
    `sleep`, `monotonic` and `clock` let tests run it instantly and deterministically.
    Raises `SimulatedStudyError` for a config it cannot use.
    """
    if speed <= 0:
        raise ValueError("speed must be positive")
    if fail_at is not None and fail_at not in PHASES:
        raise ValueError(f"fail_at must be one of {PHASES}, not {fail_at!r}")
    if fail_at is None and exit_code is not None:
        fail_at = "run"
    path = Path(config_path)
    config = load_config(path)
    try:
        simulations = enumerate_simulations(config)
    except ConfigError as exc:
        raise SimulatedStudyError(f"{path.name}: {exc}") from exc
    work = Path(workdir) if workdir is not None else Path.cwd()
    root = Path(results_dir) if results_dir is not None else work
    out = stdout if stdout is not None else sys.stdout
    logs = _GoliatLogs(out, work, _keep_colours() if colours is None else colours, clock)
    if config.get("use_gui", True) is not False:
        logs.record("GUI not available, running in console mode...", level="progress")
    study = _SimulatedStudy(
        config,
        path.name,
        logs,
        results_root=root,
        speed=speed,
        fail_at=fail_at,
        fail_simulation=fail_simulation,
        exit_code=1 if exit_code is None else exit_code,
        seed=seed,
        sleep=sleep,
        monotonic=monotonic,
        clock=clock,
    )
    try:
        return study.run(simulations)
    finally:
        logs.shutdown()
