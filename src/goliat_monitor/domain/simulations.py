"""Every simulation of a campaign, with the status a researcher cares about: pure, no I/O.

A super study is a list of split configs; `campaign_simulations` enumerates each one with
`campaign.enumerate_simulations` (GOLIAT's own loop order), so the N-th simulation of an
assignment is the one GOLIAT announces as "Processing Simulation N/M" while running that
assignment's config. Far field loops phantoms > frequencies > directions > polarizations, near
field phantoms > antenna frequencies > scenarios > positions > orientations
(`goliat/studies/far_field_study.py`, `near_field_study.py`).

A simulation's `key` is its GOLIAT results folder without the `run_tag` suffix
(`far_field/thelonious/700MHz/environmental_x_pos_theta`): two campaigns of the same shape, one
tagged `__fine_grid`, share their keys and can be compared. `result_path` is the folder as
GOLIAT writes it (with the tag), the `relativePath` its uploads carry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from goliat_monitor.domain.campaign import (
    FAR_FIELD,
    ConfigError,
    Simulation,
    enumerate_simulations,
    merge_extends,
)

__all__ = [
    "AssignmentState",
    "CampaignSimulation",
    "SimulationMark",
    "SimulationState",
    "SimulationStatus",
    "assignment_simulations",
    "campaign_simulations",
    "simulation_key",
    "simulation_state",
]


class SimulationStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"


def folder_key(path: str) -> str:
    """How an uploaded results folder is matched to its simulation, the same for the map and the
    table: ignoring case, as GOLIAT lower-cases phantom names in folders while configs may not
    (`Thelonious` -> `thelonious`), and no two simulations' folders differ in case alone."""
    return path.lower()


def simulation_key(sim: Simulation) -> str:
    """The results folder of `sim` without GOLIAT's `__<run_tag>` suffix."""
    placement = f"{sim.scenario}_{sim.position}_{sim.orientation}"
    return f"{sim.study_type}/{sim.phantom.lower()}/{sim.frequency_label}MHz/{placement}"


@dataclass(frozen=True, slots=True)
class CampaignSimulation:
    """One simulation of a campaign: where it sits in its assignment's loop and its folder."""

    simulation: Simulation
    assignment_index: int
    number: int
    """1-based: GOLIAT's "Simulation N/M" counter while it runs this assignment."""

    @property
    def key(self) -> str:
        return simulation_key(self.simulation)

    @property
    def result_path(self) -> str:
        return self.simulation.relative_path

    @property
    def far_field(self) -> bool:
        return self.simulation.study_type == FAR_FIELD

    def fields(self) -> dict[str, Any]:
        """The identity fields of the API (camelCase); those that do not apply are None.

        Far field: direction and polarization. Near field: scenario, position and orientation.
        A multi-sine frequency ("700+2450") stays a string, a single one is a number.
        """
        sim = self.simulation
        frequency: Any = sim.frequency_label if isinstance(sim.frequency_mhz, tuple) else sim.frequency_mhz
        far = self.far_field
        return {
            "key": self.key,
            "studyType": sim.study_type,
            "phantom": sim.phantom,
            "frequencyMhz": frequency,
            "direction": sim.position if far else None,
            "polarization": sim.orientation if far else None,
            "scenario": None if far else sim.scenario,
            "position": None if far else sim.position,
            "orientation": None if far else sim.orientation,
        }


def assignment_simulations(
    config: Mapping[str, Any], parents: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Simulation]:
    """The simulations one split config runs, in GOLIAT's order; [] when they cannot be known.

    GOLIAT does not upload `extends` parents, so a config whose parent is missing is read
    without its `extends`: the split keys live in the config itself (as `_size_of` assumes).
    """
    try:
        return enumerate_simulations(merge_extends(config, parents or {}))
    except ConfigError:
        pass
    if "extends" in config:
        try:
            return enumerate_simulations({k: v for k, v in config.items() if k != "extends"})
        except ConfigError:
            pass
    return []


def campaign_simulations(
    configs: Sequence[Mapping[str, Any]], parents: Mapping[str, Mapping[str, Any]] | None = None
) -> list[CampaignSimulation]:
    """Every simulation of the split configs (assignment by assignment, in GOLIAT's loop order).

    A simulation that two assignments both run (an overlapping split) is listed once, under
    the first assignment that runs it.
    """
    seen: set[str] = set()
    out: list[CampaignSimulation] = []
    for index, config in enumerate(configs):
        for number, sim in enumerate(assignment_simulations(config, parents), start=1):
            item = CampaignSimulation(sim, index, number)
            if item.key in seen:
                continue
            seen.add(item.key)
            out.append(item)
    return out


@dataclass(frozen=True, slots=True)
class AssignmentState:
    """What the status rules need of an assignment."""

    id: str
    index: int
    status: str
    completed_at: float | None = None


@dataclass(frozen=True, slots=True)
class SimulationMark:
    """What the agent's parsed output said about simulation `number` of an assignment.

    `started_at` is when "Simulation N/M" arrived; `finished_at` when the next one (or the
    end of a successful run) did; `failed_at` when the run ended in failure while it ran.
    """

    number: int
    started_at: float
    worker_id: str | None = None
    finished_at: float | None = None
    failed_at: float | None = None


@dataclass(frozen=True, slots=True)
class SimulationState:
    status: SimulationStatus
    started_at: float | None
    finished_at: float | None

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)


def simulation_state(
    assignment: AssignmentState | None, mark: SimulationMark | None, results_at: float | None
) -> SimulationState:
    """The status of one simulation, by the first rule that applies:

    1. results arrived under its folder, or the parsed output says it finished: DONE;
    2. its assignment COMPLETED (GOLIAT ran the whole config): DONE;
    3. its run ended in failure while it ran (`failed_at`), or it was the one running when its
       assignment became FAILED: FAILED;
    4. "Simulation N/M" named it and its assignment is RUNNING: RUNNING;
    5. otherwise PENDING (never started, or its attempt was cancelled or handed back).
    """
    started = mark.started_at if mark is not None else None
    finished = mark.finished_at if mark is not None else None
    status = assignment.status if assignment is not None else None
    if results_at is not None or finished is not None:
        return SimulationState(SimulationStatus.DONE, started, finished or results_at)
    if status == "COMPLETED":
        done_at = assignment.completed_at if assignment is not None else None
        return SimulationState(SimulationStatus.DONE, started, done_at if started is not None else None)
    if mark is not None and mark.failed_at is not None:
        return SimulationState(SimulationStatus.FAILED, started, mark.failed_at)
    if mark is not None and status == "FAILED":
        return SimulationState(SimulationStatus.FAILED, started, None)
    if mark is not None and status == "RUNNING":
        return SimulationState(SimulationStatus.RUNNING, started, None)
    return SimulationState(SimulationStatus.PENDING, None, None)
