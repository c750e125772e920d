"""`timing` messages from GOLIAT's printed durations, and the Timings tabs computed from them.

The literal lines are GOLIAT's records as it prints them: console `ColorFormatter` records
(`{colour}{message}\\x1b[0m \\x1b[30m\\x1b[2m[Class.method]\\x1b[0m`, verbose records blue),
the GUI's `terminal_only` echo of them, colour-stripped ones and `CustomFormatter` file lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from goliat_monitor.agent.goliat_output import GoliatOutputParser
from goliat_monitor.domain.timings import TimingSample, pie_charts, timings_table
from goliat_monitor.protocol import GuiUpdate, Heartbeat
from goliat_monitor.protocol import TimingSample as TimingWire
from tests.agent.test_goliat_output import run_study_process

Messages = list[dict[str, Any]]
CALLER = "\x1b[30m\x1b[2m[{}]\x1b[0m"


def console(colour: str, text: str, caller: str) -> str:
    return f"\x1b[0m{colour}{text}\x1b[0m {CALLER.format(caller)}"


def header(text: str, caller: str = "profile") -> str:
    return console("\x1b[35m\x1b[1m", text, caller)


def verbose(text: str, caller: str) -> str:
    return console("\x1b[34m", text, caller)


def progress(text: str, caller: str) -> str:
    return console("\x1b[32m", text, caller)


def success(text: str, caller: str) -> str:
    return console("\x1b[32m\x1b[1m", text, caller)


def timings(parser: GoliatOutputParser, lines: Iterable[str]) -> Messages:
    out: Messages = []
    for now, line in enumerate(lines):
        out += parser.feed(line, float(now))
    return [m for m in out if m["type"] == "timing"]


# One far-field simulation, as GOLIAT prints it to the console (COLORAMA_STRIP=0).
SIMULATION_1 = [
    header("--- Starting Far-Field Study: far_field_config.json ---", "FarFieldStudy._run_study"),
    header(
        "--- Processing Simulation 1/2: thelonious, 700MHz, environmental, x_pos, theta ---",
        "FarFieldStudy._process_single_far_field_simulation",
    ),
    header("--- Starting: setup ---"),
    progress("  - Setup simulation...", "FarFieldStudy.subtask"),
    progress("    - Load phantom...", "FarFieldSetup.run_full_setup"),
    verbose("      - Subtask 'setup_load_phantom' done in 12.34s", "FarFieldSetup.run_full_setup"),
    success("      - Done in 12.34s", "FarFieldSetup.run_full_setup"),
    verbose("      - Subtask 'setup_voxelize' done in 40.02s", "FarFieldSetup.run_full_setup"),
    verbose("    - Subtask 'setup_simulation' done in 98.10s", "FarFieldStudy.subtask"),
    success("    - Done in 98.10s", "FarFieldStudy.subtask"),
    header("--- Finished: setup (took 104.53s) ---"),
    header("--- Starting: run ---"),
    progress("  - Run simulation total...", "FarFieldStudy.subtask"),
    verbose("      - Subtask 'run_write_input_file' done in 0.41s", "SimulationRunner.run"),
    progress("    - Execute iSolve...", "ISolveManualStrategy.run"),
    verbose("      - Subtask 'run_isolve_execution' done in 812.40s", "ISolveManualStrategy.run"),
    success("      - Done in 812.40s", "ISolveManualStrategy.run"),
    verbose("    - Subtask 'run_simulation_total' done in 815.00s", "FarFieldStudy.subtask"),
    header("--- Finished: run (took 815.20s) ---"),
    header("--- Starting: extract ---"),
    verbose("      - Subtask 'extract_sar_statistics' done in 30.00s", "SarExtractor.extract_sar_statistics"),
    verbose("    - Subtask 'auto_induced_focus_search' done in 2.50s", "AutoInducedProcessor.process"),
    verbose("    - Subtask 'extract_results_700MHz' done in 33.00s", "FarFieldStudy.subtask"),
    header("--- Finished: extract (took 35.10s) ---"),
]


def test_console_durations_become_timing_messages_in_order() -> None:
    found = timings(GoliatOutputParser(), SIMULATION_1)
    assert [(m["phase"], m["subtask"], m["seconds"]) for m in found] == [
        ("setup", "load_phantom", 12.34),
        ("setup", "voxelize", 40.02),
        ("setup", "simulation", 98.10),
        ("setup", None, 104.53),
        ("run", "write_input_file", 0.41),
        ("run", "isolve_execution", 812.40),
        ("run", "simulation_total", 815.00),
        ("run", None, 815.20),
        ("extract", "sar_statistics", 30.00),
        ("extract", "auto_induced_focus_search", 2.50),  # no phase in its name: the running one
        ("extract", "results_700MHz", 33.00),
        ("extract", None, 35.10),
    ]
    assert {m["simulation"] for m in found} == {1}


def test_timing_messages_are_valid_protocol_messages() -> None:
    for message in timings(GoliatOutputParser(), SIMULATION_1):
        update = GuiUpdate.model_validate({"machineId": "vm-1", "message": message})
        assert isinstance(update.message, TimingWire)
        assert update.message.model_dump() == {
            "type": "timing",
            **{k: message.get(k) for k in message if k != "type"},
        }


def test_the_tabs_from_one_simulation() -> None:
    found = timings(GoliatOutputParser(), SIMULATION_1)
    samples = [TimingSample(m["phase"], m["subtask"], m["seconds"]) for m in found]
    rows = timings_table(samples)
    assert [(r.phase, r.subtask) for r in rows] == [
        ("setup", None),
        ("setup", "load_phantom"),
        ("setup", "voxelize"),
        ("run", None),
        ("run", "write_input_file"),
        ("run", "isolve_execution"),
        ("extract", None),
        ("extract", "sar_statistics"),
        ("extract", "auto_induced_focus_search"),
        ("extract", "results_700MHz"),
    ]
    phases, setup, run, extract = pie_charts(samples)
    assert [s.label for s in phases.slices] == ["Setup", "Run", "Extract"]
    assert [s.label for s in setup.slices] == ["Load Phantom", "Voxelize"]
    # write_input_file is 0.05 % of the run pie, alone under 3 %: it keeps its name
    assert [s.label for s in run.slices] == ["iSolve Execution", "Write Input File"]
    assert [s.label for s in extract.slices] == [
        "SAR Statistics",
        "Auto Induced Focus Search",
        "Results 700mhz",
    ]


def test_cached_setup_sends_no_phase_duration() -> None:
    lines = [
        header(
            "--- Processing Simulation 2/2: thelonious, 900MHz, environmental, x_pos, phi ---",
            "FarFieldStudy._run_study",
        ),
        header("--- Starting: setup ---"),
        header("--- Finished: setup (took 0.62s) ---"),  # no "Setup simulation": the project was cached
        header("--- Starting: run ---"),
        header("--- Finished: run (took 700.00s) ---"),
    ]
    found = timings(GoliatOutputParser(), lines)
    assert [(m["phase"], m["subtask"], m["seconds"], m["simulation"]) for m in found] == [
        ("run", None, 700.0, 2)
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # GOLIAT's GUI echoes a verbose record inside its own colour (QueueHandler, terminal_only)
        (
            "\x1b[34m\x1b[34m      - Subtask 'setup_load_phantom' done in 7.25s\x1b[0m "
            "\x1b[30m\x1b[2m[NearFieldSetup.run_full_setup]\x1b[0m\x1b[0m",
            ("setup", "load_phantom", 7.25),
        ),
        # colours stripped (COLORAMA_STRIP unset, stdout piped)
        (
            "      - Subtask 'setup_materials' done in 3.00s [NearFieldSetup.run_full_setup]",
            ("setup", "materials", 3.0),
        ),
        # logs/<ts>.log and a simulation's verbose.log
        (
            "2025-10-14 10:25:31,902 - INFO -       - Subtask 'run_isolve_execution' done in 812.40s "
            "[ISolveManualStrategy.run]",
            ("run", "isolve_execution", 812.4),
        ),
        (
            "2025-10-14 10:25:33,001 - INFO - --- Finished: run (took 815.20s) --- [profile]",
            ("run", None, 815.2),
        ),
    ],
    ids=["gui-mode", "colours-stripped", "log-file-subtask", "log-file-phase"],
)
def test_every_form_goliat_prints_a_duration_in(line: str, expected: tuple[str, str | None, float]) -> None:
    (found,) = timings(GoliatOutputParser(), [line])
    assert (found["phase"], found["subtask"], found["seconds"]) == expected
    assert "simulation" not in found  # before any "Processing Simulation" line


def test_progress_log_gives_phase_durations_from_done_in() -> None:
    """`*.progress.log` has no verbose records: a phase's length is its top-level subtask's."""
    parser = GoliatOutputParser(source="progress_log")
    lines = [
        "2025-10-14 10:23:45,130 - INFO - --- Processing Simulation 1/2: thelonious, 700MHz, x_pos, theta --- "
        "[FarFieldStudy._process_single_far_field_simulation]",
        "2025-10-14 10:23:45,140 - INFO -   - Setup simulation... [FarFieldStudy.subtask]",
        "2025-10-14 10:23:55,140 - INFO -     - Done in 10.00s [FarFieldStudy.subtask]",
        "2025-10-14 10:23:55,150 - INFO -   - Run simulation total... [FarFieldStudy.subtask]",
    ]
    found = timings(parser, lines)
    assert [(m["phase"], m["subtask"], m["seconds"], m["simulation"]) for m in found] == [
        ("setup", None, 10.0, 1)
    ]


@pytest.mark.parametrize(
    "line",
    [
        verbose("      - Subtask 'setup_voxelize' done in soon", "FarFieldSetup.run_full_setup"),
        verbose("Subtask 'setup_voxelize' took 4.00s", "profile"),  # utils.core's other timer: no phase
        "[Info]  Subtask 'x' done in 1.00s (from a solver)",
    ],
)
def test_lines_that_only_look_like_timings_send_nothing(line: str) -> None:
    assert timings(GoliatOutputParser(), [line]) == []


def test_simulated_study_fills_every_timings_tab(tmp_path: Path) -> None:
    """The demo's study prints GOLIAT's timing records, so pages can be tested without GOLIAT."""
    code, lines = run_study_process(tmp_path, colours=True)
    assert code == 0
    found = timings(GoliatOutputParser(), lines)
    assert {m["simulation"] for m in found} == {1, 2, 3, 4}
    samples = [TimingSample(m["phase"], m["subtask"], m["seconds"]) for m in found]
    rows = timings_table(samples)
    assert {r.phase: r.count for r in rows if r.subtask is None} == {"setup": 4, "run": 4, "extract": 4}
    subtasks = {(r.phase, r.subtask) for r in rows if r.subtask is not None}
    assert {("setup", "voxelize"), ("run", "isolve_execution"), ("extract", "sar_statistics")} <= subtasks


def test_protocol_refuses_impossible_timings_and_disk_figures() -> None:
    with pytest.raises(ValidationError):
        GuiUpdate.model_validate(
            {"machineId": "vm-1", "message": {"type": "timing", "phase": "run", "seconds": -1}}
        )
    with pytest.raises(ValidationError):
        Heartbeat.model_validate({"machineId": "vm-1", "diskReadMBps": float("inf")})
    beat = Heartbeat.model_validate(
        {"machineId": "vm-1", "diskReadMBps": 10.5, "diskWriteMBps": 0.0, "pageFaultsPerSec": 250.0}
    )
    assert (beat.diskReadMBps, beat.diskWriteMBps, beat.pageFaultsPerSec) == (10.5, 0.0, 250.0)
    # GOLIAT's own heartbeat, without any of them, is as valid as before
    assert Heartbeat.model_validate({"ipAddress": "10.0.0.5", "gpuName": "RTX 4090"}).diskReadMBps is None
