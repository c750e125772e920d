"""The simulations of a campaign and their status: GOLIAT's loop order, keys, the status rules."""

from __future__ import annotations

import json
from typing import Any

import pytest

from goliat_monitor.domain.simulations import (
    AssignmentState,
    SimulationMark,
    SimulationStatus,
    campaign_simulations,
    simulation_state,
)
from goliat_monitor.domain.splitting import split_config
from tests.conftest import TEST_CONFIGS


def _config(name: str) -> dict[str, Any]:
    return dict(json.loads((TEST_CONFIGS / name).read_text(encoding="utf-8")))


def test_far_field_simulations_follow_goliats_loops_per_assignment() -> None:
    config = _config("far_field_small.json")
    split = split_config(config, "phantom")
    sims = campaign_simulations(split.configs)
    assert len(sims) == 24
    first = sims[:5]
    # phantoms > frequencies > directions > polarizations, numbered 1.. within each assignment
    assert [(s.assignment_index, s.number, s.key) for s in first] == [
        (0, 1, "far_field/thelonious/700MHz/environmental_x_pos_theta"),
        (0, 2, "far_field/thelonious/700MHz/environmental_x_pos_phi"),
        (0, 3, "far_field/thelonious/700MHz/environmental_z_neg_theta"),
        (0, 4, "far_field/thelonious/700MHz/environmental_z_neg_phi"),
        (0, 5, "far_field/thelonious/900MHz/environmental_x_pos_theta"),
    ]
    assert sims[8].assignment_index == 1 and sims[8].number == 1
    fields = sims[0].fields()
    assert fields["direction"] == "x_pos" and fields["polarization"] == "theta"
    assert fields["scenario"] is None and fields["orientation"] is None and fields["frequencyMhz"] == 700


def test_near_field_fields_and_the_run_tag_stays_out_of_the_key() -> None:
    config = {**_config("near_field_config.json"), "run_tag": "fine grid"}
    sims = campaign_simulations([config])
    sim = sims[0]
    assert sim.result_path.endswith("__fine_grid") and not sim.key.endswith("__fine_grid")
    fields = sim.fields()
    assert fields["direction"] is None and fields["polarization"] is None
    assert fields["scenario"] and fields["position"] and fields["orientation"]
    assert sim.key == f"near_field/{fields['phantom'].lower()}/{fields['frequencyMhz']}MHz/" + (
        f"{fields['scenario']}_{fields['position']}_{fields['orientation']}"
    )


def test_a_config_whose_parent_is_missing_is_read_without_extends() -> None:
    sims = campaign_simulations([_config("far_field_small.json")], parents={})
    assert len(sims) == 24


def test_overlapping_assignments_list_a_simulation_once() -> None:
    config = _config("far_field_small.json")
    sims = campaign_simulations([config, config])
    assert len(sims) == 24 and {s.assignment_index for s in sims} == {0}


RUNNING = AssignmentState("a", 0, "RUNNING")


@pytest.mark.parametrize(
    ("assignment", "mark", "results_at", "expected"),
    [
        (AssignmentState("a", 0, "PENDING"), None, None, SimulationStatus.PENDING),
        (RUNNING, None, None, SimulationStatus.PENDING),
        (RUNNING, SimulationMark(1, 10.0), None, SimulationStatus.RUNNING),
        (RUNNING, SimulationMark(1, 10.0, finished_at=20.0), None, SimulationStatus.DONE),
        (RUNNING, SimulationMark(1, 10.0), 15.0, SimulationStatus.DONE),
        (RUNNING, None, 15.0, SimulationStatus.DONE),
        (AssignmentState("a", 0, "COMPLETED", 30.0), None, None, SimulationStatus.DONE),
        (AssignmentState("a", 0, "FAILED"), SimulationMark(1, 10.0), None, SimulationStatus.FAILED),
        (
            AssignmentState("a", 0, "PENDING"),
            SimulationMark(1, 10.0, failed_at=12.0),
            None,
            SimulationStatus.FAILED,
        ),
        (AssignmentState("a", 0, "CANCELLED"), SimulationMark(1, 10.0), None, SimulationStatus.PENDING),
        (AssignmentState("a", 0, "FAILED"), None, None, SimulationStatus.PENDING),
    ],
)
def test_status_rules(
    assignment: AssignmentState,
    mark: SimulationMark | None,
    results_at: float | None,
    expected: SimulationStatus,
) -> None:
    assert simulation_state(assignment, mark, results_at).status == expected


def test_times_and_duration() -> None:
    state = simulation_state(RUNNING, SimulationMark(1, 10.0, finished_at=25.5), None)
    assert (state.started_at, state.finished_at, state.duration_s) == (10.0, 25.5, 15.5)
    assert simulation_state(RUNNING, SimulationMark(1, 10.0), None).duration_s is None
    assert simulation_state(RUNNING, None, 40.0).finished_at == 40.0
