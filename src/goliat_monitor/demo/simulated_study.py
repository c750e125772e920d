"""A stand-in for `goliat study`: same console text, same log files, fake solver, real result files.

Demos, tests and benchmarks need a GOLIAT that runs anywhere in seconds. This module reads a real
GOLIAT config (resolving `extends` from the files beside it), lists the simulations it implies
with `goliat_monitor.domain.campaign`, and walks each through GOLIAT's setup / run / extract
phases, printing what GOLIAT's console mode prints (`cli/run_study.py` without a GUI):

* `ConsoleLogger`'s boxes ("Simulation 3/36 (8.3%)", "[SUCCESS] Setup Complete",
  "Overall Progress: 9/36 (25.0%)");
* the phase headers and timings of `utils.profile` and `BaseStudy.subtask`, iSolve's echoed
  output with `[PROGRESS]` lines, GOLIAT's FDTD milestones, a few raw Sim4Life lines;
* warnings: each simulation logs GOLIAT's routine verbose-level warnings, and every third one
  (the 1st, 4th, ... shifted by `seed`) also a progress-level "    - iSolve failed, retry attempt 1".

This module is the driver: the order of GOLIAT's calls, the timings, the failures and the exit
code. How each record looks on the console and in GOLIAT's log files is `goliat_logs.py`; the
result files each simulation leaves behind are `fake_results.py`; iSolve's output and crashes
are `fake_isolve.py`.

Failures (`fail_at`): the run breaks in that phase of simulation `fail_simulation` and leaves the
way GOLIAT's `BaseStudy.run` does when an error escapes the study ("--- FATAL ERROR in study: ...
---", a traceback, "--- FarFieldStudy Finished ---"), exiting with `exit_code` (default 1;
GOLIAT's console mode itself would exit 0 there). With exit code 42 in the run phase it prints
GOLIAT's iSolve out-of-memory sequence instead (one internal retry, then "Max internal retries
exceeded. Exiting with code 42 to trigger session restart.").
"""

from __future__ import annotations

import os
import random
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from goliat_monitor.config_files import read_config
from goliat_monitor.demo.fake_isolve import FakeISolve, OutOfMemory, StageFailure
from goliat_monitor.demo.fake_results import TISSUES, fake_results, write_metadata, write_results
from goliat_monitor.demo.goliat_logs import GoliatLogs, keep_colours
from goliat_monitor.domain.campaign import (
    FAR_FIELD,
    ConfigError,
    Simulation,
    enumerate_simulations,
    merge_extends,
)
from goliat_monitor.domain.models import EXIT_CODE_OUT_OF_MEMORY, PHASES

__all__ = [
    "SimulatedStudyError",
    "load_config",
    "run_simulated_study",
]


# Seconds each subtask takes at speed 1 (about 4 s per simulation with iSolve's 1.6 s).
_SETUP_STEPS = (
    ("Load phantom", "setup_load_phantom", 0.35),
    ("Configure scene ({scene})", "setup_configure_scene", 0.10),
    ("Assign materials", "setup_materials", 0.25),
    ("Configure solver ({solver})", "setup_solver", 0.10),
    ("Voxelize simulation", "setup_voxelize", 0.40),
    ("Save project", "setup_save_project", 0.10),
)
_WRITE_INPUT, _WAIT, _RELOAD = 0.20, 0.10, 0.15
_EXTRACT_STEPS = (
    ("Extract input power", "extract_input_power", "PowerExtractor.extract_input_power", 0.05),
    ("Extract SAR statistics", "extract_sar_statistics", "SarExtractor.extract_sar_statistics", 0.35),
    ("Extract power balance", "extract_power_balance", "PowerExtractor.extract_power_balance", 0.15),
    ("Extract point sensors", "extract_point_sensor_data", "SensorExtractor.extract_point_sensor_data", 0.10),
)


class SimulatedStudyError(Exception):
    """The config cannot be read or implies no simulation GOLIAT could run."""


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a GOLIAT config and merge its `extends` chain, looking for parents beside it."""
    config_path = Path(path)
    try:
        config, parents = read_config(config_path.parent, config_path.name)
        return merge_extends(config, parents)
    except ConfigError as exc:
        raise SimulatedStudyError(f"{config_path.name}: {exc}") from exc


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
        logs: GoliatLogs,
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
        self.isolve = FakeISolve(logs, self.rng, speed=speed, exit_code=exit_code, wait=self.wait)
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
        except OutOfMemory:
            code = EXIT_CODE_OUT_OF_MEMORY
        except StageFailure as exc:
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
                    raise StageFailure("Voxeling failed: the voxel scene could not be created")
                self.step(label, task, setup_caller, seconds, extra)
            logs.log("Common settings applied.", log_type="success", caller=setup_caller)
        write_metadata(sim, folder, self._clock())
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
                for tissue in self.rng.sample(TISSUES, 3):
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
                self.isolve.banner(names.sim_name)
                logs.log("iSolve exited with code 1", log_type="verbose")
                logs.log(
                    "    - iSolve failed, retry attempt 1",
                    level="progress",
                    log_type="warning",
                    caller="RetryHandler.record_attempt",
                )
            self.isolve.run(names.sim_name, fail=self.fails("run"))
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

    def extract(self, sim: Simulation, folder: Path, names: _Names) -> None:
        logs = self.logs
        study = self.study_class
        logs.log(
            "Run deliverables verified. Proceeding with extraction.",
            log_type="info",
            caller=f"{study}._verify_run_deliverables_before_extraction",
        )
        if self.fails("extract"):
            raise StageFailure(f"Could not find simulation '{names.sim_name}' after reloading.")
        logs.log("Project reloaded.", log_type="success", caller="ProjectManager.reload_project")
        results = fake_results(sim, self.rng)
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
            write_results(logs, folder, results, plot_seed=self.index)
        _log_metadata_update(logs, study, "Extract")
        logs.log(f"Saving project to {names.project}...", log_type="info", caller="ProjectManager.save")
        logs.raw("[Info]  Document produced by Sim4Life version 8.2.0.16876")
        logs.log("Project saved.", log_type="success", caller="ProjectManager.save")
        self.stage_complete("Extracting Results")


def _log_metadata_update(logs: GoliatLogs, study: str, phase: str) -> None:
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
    logs = GoliatLogs(out, work, keep_colours() if colours is None else colours, clock)
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
