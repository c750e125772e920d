"""The GOLIAT output parser on GOLIAT's real console text, and on the simulated study's output.

The literal lines below are what GOLIAT prints: `ColorFormatter` records
(`{colour}{message}\\x1b[0m \\x1b[30m\\x1b[2m[Class.method]\\x1b[0m`, with colorama's autoreset
`\\x1b[0m` at the start of the next line), most copied from the console output captured in
GOLIAT's `docs/tutorials/01_far_field_basics.ipynb`; GUI-mode lines as `QueueHandler` prints them;
and `CustomFormatter` log-file lines.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from goliat_monitor.agent.goliat_lines import classify_style, strip_ansi
from goliat_monitor.agent.goliat_output import GoliatOutputParser
from tests.conftest import TEST_CONFIGS

Messages = list[dict[str, Any]]


def feed_all(
    parser: GoliatOutputParser, lines: Iterable[str], start: float = 0.0, step: float = 1.0
) -> Messages:
    out: Messages = []
    now = start
    for line in lines:
        out += parser.feed(line, now)
        now += step
    return out


def of_type(messages: Messages, kind: str) -> Messages:
    return [m for m in messages if m["type"] == kind]


def percent(message: dict[str, Any]) -> float:
    return float(message["current"]) / float(message["total"]) * 100


# --- one line at a time ------------------------------------------------------------------------

CONSOLE_LINES = [
    # (line exactly as printed, expected message type, log_type, message text)
    (
        "\x1b[0m\x1b[35m\x1b[1m--- Starting Far-Field Study: tutorial_1_far_field.json ---\x1b[0m "
        "\x1b[30m\x1b[2m[FarFieldStudy._run_study]\x1b[0m",
        "status",
        "header",
        "--- Starting Far-Field Study: tutorial_1_far_field.json ---",
    ),
    (
        "\x1b[0m\x1b[32m  - Setup simulation...\x1b[0m \x1b[30m\x1b[2m[FarFieldStudy.subtask]\x1b[0m",
        "status",
        "progress",
        "  - Setup simulation...",
    ),
    (
        "\x1b[0m\x1b[32m\x1b[1m      - Done in 8.73s\x1b[0m \x1b[30m\x1b[2m[FarFieldSetup.run_full_setup]\x1b[0m",
        "status",
        "success",
        "      - Done in 8.73s",
    ),
    (
        "\x1b[0m\x1b[33m    - iSolve failed, retry attempt 1\x1b[0m \x1b[30m\x1b[2m[RetryHandler.record_attempt]\x1b[0m",
        "status",
        "warning",
        "    - iSolve failed, retry attempt 1",
    ),
    (
        "\x1b[0m\x1b[31miSolve: Error: bad allocation\x1b[0m "
        "\x1b[30m\x1b[2m[ISolveManualStrategy._process_output_line]\x1b[0m",
        "status",
        "error",
        "iSolve: Error: bad allocation",
    ),
    (
        "\x1b[0m\x1b[35m--- FATAL ERROR in study: Could not find simulation 'EM_FDTD_x' after reloading. ---"
        "\x1b[0m \x1b[30m\x1b[2m[FarFieldStudy.run]\x1b[0m",
        "status",
        "fatal",
        "--- FATAL ERROR in study: Could not find simulation 'EM_FDTD_x' after reloading. ---",
    ),
    # verbose-level records: printed the same way, but GOLIAT's GUI never shows them
    (
        "\x1b[0m\x1b[36mNo metadata file found at config.json.\x1b[0m "
        "\x1b[30m\x1b[2m[ProjectManager.verify_simulation_metadata]\x1b[0m",
        "terminal_only",
        "info",
        "No metadata file found at config.json.",
    ),
    (
        "\x1b[0m\x1b[34m      - Subtask 'setup_load_phantom' done in 8.73s\x1b[0m "
        "\x1b[30m\x1b[2m[FarFieldSetup.run_full_setup]\x1b[0m",
        "terminal_only",
        "verbose",
        "      - Subtask 'setup_load_phantom' done in 8.73s",
    ),
    (
        "\x1b[0m\x1b[33mRun deliverables verified. Updating metadata.\x1b[0m "
        "\x1b[30m\x1b[2m[FarFieldStudy._verify_and_update_metadata]\x1b[0m",
        "terminal_only",
        "warning",
        "Run deliverables verified. Updating metadata.",
    ),
    (
        "\x1b[0m\x1b[33m--- Phantom Check Result: Phantom not found in project. ---\x1b[0m "
        "\x1b[30m\x1b[2m[PhantomSetup._log]\x1b[0m",
        "terminal_only",
        "warning",
        "--- Phantom Check Result: Phantom not found in project. ---",
    ),
    (
        "\x1b[0m\x1b[33m\x1b[1m    - Final Balance: 91.85%\x1b[0m \x1b[30m\x1b[2m[PowerExtractor.extract_power_balance]\x1b[0m",
        "terminal_only",
        "highlight",
        "    - Final Balance: 91.85%",
    ),
    (
        "\x1b[0m\x1b[35m\x1b[1m--- Starting: setup ---\x1b[0m \x1b[30m\x1b[2m[profile]\x1b[0m",
        "terminal_only",
        "header",
        "--- Starting: setup ---",
    ),
    # iSolve's own output, echoed by GOLIAT's verbose logger with no log_type and no caller
    (
        "\x1b[0m\x1b[37miSolve X, Version 8.2.0 (16876), 64Bit Windows\x1b[0m \x1b[30m\x1b[2m\x1b[0m",
        "terminal_only",
        "default",
        "iSolve X, Version 8.2.0 (16876), 64Bit Windows",
    ),
    # Sim4Life's own output: no GOLIAT colour; its [Warn] is not a GOLIAT warning
    (
        '\x1b[0mSimulation : [Warn]  Some properties for material "Air" have been set to their value '
        "according to the selected database",
        "terminal_only",
        "default",
        'Simulation : [Warn]  Some properties for material "Air" have been set to their value '
        "according to the selected database",
    ),
]


@pytest.mark.parametrize(("line", "kind", "log_type", "text"), CONSOLE_LINES)
def test_console_record(line: str, kind: str, log_type: str, text: str) -> None:
    messages = GoliatOutputParser().feed(line, 5.0)
    logs = [m for m in messages if m["type"] in ("status", "terminal_only")]
    assert logs == [{"type": kind, "message": text, "log_type": log_type, "timestamp": 5.0}]


@pytest.mark.parametrize(
    ("fg", "bright", "log_type"),
    [
        (37, False, "default"),
        (None, False, "default"),
        (32, False, "progress"),
        (32, True, "success"),
        (36, False, "info"),
        (34, False, "verbose"),
        (33, False, "warning"),
        (33, True, "highlight"),
        (31, False, "error"),
        (35, False, "fatal"),
        (35, True, "header"),
        (93, False, "highlight"),
    ],
)
def test_colour_to_log_type(fg: int | None, bright: bool, log_type: str) -> None:
    assert classify_style(fg, bright) == log_type


def test_header_split_over_two_lines_keeps_its_colour() -> None:
    """`"\\n--- Processing Simulation ..."`: the colour is set on one line, the text is on the next."""
    parser = GoliatOutputParser()
    messages = feed_all(
        parser,
        [
            "\x1b[0m\x1b[35m\x1b[1m",
            "--- Processing Simulation 1/4: thelonious, 700MHz, x_pos, theta ---\x1b[0m "
            "\x1b[30m\x1b[2m[FarFieldStudy._run_study]\x1b[0m",
        ],
    )
    assert of_type(messages, "status") == [
        {
            "type": "status",
            "message": "--- Processing Simulation 1/4: thelonious, 700MHz, x_pos, theta ---",
            "log_type": "header",
            "timestamp": 1.0,
        }
    ]
    assert of_type(messages, "simulation_details") == [
        {
            "type": "simulation_details",
            "simulation_count": 1,
            "total_simulations": 4,
            "current_case": "thelonious, 700MHz, x_pos, theta",
        }
    ]
    assert of_type(messages, "overall_progress") == [
        {"type": "overall_progress", "current": 0.0, "total": 100}
    ]
    assert parser.total_simulations == 4
    assert parser.simulation_count == 1


def test_near_field_counter_and_stripped_colours() -> None:
    """Without COLORAMA_STRIP=0 GOLIAT prints no colours: the caller suffix and the words remain."""
    parser = GoliatOutputParser()
    messages = feed_all(
        parser,
        [
            "--- Starting Near-Field Study: near_field_config.json --- [NearFieldStudy._run_study]",
            "",
            "--- Processing Simulation 3/36: thelonious, 700MHz, by_belly_up_vertical --- "
            "[NearFieldStudy._process_single_near_field_simulation]",
            "    - iSolve failed, retry attempt 2 [RetryHandler.record_attempt]",
            "WARNING: Run deliverables not found. Cannot proceed with extraction. The run phase must complete "
            "successfully before extraction can start. [NearFieldStudy._verify_run_deliverables_before_extraction]",
            "Reading command line ",
            "ERROR during simulation: boom [NearFieldStudy._run_placement]",
        ],
    )
    details = of_type(messages, "simulation_details")
    assert details[-1]["simulation_count"] == 3
    assert details[-1]["total_simulations"] == 36
    assert details[-1]["current_case"] == "thelonious, 700MHz, by_belly_up_vertical"
    status = of_type(messages, "status")
    expected = [
        ("header", "--- Starting Near-Field Study: "),
        ("header", "--- Processing Simulation 3/36: "),
        ("warning", "    - iSolve failed, retry attempt 2"),
        ("warning", "WARNING: Run deliverables not found."),
        ("error", "ERROR during simulation: boom"),
    ]
    assert len(status) == len(expected)
    for message, (log_type, start) in zip(status, expected, strict=True):
        assert message["log_type"] == log_type
        assert message["message"].startswith(start)
        assert not message["message"].endswith("]")  # caller suffix removed
    # the echoed iSolve line (a bare logger call: empty caller, hence a trailing space)
    assert of_type(messages, "terminal_only")[0]["message"] == "Reading command line"
    # progress starts from the simulations already done
    assert percent(of_type(messages, "overall_progress")[-1]) == pytest.approx(2 / 36 * 100, abs=0.01)


def test_gui_mode_lines() -> None:
    """GOLIAT's GUI process prints progress-level records without a caller, verbose ones with it."""
    parser = GoliatOutputParser()
    messages = feed_all(
        parser,
        [
            "\x1b[0m\x1b[35m\x1b[1m--- Starting Far-Field Study: x.json ---\x1b[0m\x1b[0m",
            "\x1b[0m\x1b[36m\x1b[36mProject path set to: C:/r/x.smash\x1b[0m "
            "\x1b[30m\x1b[2m[ProjectManager.create_or_open_project]\x1b[0m\x1b[0m",
            "\x1b[0m\x1b[33m    - iSolve failed, retry attempt 1\x1b[0m\x1b[0m",
            "\x1b[0m\x1b[32m\x1b[32m  - Configuring solver settings...\x1b[0m "
            "\x1b[30m\x1b[2m[FarFieldSetup._setup_solver_settings]\x1b[0m\x1b[0m",
        ],
    )
    kinds = [(m["type"], m["log_type"]) for m in messages if m["type"] in ("status", "terminal_only")]
    assert kinds == [
        ("status", "header"),
        ("terminal_only", "info"),
        ("status", "warning"),
        ("terminal_only", "progress"),
    ]


def test_console_logger_boxes() -> None:
    """`ConsoleLogger`'s boxes become structured messages, never log lines."""
    parser = GoliatOutputParser()
    border = "-" * 70
    messages = feed_all(
        parser,
        [
            "\x1b[0m\x1b[37m",
            f"\x1b[35m\x1b[1m{border}",
            "Simulation 9/36 (25.0%)",
            "thelonious, 700MHz, x_pos, theta",
            f"{border}\x1b[0m",
            "\x1b[0m \x1b[30m\x1b[2m\x1b[0m",
            "\x1b[0m\x1b[37m",
            f"\x1b[32m\x1b[1m{border}",
            "[SUCCESS] Setup Complete",
            f"{border}\x1b[0m",
            "\x1b[0m \x1b[30m\x1b[2m\x1b[0m",
            "\x1b[0m\x1b[37m",
            f"\x1b[32m{border}",
            "Overall Progress: 9/36 (25.0%)",
            f"{border}\x1b[0m",
            "\x1b[0m \x1b[30m\x1b[2m\x1b[0m",
        ],
    )
    assert not of_type(messages, "status")
    assert not of_type(messages, "terminal_only")
    assert of_type(messages, "simulation_details")[0]["simulation_count"] == 9
    assert {"type": "stage_progress", "name": "Setup", "current": 1, "total": 1} in messages
    assert percent(of_type(messages, "overall_progress")[-1]) == pytest.approx(25.0)
    assert parser.completed_simulations == 9


def test_progress_log_file_lines() -> None:
    """`logs/<ts>.progress.log`: timestamped records, multi-line ones continued without a prefix."""
    parser = GoliatOutputParser(source="progress_log")
    messages = feed_all(
        parser,
        [
            "2025-10-14 10:23:45,123 - INFO - --- Starting Far-Field Study: far_field_config.json --- "
            "[FarFieldStudy._run_study]",
            "2025-10-14 10:23:45,130 - INFO - ",
            "--- Processing Simulation 1/2: thelonious, 700MHz, x_pos, theta --- "
            "[FarFieldStudy._process_single_far_field_simulation]",
            "2025-10-14 10:23:45,140 - INFO -   - Setup simulation... [FarFieldStudy.subtask]",
            "2025-10-14 10:23:55,140 - INFO -     - Done in 10.00s [FarFieldStudy.subtask]",
            "2025-10-14 10:23:55,150 - INFO -   - Run simulation total... [FarFieldStudy.subtask]",
            "2025-10-14 10:23:56,000 - INFO -     - iSolve failed, retry attempt 1 [RetryHandler.record_attempt]",
            "2025-10-14 10:24:05,000 - ERROR - FATAL ERROR in study process: out of licences",
        ],
        step=5.0,
    )
    assert of_type(messages, "simulation_details")[0]["current_case"] == "thelonious, 700MHz, x_pos, theta"
    status = of_type(messages, "status")
    assert [m["log_type"] for m in status] == [
        "header",
        "header",
        "progress",
        "success",
        "progress",
        "warning",
        "fatal",
    ]
    assert status[-1]["message"] == "FATAL ERROR in study process: out of licences"
    stages = of_type(messages, "stage_progress")
    assert {
        "type": "stage_progress",
        "name": "Setup",
        "current": 0,
        "total": 1,
        "sub_stage": "Setup simulation",
    } in stages
    assert {"type": "stage_progress", "name": "Setup", "current": 1, "total": 1} in stages
    assert parser.current_phase == "run"


# --- progress and ETA --------------------------------------------------------------------------


SETUP_SUBTASK = "\x1b[0m\x1b[32m  - Setup simulation...\x1b[0m \x1b[30m\x1b[2m[FarFieldStudy.subtask]\x1b[0m"


def header(text: str, caller: str = "profile") -> str:
    return f"\x1b[0m\x1b[35m\x1b[1m{text}\x1b[0m \x1b[30m\x1b[2m[{caller}]\x1b[0m"


def last(messages: Messages, kind: str) -> dict[str, Any]:
    found = of_type(messages, kind)
    assert found, f"no {kind} message"
    return found[-1]


def test_progress_and_eta_follow_goliats_profiler() -> None:
    """Weights from printed phase durations; ETA = rest of this phase and simulation + later ones."""
    parser = GoliatOutputParser()
    processing = "--- Processing Simulation {}/2: thelonious, 700MHz, x_pos, theta ---"
    out = parser.feed(header(processing.format(1), "FarFieldStudy._run_study"), 0.0)
    assert percent(last(out, "overall_progress")) == 0.0
    assert last(out, "profiler_update")["eta_seconds"] == 2 * 3 * 60.0  # GOLIAT's 60 s default

    parser.feed(header("--- Starting: setup ---"), 0.0)
    parser.feed(SETUP_SUBTASK, 0.0)  # a real setup; a cached one would not count
    out = parser.feed(header("--- Finished: setup (took 10.00s) ---"), 10.0)
    assert last(out, "stage_progress") == {
        "type": "stage_progress",
        "name": "Setup",
        "current": 1,
        "total": 1,
    }
    assert percent(last(out, "overall_progress")) == pytest.approx(100 / 6, abs=0.01)  # equal weights
    assert last(out, "profiler_update")["eta_seconds"] == pytest.approx(60 + 60 + (10 + 60 + 60))

    parser.feed(header("--- Starting: run ---"), 10.0)
    out = parser.tick(40.0)  # half of the 60 s estimate
    assert percent(last(out, "overall_progress")) == pytest.approx(25.0, abs=0.01)
    assert last(out, "profiler_update")["eta_seconds"] == pytest.approx(30 + 60 + 130)
    assert last(out, "stage_progress") == {
        "type": "stage_progress",
        "name": "Run",
        "current": 50,
        "total": 100,
    }

    solver = (
        "\x1b[0m\x1b[37m[PROGRESS]: 80% [ 2282 / 2853 ] Time Update, estimated remaining time 20 seconds  "
        "@ 2140.68 MCells/s\x1b[0m \x1b[30m\x1b[2m\x1b[0m"
    )
    out = parser.feed(solver, 40.0)
    assert last(out, "stage_progress")["current"] == 80
    assert percent(last(out, "overall_progress")) == pytest.approx((1 + 0.8) / 3 / 2 * 100, abs=0.01)
    assert last(out, "profiler_update")["eta_seconds"] == pytest.approx(20 + 60 + 130)

    out = parser.feed(header("--- Finished: run (took 50.00s) ---"), 60.0)
    assert last(out, "stage_progress")["name"] == "Running Simulation"
    # weights now setup 10 : run 50 : extract (unseen, the mean) 30
    assert percent(last(out, "overall_progress")) == pytest.approx(60 / 90 / 2 * 100, abs=0.01)
    assert last(out, "profiler_update")["eta_seconds"] == pytest.approx(60 + (10 + 50 + 60))

    parser.feed(header("--- Starting: extract ---"), 60.0)
    out = parser.feed(header("--- Finished: extract (took 30.00s) ---"), 90.0)
    assert percent(last(out, "overall_progress")) == pytest.approx(50.0)
    assert last(out, "profiler_update")["eta_seconds"] == pytest.approx(10 + 50 + 30)

    out = parser.feed(header(processing.format(2), "FarFieldStudy._run_study"), 90.0)
    assert parser.completed_simulations == 1
    assert last(out, "simulation_details")["simulation_count"] == 2
    for phase, took in (("setup", 12), ("run", 48), ("extract", 30)):
        parser.feed(header(f"--- Starting: {phase} ---"), 90.0)
        if phase == "setup":
            parser.feed(SETUP_SUBTASK, 90.0)
        parser.feed(header(f"--- Finished: {phase} (took {took:.2f}s) ---"), 90.0 + took)
    out = parser.feed(header("\n--- FarFieldStudy Finished ---", "FarFieldStudy.run"), 200.0)
    assert parser.finished
    assert parser.overall_percent(200.0) == 100.0
    assert parser.eta_seconds(200.0) == 0.0
    assert parser.phase_estimate("setup") == pytest.approx(10 * 0.6 + 12 * 0.4)  # GOLIAT's 2-run weights


def test_cached_setup_is_left_out_of_the_estimates() -> None:
    parser = GoliatOutputParser()
    parser.feed(header("--- Processing Simulation 1/3: a, 700MHz, b, c ---", "FarFieldStudy._run_study"), 0.0)
    parser.feed(header("--- Starting: setup ---"), 0.0)
    parser.feed(header("--- Finished: setup (took 0.50s) ---"), 0.5)  # no "Setup simulation": cached
    assert parser.phase_estimate("setup") == 60.0
    parser.feed(header("--- Starting: setup ---"), 1.0)
    parser.feed(
        "\x1b[0m\x1b[32m  - Setup simulation...\x1b[0m \x1b[30m\x1b[2m[FarFieldStudy.subtask]\x1b[0m", 1.0
    )
    parser.feed(header("--- Finished: setup (took 30.00s) ---"), 31.0)
    assert parser.phase_estimate("setup") == 30.0


def test_fatal_error_keeps_progress_below_100() -> None:
    parser = GoliatOutputParser()
    messages = feed_all(
        parser,
        [
            header("--- Processing Simulation 1/1: a, 700MHz, b, c ---", "FarFieldStudy._run_study"),
            header("--- Starting: setup ---"),
            header("--- Finished: setup (took 3.00s) ---"),
            "\x1b[0m\x1b[35m--- FATAL ERROR in study: boom ---\x1b[0m \x1b[30m\x1b[2m[FarFieldStudy.run]\x1b[0m",
            "\x1b[0m\x1b[32m\x1b[1m",
            "--- FarFieldStudy Finished ---\x1b[0m \x1b[30m\x1b[2m[FarFieldStudy.run]\x1b[0m",
        ],
    )
    assert parser.finished
    assert parser.completed_simulations == 0
    assert percent(last(messages, "overall_progress")) < 100
    assert last(messages, "profiler_update")["eta_seconds"] == 0.0


def test_tick_reports_only_changes() -> None:
    parser = GoliatOutputParser(phase_estimates={"setup": 100.0, "run": 100.0, "extract": 100.0})
    parser.feed(header("--- Processing Simulation 1/1: a, 700MHz, b, c ---", "FarFieldStudy._run_study"), 0.0)
    parser.feed(header("--- Starting: setup ---"), 0.0)
    assert [m["type"] for m in parser.tick(50.0)] == ["stage_progress", "overall_progress", "profiler_update"]
    assert parser.tick(50.0) == []
    assert parser.overall_percent(50.0) == pytest.approx(100 / 6, abs=0.01)
    assert parser.eta_seconds(50.0) == pytest.approx(250.0)


def test_carriage_returns_and_line_endings() -> None:
    parser = GoliatOutputParser()
    out = parser.feed(
        "old text\rWARNING: Cannot verify run deliverables - project path not set. [X.y]\r\n", 1.0
    )
    assert [(m["type"], m["log_type"], m["message"]) for m in out] == [
        ("status", "warning", "WARNING: Cannot verify run deliverables - project path not set.")
    ]
    assert strip_ansi("\x1b[0m\x1b[32m\x1b[1mok\x1b[0m") == "ok"


# --- the simulated study, run as a real process ------------------------------------------------


def goliat_monitor_command() -> list[str]:
    script = shutil.which("goliat-monitor", path=str(Path(sys.executable).parent))
    assert script, "the goliat-monitor console script is not installed in this environment"
    return [script]


def small_config(tmp_path: Path) -> Path:
    """Four far-field simulations, extending the test base config."""
    shutil.copy(TEST_CONFIGS / "base_config.json", tmp_path / "base_config.json")
    config = tmp_path / "small_far_field.json"
    config.write_text(
        '{"extends": "base_config.json", "study_type": "far_field", "phantoms": ["thelonious"],'
        ' "frequencies_mhz": [700, 900], "far_field_setup": {"type": "environmental", "environmental":'
        ' {"incident_directions": ["x_pos"], "polarizations": ["theta", "phi"]}}}'
    )
    return config


def run_study_process(tmp_path: Path, *args: str, colours: bool, speed: str = "100") -> tuple[int, list[str]]:
    """Run `goliat-monitor simulate-study` and read its stdout line by line while it runs."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLORAMA_STRIP", "JUPYTER_NOTEBOOK")}
    if colours:
        env["COLORAMA_STRIP"] = "0"
    command = [
        *goliat_monitor_command(),
        "simulate-study",
        str(small_config(tmp_path)),
        "--speed",
        speed,
        *args,
    ]
    with subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        lines = [line.rstrip("\n") for line in process.stdout]
        code = process.wait(timeout=60)
    return code, lines


@pytest.mark.parametrize("colours", [True, False], ids=["COLORAMA_STRIP=0", "colours-stripped"])
def test_simulated_study_output_parses_like_goliat(tmp_path: Path, colours: bool) -> None:
    code, lines = run_study_process(tmp_path, colours=colours)
    assert code == 0
    assert any("\x1b[" in line for line in lines) is colours

    parser = GoliatOutputParser()
    messages = feed_all(parser, lines, step=0.01)

    overall = [percent(m) for m in of_type(messages, "overall_progress")]
    assert overall[-1] == 100.0
    assert overall == sorted(overall), "overall progress went backwards"
    details = of_type(messages, "simulation_details")
    assert [d["simulation_count"] for d in details] == [1, 2, 3, 4]
    assert {d["total_simulations"] for d in details} == {4}
    assert details[-1]["current_case"] == "thelonious, 900MHz, x_pos, phi"
    assert parser.finished and parser.completed_simulations == 4
    assert last(messages, "profiler_update")["eta_seconds"] == 0.0
    stage_names = {m["name"] for m in of_type(messages, "stage_progress")}
    assert {"Setup", "Run", "Extract", "Running Simulation", "Extracting Results"} <= stage_names

    # the retry warning on simulations 1 and 4 is GOLIAT's only progress-level warning here;
    # its routine verbose-level warnings ("Run deliverables verified...") stay terminal_only
    warnings = [m for m in of_type(messages, "status") if m["log_type"] in ("warning", "highlight")]
    assert [m["message"] for m in warnings] == ["    - iSolve failed, retry attempt 1"] * 2
    verbose_warnings = [m for m in of_type(messages, "terminal_only") if m["log_type"] == "warning"]
    if colours:
        assert any(m["message"] == "Run deliverables verified. Updating metadata." for m in verbose_warnings)
    assert not [m for m in of_type(messages, "status") if m["log_type"] in ("error", "fatal")]


def test_simulated_study_progress_log_parses(tmp_path: Path) -> None:
    code, _ = run_study_process(tmp_path, colours=False)
    assert code == 0
    (progress_log,) = (tmp_path / "logs").glob("*.progress.log")
    parser = GoliatOutputParser(source="progress_log")
    messages = feed_all(parser, progress_log.read_text().splitlines(), step=0.01)
    assert percent(last(messages, "overall_progress")) == 100.0
    assert last(messages, "simulation_details")["simulation_count"] == 4
    warnings = [m for m in of_type(messages, "status") if m["log_type"] == "warning"]
    assert len(warnings) == 2


def test_simulated_study_streams_line_by_line(tmp_path: Path) -> None:
    """The first simulation's header must arrive while the study is still running."""
    env = {**os.environ, "COLORAMA_STRIP": "0"}
    command = [*goliat_monitor_command(), "simulate-study", str(small_config(tmp_path)), "--speed", "4"]
    parser = GoliatOutputParser()
    with subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            if of_type(parser.feed(line, 0.0), "simulation_details"):
                assert process.poll() is None
                break
        process.kill()
        process.wait(timeout=10)
    assert parser.simulation_count == 1


def test_simulated_out_of_memory_failure(tmp_path: Path) -> None:
    code, lines = run_study_process(tmp_path, "--fail-at", "run", "--exit-code", "42", colours=True)
    assert code == 42
    parser = GoliatOutputParser()
    messages = feed_all(parser, lines, step=0.01)
    errors = [m["message"] for m in of_type(messages, "status") if m["log_type"] == "error"]
    assert "Max internal retries exceeded. Exiting with code 42 to trigger session restart." in errors
    assert parser.finished
    assert parser.failed
    assert percent(last(messages, "overall_progress")) < 100
