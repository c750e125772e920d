"""The fake iSolve: the solver output GOLIAT echoes in the run phase, and the ways it fails.

GOLIAT's manual iSolve strategy runs `iSolve.exe` and echoes its output: a banner, `[PROGRESS]`
lines, and GOLIAT's own FDTD milestones (0%, 33%, 66%) parsed from them. This is the one part of
the simulated study that imitates another program rather than GOLIAT, so it lives apart from the
driver in `simulated_study.py`, which owns the clock, the random sequence and the exit codes and
hands them in. The two failures every phase can end in are defined here because iSolve raises both.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from goliat_monitor.demo.goliat_logs import GoliatLogs
from goliat_monitor.domain.models import EXIT_CODE_OUT_OF_MEMORY

__all__ = ["FakeISolve", "OutOfMemory", "StageFailure"]

# Seconds iSolve runs at speed 1, shown in this many progress steps.
_ISOLVE, _ISOLVE_STEPS = 1.60, 10


class StageFailure(Exception):
    """The failure asked for with `fail_at`, in whichever phase it was asked for."""


class OutOfMemory(BaseException):
    """GOLIAT's `sys.exit(42)` from the iSolve strategy: escapes `except Exception` like SystemExit."""


class FakeISolve:
    """iSolve as GOLIAT runs and echoes it; shares the study's random sequence and waits."""

    def __init__(
        self,
        logs: GoliatLogs,
        rng: random.Random,
        *,
        speed: float,
        exit_code: int,
        wait: Callable[[float], None],
    ) -> None:
        self.logs = logs
        self.rng = rng
        self.speed = speed
        self.exit_code = exit_code
        self.wait = wait

    def banner(self, sim_name: str) -> None:
        """The lines iSolve prints first, on every attempt (GOLIAT echoes them)."""
        for line in (
            "Reading command line",
            "iSolve X, Version 8.2.0 (16876), 64Bit Windows",
            "Running MPI version 2.0 on 1 process.",
            f"Simulation '{sim_name}' ",
            "Solver type: EmFdtd, SinglePrecision, Acceleware",
        ):
            self.logs.log(line)

    def run(self, sim_name: str, *, fail: bool) -> None:
        """iSolve's output as GOLIAT echoes it, with its progress milestones; OOM when asked."""
        logs = self.logs
        self.banner(sim_name)
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
            if fail and percent >= 50:
                self._fail()
            self.wait(step_seconds)
        logs.log(f"Simulation performed {iterations} iterations.")
        logs.log("FDTD simulation finished successfully.")
        logs.log("iSolve ended successfully.")

    def _fail(self) -> None:
        """iSolve's crash, or with exit code 42 GOLIAT's out-of-memory retry and exit."""
        logs = self.logs
        if self.exit_code != EXIT_CODE_OUT_OF_MEMORY:
            raise StageFailure("iSolve.exe exited with code 3: Error: iSolve framework failed")
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
        raise OutOfMemory
