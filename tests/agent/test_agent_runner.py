"""The study subprocess (real processes) and the pump that turns its output into spooled messages."""

from __future__ import annotations

import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from goliat_monitor.agent.runner import AGENT_PREFIX, OutputPump, StudyProcess, kill_process_tree
from goliat_monitor.outbox import GUI_UPDATE, Spool
from tests.support import wait_for

GREEN, RESET = "\x1b[32m", "\x1b[0m"


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[Spool]:
    with Spool(tmp_path / "spool.sqlite3") as s:
        yield s


def make_pump(spool: Spool, **kwargs: Any) -> OutputPump:
    def envelope(message: dict[str, Any], wall: float) -> dict[str, Any]:
        return {"machineId": "m", "assignmentId": "a1", "message": message, "timestamp": wall}

    pump = OutputPump(spool, envelope=envelope, **kwargs)
    pump.start()
    return pump


def messages(spool: Spool) -> list[dict[str, Any]]:
    return [row.payload["message"] for row in spool.peek(100_000)]


def logged(spool: Spool) -> list[str]:
    return [entry["message"] for m in messages(spool) if m["type"] == "log_batch" for entry in m["logs"]]


def progress_line(n: int) -> str:
    """A GOLIAT GUI-mode record: colour, no caller suffix, so progress level (a `status`)."""
    return f"{GREEN}    - Memory usage at {n}%, reloading project to free memory...{RESET}"


# -- the pump ------------------------------------------------------------------------------------


def test_log_lines_become_batches_with_sequences_from_zero_in_order(spool: Spool) -> None:
    pump = make_pump(spool, batch_lines=7, batch_age=10)
    for n in range(30):
        pump.feed(progress_line(n))
    pump.close()

    batches = [m for m in messages(spool) if m["type"] == "log_batch"]
    assert [b["sequence"] for b in batches] == [0, 1, 2, 3, 4]
    assert [len(b["logs"]) for b in batches] == [7, 7, 7, 7, 2]
    assert logged(spool) == [
        f"    - Memory usage at {n}%, reloading project to free memory..." for n in range(30)
    ]
    entry = batches[0]["logs"][0]
    assert entry["type"] == "status" and entry["log_type"] == "progress"
    assert isinstance(entry["timestamp"], float)
    assert all(row.kind == GUI_UPDATE and row.payload["assignmentId"] == "a1" for row in spool.peek(100))


def test_a_batch_is_sealed_when_it_is_old_enough(spool: Spool) -> None:
    pump = make_pump(spool, batch_lines=100, batch_age=0.05)
    pump.feed(progress_line(1))
    wait_for(lambda: spool.depth() > 0, timeout=5, what="the batch to be sealed by age")
    assert logged(spool) == ["    - Memory usage at 1%, reloading project to free memory..."]
    pump.close()


def test_notices_are_agent_lines_in_the_same_stream(spool: Spool) -> None:
    pump = make_pump(spool, batch_age=10)
    pump.feed(progress_line(1))
    pump.notice("Study exited with code 0", "success")
    pump.close()
    batch = messages(spool)[0]
    assert [e["message"] for e in batch["logs"]] == [
        "    - Memory usage at 1%, reloading project to free memory...",
        AGENT_PREFIX + "Study exited with code 0",
    ]
    assert batch["logs"][1]["log_type"] == "success"


def test_verbose_lines_are_sent_only_when_asked_and_never_count(spool: Spool, tmp_path: Path) -> None:
    tool_line = "Sim4Life: [Warn] Something the solver says"
    pump = make_pump(spool, batch_age=10)
    pump.feed(tool_line)
    pump.close()
    assert logged(spool) == []

    with Spool(tmp_path / "verbose.sqlite3") as verbose:
        pump = make_pump(verbose, batch_age=10, forward_verbose=True)
        pump.feed(tool_line)
        pump.close()
        batch = messages(verbose)[0]
        assert batch["logs"][0]["message"] == tool_line
        assert batch["logs"][0]["log_type"] == "verbose"


def isolve(percent: int, left: int) -> str:
    return (
        f"[PROGRESS]: {percent}% [ {percent} / 100 ] Time Update, estimated remaining time "
        f"{left} seconds @ 150.0 MCells/s"
    )


STUDY_HEAD = [
    "--- Starting Far-Field Study: cfg.json ---",
    "--- Processing Simulation 1/1: thelonious, 700MHz, x_pos, theta ---",
    "--- Starting: run ---",
]


def test_progress_is_throttled_latest_wins_and_the_final_value_is_kept(spool: Spool) -> None:
    pump = make_pump(spool, progress_hz=5, batch_age=10)
    for line in STUDY_HEAD:
        pump.feed(line)
    for percent in range(100):
        pump.feed(isolve(percent, 100 - percent))
    pump.feed("--- Finished: run (took 3.0s) ---")
    pump.feed("--- FarFieldStudy Finished ---")
    pump.close()

    progress = [m for m in messages(spool) if m["type"] in ("overall_progress", "stage_progress")]
    overall = [m for m in progress if m["type"] == "overall_progress"]
    assert len(progress) < 20  # 200 values offered within a fraction of a second
    assert overall[-1]["current"] == overall[-1]["total"] == 100
    values = [m["current"] for m in overall]
    assert values == sorted(values)


def test_the_pump_switches_to_big_batches_while_the_server_is_behind(spool: Spool) -> None:
    backlog = [0]
    pump = make_pump(spool, batch_lines=10, batch_age=10, backlog=lambda: backlog[0], backlog_threshold=5)
    backlog[0] = 100
    pump.feed_lines([progress_line(n) for n in range(50)])
    pump.close()
    batches = [m for m in messages(spool) if m["type"] == "log_batch"]
    assert [len(b["logs"]) for b in batches] == [50]  # up to 100 lines while behind


# -- the process ---------------------------------------------------------------------------------


def script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "study.py"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return [sys.executable, str(path)]


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, lines: list[str], wall: float) -> None:
        with self.lock:
            self.lines.extend(lines)


def test_output_is_read_line_by_line_with_the_exit_code(tmp_path: Path) -> None:
    argv = script(
        tmp_path,
        """
        import sys
        for n in range(500):
            print(f"line {n} é", flush=n % 7 == 0)
        sys.stdout.flush()
        sys.stderr.write("on stderr\\n")
        sys.stdout.write("no newline at the end")
        sys.exit(3)
        """,
    )
    got = Lines()
    process = StudyProcess(
        argv, cwd=tmp_path, env={"PYTHONIOENCODING": "utf-8"}, on_lines=got, raw_log=tmp_path / "raw.log"
    )
    process.start()
    assert process.wait(30) == 3
    process.finish_output()
    assert got.lines[:500] == [f"line {n} é" for n in range(500)]
    assert got.lines[500:] == ["on stderr", "no newline at the end"]
    assert (tmp_path / "raw.log").read_bytes().endswith(b"no newline at the end")


def test_the_study_runs_in_its_run_dir_with_its_environment(tmp_path: Path) -> None:
    argv = script(tmp_path, "import os; print(os.getcwd()); print(os.environ['GOLIAT_ASSIGNMENT_ID'])")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    got = Lines()
    process = StudyProcess(argv, cwd=run_dir, env={"GOLIAT_ASSIGNMENT_ID": "a1"}, on_lines=got)
    process.start()
    assert process.wait(30) == 0
    process.finish_output()
    assert got.lines == [str(run_dir), "a1"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signal delivery to the process group")
def test_interrupt_is_a_ctrl_c_for_the_study(tmp_path: Path) -> None:
    argv = script(
        tmp_path,
        """
        import time
        try:
            print("ready", flush=True)  # inside the try: a Ctrl+C right after it is still caught
            time.sleep(60)
        except KeyboardInterrupt:
            print("--- Study execution cancelled by user. ---", flush=True)
            raise SystemExit(130)
        """,
    )
    got = Lines()
    process = StudyProcess(argv, cwd=tmp_path, env={}, on_lines=got)
    process.start()
    wait_for(
        lambda: "ready" in got.lines, timeout=20, what="the study to start"
    )  # else the signal tests nothing
    process.interrupt()
    assert process.wait(20) == 130
    process.finish_output()
    assert got.lines[-1] == "--- Study execution cancelled by user. ---"


def test_kill_takes_the_whole_process_tree(tmp_path: Path) -> None:
    argv = script(
        tmp_path,
        """
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(child.pid, flush=True)
        time.sleep(60)
        """,
    )
    got = Lines()
    process = StudyProcess(argv, cwd=tmp_path, env={}, on_lines=got)
    process.start()
    wait_for(lambda: got.lines, timeout=20, what="the study to print its child's pid")
    grandchild = int(got.lines[0])
    process.kill()
    assert process.wait(20) is not None
    process.finish_output(timeout=2)
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE


def test_kill_process_tree_leaves_a_reused_pid_alone() -> None:
    me = psutil.Process()
    assert kill_process_tree(me.pid, created=me.create_time() - 100) is False
    assert kill_process_tree(2**22 + 12345) is False  # no such process
