"""Splitting a campaign config into assignments, strategy by strategy, as GOLIAT's `super_study` does.

Expected assignments are written out from GOLIAT's `cli/run_super_study.py`; the property tests
check that every strategy that accepts a config covers each of its simulations exactly once.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goliat_monitor.domain.campaign import enumerate_simulations, merge_extends
from goliat_monitor.domain.splitting import (
    STRATEGIES,
    SplitError,
    SplitResult,
    auto_split_factors,
    parse_frequency_groups,
    split_config,
    split_evenly,
)

CONFIGS = Path(__file__).parents[3] / "shared" / "goliat-configs"
FAR_FREQS = [450, 700, 835, 1450, 2140, 2450, 3500, 5200, 5800]
GRIDDING = {
    "450": 2.5,
    "700": 2.5,
    "835": 2.5,
    "1450": 2.5,
    "2140": 1.694,
    "2450": 1.482,
    "3500": 1.0,
    "5200": 1.0,
    "5800": 1.0,
}


@pytest.fixture(scope="module")
def parents() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in CONFIGS.glob("*.json")}


def split(name: str, parents: dict[str, dict[str, Any]], strategy: str, **kwargs: Any) -> SplitResult:
    return split_config(parents[name], strategy, parents=parents, **kwargs)


def without(config: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in keys}


def test_strategies_are_goliats() -> None:
    assert STRATEGIES == (
        "auto",
        "phantom",
        "direction",
        "polarization",
        "frequency",
        "freq_x_pol",
        "custom",
        "scenario",
    )


# --- the building blocks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "parts", "expected"),
    [
        ([1, 2, 3, 4, 5, 6, 7], 3, [[1, 2, 3], [4, 5], [6, 7]]),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9], 2, [[1, 2, 3, 4, 5], [6, 7, 8, 9]]),
        ([1, 2, 3], 1, [[1, 2, 3]]),
        ([1, 2, 3], 3, [[1], [2], [3]]),
        ([1, 2, 3], 5, [[1], [2], [3]]),  # more parts than items: one per item
        ([], 3, []),
        ([1], 0, []),
    ],
)
def test_split_evenly(items: list[int], parts: int, expected: list[list[int]]) -> None:
    assert split_evenly(items, parts) == expected


@given(st.lists(st.integers(), max_size=30), st.integers(1, 40))
def test_split_evenly_properties(items: list[int], parts: int) -> None:
    runs = split_evenly(items, parts)
    assert [x for run in runs for x in run] == items
    assert len(runs) == min(parts, len(items))
    sizes = [len(run) for run in runs]
    assert sizes == sorted(sizes, reverse=True)
    assert not sizes or sizes[0] - sizes[-1] <= 1


@pytest.mark.parametrize(
    ("phantoms", "items", "n", "expected"),
    [
        (3, 2, 4, (2, 2)),
        (4, 9, 4, (4, 1)),
        (4, 9, 6, (3, 2)),
        (2, 8, 4, (2, 2)),
        (2, 8, 3, (1, 3)),
        (2, 1, 4, (1, 4)),  # nothing fits: GOLIAT keeps (1, N)
        (3, 1, 4, (1, 4)),
        (6, 5, 12, (6, 2)),
        (5, 5, 6, (3, 2)),
        (1, 9, 1, (1, 1)),
    ],
)
def test_auto_split_factors(phantoms: int, items: int, n: int, expected: tuple[int, int]) -> None:
    assert auto_split_factors(phantoms, items, n) == expected


def test_parse_frequency_groups() -> None:
    assert parse_frequency_groups("5800;5200;3500;2140,2450;450,700,835,1450") == [
        [5800],
        [5200],
        [3500],
        [2140, 2450],
        [450, 700, 835, 1450],
    ]
    assert parse_frequency_groups(" 700 ; ; 900 , 450 ;") == [[700], [900, 450]]
    assert parse_frequency_groups(";;") == []
    with pytest.raises(SplitError, match="invalid frequency '7 GHz'"):
        parse_frequency_groups("700;7 GHz")
    with pytest.raises(SplitError, match="invalid frequency ''"):
        parse_frequency_groups("700,,900")


# --- auto -------------------------------------------------------------------------------------


def test_auto_tutorial_5(parents: dict[str, dict[str, Any]]) -> None:
    result = split("tutorial_5_parallel.json", parents, "auto")
    assert [(c["phantoms"], c["frequencies_mhz"]) for c in result.configs] == [
        (["thelonious", "eartha"], [700]),
        (["thelonious", "eartha"], [900]),
        (["ella"], [700]),
        (["ella"], [900]),
    ]
    assert [a.size for a in result.assignments] == [8, 8, 4, 4]
    assert [a.index for a in result.assignments] == [0, 1, 2, 3]
    assert result.assignments[0].summary == "phantoms: thelonious, eartha; frequencies: 700"
    assert result.total_size == 24
    assert result.warnings == []
    # Every other key is copied unchanged, in the same order.
    written = parents["tutorial_5_parallel.json"]
    for config in result.configs:
        assert list(config) == list(written)
        assert without(config, "phantoms", "frequencies_mhz") == without(
            written, "phantoms", "frequencies_mhz"
        )


def test_auto_far_field_config(parents: dict[str, dict[str, Any]]) -> None:
    four = split("far_field_config.json", parents, "auto")
    assert [c["phantoms"] for c in four.configs] == [["thelonious"], ["eartha"], ["duke"], ["ella"]]
    assert all(c["frequencies_mhz"] == FAR_FREQS for c in four.configs)
    assert [a.size for a in four.assignments] == [108] * 4

    six = split("far_field_config.json", parents, "auto", num_splits=6)
    low, high = FAR_FREQS[:5], FAR_FREQS[5:]
    assert [(c["phantoms"], c["frequencies_mhz"]) for c in six.configs] == [
        (["thelonious", "eartha"], low),
        (["thelonious", "eartha"], high),
        (["duke"], low),
        (["duke"], high),
        (["ella"], low),
        (["ella"], high),
    ]
    assert [a.size for a in six.assignments] == [120, 96, 60, 48, 60, 48]
    # auto does not narrow the per-frequency gridding (only freq_x_pol and custom do).
    assert all(c["gridding_parameters"]["global_gridding_per_frequency"] == GRIDDING for c in six.configs)


def test_auto_near_field_config(parents: dict[str, dict[str, Any]]) -> None:
    antennas = parents["near_field_config.json"]["antenna_config"]
    four = split("near_field_config.json", parents, "auto")
    expected = [["700", "835", "1450", "2140"], ["2450", "3500", "5200", "5800"]]
    assert [(c["phantoms"], list(c["antenna_config"])) for c in four.configs] == [
        (["thelonious"], expected[0]),
        (["thelonious"], expected[1]),
        (["eartha"], expected[0]),
        (["eartha"], expected[1]),
    ]
    assert four.configs[1]["antenna_config"]["5800"] == antennas["5800"]
    assert "frequencies_mhz" not in four.configs[0]
    assert [a.size for a in four.assignments] == [88, 88, 88, 88]
    assert four.assignments[0].summary == "phantoms: thelonious; antennas: 700, 835, 1450, 2140"

    three = split("near_field_config.json", parents, "auto", num_splits=3)
    assert [list(c["antenna_config"]) for c in three.configs] == [
        ["700", "835", "1450"],
        ["2140", "2450", "3500"],
        ["5200", "5800"],
    ]
    assert all(c["phantoms"] == ["thelonious", "eartha"] for c in three.configs)
    assert [a.size for a in three.assignments] == [132, 132, 88]


def test_auto_falls_back_to_fewer_assignments_with_a_warning(parents: dict[str, dict[str, Any]]) -> None:
    result = split("near_field_config_26ghz.json", parents, "auto")  # 2 phantoms, 1 antenna, N=4
    assert len(result.assignments) == 1
    assert result.configs[0]["phantoms"] == ["thelonious", "eartha"]
    assert [a.size for a in result.assignments] == [12]
    assert len(result.warnings) == 1
    assert "cannot split into exactly 4 assignments, made 1" in result.warnings[0]

    two = split("near_field_config_26ghz.json", parents, "auto", num_splits=2)
    assert [c["phantoms"] for c in two.configs] == [["thelonious"], ["eartha"]]
    assert two.warnings == []

    config = {"study_type": "far_field", "phantoms": ["a"], "frequencies_mhz": [1, 2, 3]}
    five = split_config(config, "auto", num_splits=5)
    assert [c["frequencies_mhz"] for c in five.configs] == [[1], [2], [3]]
    assert any("exactly 5" in w for w in five.warnings)


def test_auto_keeps_dict_phantoms() -> None:
    config = {
        "study_type": "near_field",
        "phantoms": {"athena": {"x": 1}, "martin": {"x": 2}, "zoe": {"x": 3}},
        "antenna_config": {"900": {"p": 1}},
    }
    result = split_config(config, "auto", num_splits=3)
    assert [c["phantoms"] for c in result.configs] == [
        {"athena": {"x": 1}},
        {"martin": {"x": 2}},
        {"zoe": {"x": 3}},
    ]
    assert all(c["antenna_config"] == {"900": {"p": 1}} for c in result.configs)


def test_auto_refusals(parents: dict[str, dict[str, Any]]) -> None:
    far = parents["tutorial_5_parallel.json"]
    with pytest.raises(SplitError, match="No phantoms found in config"):
        split_config(without(far, "phantoms"), "auto")
    with pytest.raises(SplitError, match="No frequencies found in config"):
        split_config({**far, "frequencies_mhz": []}, "auto")
    with pytest.raises(SplitError, match="No antennas found in config"):
        split_config(without(parents["near_field_config.json"], "antenna_config"), "auto")
    for bad in (0, -2):
        with pytest.raises(SplitError, match="at least 1"):
            split_config(far, "auto", num_splits=bad)


def test_split_works_on_the_file_as_written() -> None:
    # GOLIAT does not look into the parent: phantoms defined there are invisible to the split.
    setup = {"environmental": {"incident_directions": ["x_pos"], "polarizations": ["theta"]}}
    parents = {"base.json": {"phantoms": ["a", "b"], "frequencies_mhz": [700, 900], "far_field_setup": setup}}
    config = {"extends": "base.json", "study_type": "far_field"}
    with pytest.raises(SplitError, match=r"'phantoms' is only defined in the parent config 'base\.json'"):
        split_config(config, "auto", parents=parents)
    with pytest.raises(SplitError, match="'frequencies_mhz' is only defined in the parent"):
        split_config(config, "frequency", parents=parents)
    # `phantom` on no phantoms is no refusal in GOLIAT: it makes an empty super study.
    result = split_config(config, "phantom", parents=parents)
    assert result.assignments == []
    assert result.warnings[0].startswith("no assignments were made: one assignment per phantom (0); the")
    assert "'phantoms' is only defined in the parent config" in result.warnings[0]
    assert "4 simulation(s) are in no assignment" in result.warnings[-1]


def test_parent_dicts_undo_the_split() -> None:
    # GOLIAT merges dicts: a parent that also has antenna_config re-adds what the split removed.
    parents = {"base.json": {"antenna_config": {"700": {"p": 1}, "900": {"p": 2}}}}
    config = {
        "extends": "base.json",
        "study_type": "near_field",
        "phantoms": ["a"],
        "antenna_config": {"700": {"p": 3}, "900": {"p": 4}},
        "phantom_definitions": {"a": {"placements": {"do_s": True}}},
        "placement_scenarios": {"s": {"positions": {"p": []}, "orientations": {"o": []}}},
    }
    result = split_config(config, "auto", num_splits=2, parents=parents)
    assert [list(c["antenna_config"]) for c in result.configs] == [["700"], ["900"]]
    assert [a.size for a in result.assignments] == [2, 2]
    assert result.total_size == 2
    assert any("2 simulation run(s) are duplicated" in w for w in result.warnings)


def test_sizes_unknown_without_the_parent(parents: dict[str, dict[str, Any]]) -> None:
    result = split_config(parents["tutorial_5_parallel.json"], "phantom")
    assert [a.size for a in result.assignments] == [None, None, None]
    assert result.total_size is None
    assert any("simulation counts are unknown" in w and "base_config.json" in w for w in result.warnings)


# --- one dimension at a time ------------------------------------------------------------------


def test_phantom(parents: dict[str, dict[str, Any]]) -> None:
    result = split("far_field_config.json", parents, "phantom")
    assert [c["phantoms"] for c in result.configs] == [["thelonious"], ["eartha"], ["duke"], ["ella"]]
    assert [a.summary for a in result.assignments] == [
        "phantoms: thelonious",
        "phantoms: eartha",
        "phantoms: duke",
        "phantoms: ella",
    ]
    near = split("near_field_config.json", parents, "phantom")
    assert [a.size for a in near.assignments] == [176, 176]
    old = split_config({"phantoms": {"athena": {"a": 1}, "martin": {}}}, "phantom")
    assert old.configs == [{"phantoms": {"athena": {"a": 1}}}, {"phantoms": {"martin": {}}}]


def test_frequency(parents: dict[str, dict[str, Any]]) -> None:
    result = split("far_field_config.json", parents, "frequency")
    assert [c["frequencies_mhz"] for c in result.configs] == [[f] for f in FAR_FREQS]
    assert [a.size for a in result.assignments] == [48] * 9
    assert all(c["gridding_parameters"]["global_gridding_per_frequency"] == GRIDDING for c in result.configs)
    with pytest.raises(SplitError, match="No frequencies found in config for frequency splitting"):
        split("near_field_config.json", parents, "frequency")


def test_direction(parents: dict[str, dict[str, Any]]) -> None:
    written = parents["far_field_config.json"]
    result = split("far_field_config.json", parents, "direction")
    directions = ["x_pos", "x_neg", "y_pos", "y_neg", "z_pos", "z_neg"]
    assert [c["far_field_setup"]["environmental"]["incident_directions"] for c in result.configs] == [
        [d] for d in directions
    ]
    assert [a.summary for a in result.assignments] == [f"directions: {d}" for d in directions]
    assert [a.size for a in result.assignments] == [72] * 6
    for config in result.configs:
        assert config["far_field_setup"]["environmental"]["polarizations"] == ["theta", "phi"]
        assert without(config, "far_field_setup") == without(written, "far_field_setup")
    with pytest.raises(SplitError, match="Direction splitting is only supported for far-field studies"):
        split("near_field_config.json", parents, "direction")
    no_directions = copy.deepcopy(written)
    del no_directions["far_field_setup"]["environmental"]["incident_directions"]
    with pytest.raises(SplitError, match="No incident_directions found"):
        split_config(no_directions, "direction")


def test_polarization(parents: dict[str, dict[str, Any]]) -> None:
    result = split("far_field_config.json", parents, "polarization")
    assert [c["far_field_setup"]["environmental"]["polarizations"] for c in result.configs] == [
        ["theta"],
        ["phi"],
    ]
    assert [a.size for a in result.assignments] == [216, 216]
    with pytest.raises(SplitError, match="Polarization splitting is only supported for far-field studies"):
        split("near_field_config.json", parents, "polarization")


def test_direction_uses_the_named_type_but_the_study_does_not() -> None:
    config: dict[str, Any] = {
        "study_type": "far_field",
        "phantoms": ["a"],
        "frequencies_mhz": [700],
        "far_field_setup": {
            "type": "custom_wave",
            "custom_wave": {"incident_directions": ["x_pos", "y_pos"], "polarizations": ["theta"]},
            "environmental": {"incident_directions": ["z_pos"], "polarizations": ["phi"]},
        },
    }
    result = split_config(config, "direction")
    assert [c["far_field_setup"]["custom_wave"]["incident_directions"] for c in result.configs] == [
        ["x_pos"],
        ["y_pos"],
    ]
    assert [a.size for a in result.assignments] == [1, 1]
    assert any("always reads far_field_setup.environmental" in w for w in result.warnings)
    assert any("duplicated" in w for w in result.warnings)
    # Without a type GOLIAT uses "environmental".
    untyped = copy.deepcopy(config)
    del untyped["far_field_setup"]["type"]
    assert split_config(untyped, "polarization").configs[0]["far_field_setup"]["environmental"] == {
        "incident_directions": ["z_pos"],
        "polarizations": ["phi"],
    }


def test_direction_with_spherical_tessellation_warns() -> None:
    config = {
        "study_type": "far_field",
        "phantoms": ["a"],
        "frequencies_mhz": [700],
        "far_field_setup": {
            "environmental": {
                "incident_directions": ["x_pos", "y_pos"],
                "spherical_tessellation": {"theta_values": [90], "phi_values": [0, 90]},
                "polarizations": ["theta"],
            }
        },
    }
    result = split_config(config, "direction")
    assert [a.size for a in result.assignments] == [2, 2]
    assert any("spherical_tessellation is set" in w for w in result.warnings)


def test_freq_x_pol(parents: dict[str, dict[str, Any]]) -> None:
    result = split("far_field_config.json", parents, "freq_x_pol")
    assert len(result.assignments) == 18
    assert [
        (c["frequencies_mhz"], c["far_field_setup"]["environmental"]["polarizations"])
        for c in result.configs[:5]
    ] == [([450], ["theta"]), ([450], ["phi"]), ([700], ["theta"]), ([700], ["phi"]), ([835], ["theta"])]
    assert result.configs[5]["gridding_parameters"]["global_gridding_per_frequency"] == {"835": 2.5}
    assert result.configs[-1]["gridding_parameters"]["global_gridding_per_frequency"] == {"5800": 1.0}
    assert result.configs[-1]["gridding_parameters"]["global_gridding"]["manual_fallback_max_step_mm"] == 2.0
    assert result.assignments[3].summary == "frequencies: 700; polarizations: phi"
    assert [a.size for a in result.assignments] == [24] * 18
    assert result.warnings == []


def test_freq_x_pol_keeps_all_gridding_for_a_frequency_without_an_entry() -> None:
    config = {
        "study_type": "far_field",
        "phantoms": ["a"],
        "frequencies_mhz": [700, 900],
        "far_field_setup": {"environmental": {"incident_directions": ["x"], "polarizations": ["theta"]}},
        "gridding_parameters": {"global_gridding_per_frequency": {"700": 2.5, "5800": 1.0}},
    }
    result = split_config(config, "freq_x_pol")
    assert [c["gridding_parameters"]["global_gridding_per_frequency"] for c in result.configs] == [
        {"700": 2.5},
        {"700": 2.5, "5800": 1.0},
    ]


def test_freq_x_pol_refusals(parents: dict[str, dict[str, Any]]) -> None:
    with pytest.raises(SplitError, match="freq_x_pol splitting is only supported for far-field studies"):
        split("near_field_config.json", parents, "freq_x_pol")
    far = parents["far_field_config.json"]
    with pytest.raises(SplitError, match="No frequencies found in config for freq_x_pol"):
        split_config(without(far, "frequencies_mhz"), "freq_x_pol")
    no_pols = copy.deepcopy(far)
    no_pols["far_field_setup"]["environmental"]["polarizations"] = []
    with pytest.raises(SplitError, match="No polarizations found in config for freq_x_pol"):
        split_config(no_pols, "freq_x_pol")


def test_scenario(parents: dict[str, dict[str, Any]]) -> None:
    result = split("near_field_config.json", parents, "scenario")
    expected = [
        ("front_of_eyes", "vertical"),
        ("front_of_eyes", "horizontal"),
        *[
            ("by_cheek", o)
            for o in ("cheek_base", "cheek_up", "cheek_down", "tilt_base", "tilt_up", "tilt_down")
        ],
        ("by_belly", "vertical"),
        ("by_belly", "horizontal"),
    ]
    got = []
    for config in result.configs:
        ((name, details),) = config["placement_scenarios"].items()
        got.append((name, *details["orientations"]))
    assert got == expected
    assert [a.size for a in result.assignments] == [64, 64, 16, 16, 16, 16, 16, 16, 64, 64]
    assert result.assignments[2].summary == "scenario: by_cheek; orientations: cheek_base"
    written = parents["near_field_config.json"]["placement_scenarios"]["by_cheek"]
    assert result.configs[2]["placement_scenarios"]["by_cheek"] == {
        **written,
        "orientations": {"cheek_base": written["orientations"]["cheek_base"]},
    }
    assert result.warnings == []


def test_scenario_without_orientations_is_one_assignment() -> None:
    config = {
        "study_type": "near_field",
        "placement_scenarios": {"a": {"positions": {"p": []}}, "b": {"orientations": {"x": [], "y": []}}},
    }
    result = split_config(config, "scenario")
    assert [c["placement_scenarios"] for c in result.configs] == [
        {"a": {"positions": {"p": []}}},
        {"b": {"orientations": {"x": []}}},
        {"b": {"orientations": {"y": []}}},
    ]
    assert result.assignments[0].summary == "scenario: a; orientations: (none)"
    assert [a.size for a in result.assignments] == [0, 0, 0]
    assert any("imply no simulations" in w for w in result.warnings)


def test_scenario_refusals(parents: dict[str, dict[str, Any]]) -> None:
    with pytest.raises(SplitError, match="Scenario splitting is only supported for near-field studies"):
        split("far_field_config.json", parents, "scenario")
    with pytest.raises(SplitError, match="No placement_scenarios found"):
        split_config({"study_type": "near_field", "placement_scenarios": {}}, "scenario")


# --- custom -----------------------------------------------------------------------------------


def test_custom(parents: dict[str, dict[str, Any]]) -> None:
    groups = "5800;5200;3500;2140,2450;450,700,835,1450"
    result = split("far_field_config.json", parents, "custom", frequency_groups=groups)
    assert [c["frequencies_mhz"] for c in result.configs] == [
        [5800],
        [5200],
        [3500],
        [2140, 2450],
        [450, 700, 835, 1450],
    ]
    assert [c["gridding_parameters"]["global_gridding_per_frequency"] for c in result.configs] == [
        {"5800": 1.0},
        {"5200": 1.0},
        {"3500": 1.0},
        {"2140": 1.694, "2450": 1.482},
        {"450": 2.5, "700": 2.5, "835": 2.5, "1450": 2.5},
    ]
    assert [a.size for a in result.assignments] == [48, 48, 48, 96, 192]
    assert result.assignments[3].summary == "frequencies: 2140, 2450"
    assert result.warnings == []


def test_custom_left_out_frequencies_warn(parents: dict[str, dict[str, Any]]) -> None:
    result = split(
        "far_field_config.json", parents, "custom", frequency_groups="5800;2450,2140;3500,5200,835,1450"
    )
    assert len(result.assignments) == 3
    assert "Frequencies [450, 700] from config are not assigned to any worker." in result.warnings
    assert any("96 simulation(s) are in no assignment" in w for w in result.warnings)


def test_custom_refusals(parents: dict[str, dict[str, Any]]) -> None:
    far = parents["far_field_config.json"]
    with pytest.raises(SplitError, match=r"Frequency 999 not found in config\. Available: \[450, 700"):
        split_config(far, "custom", frequency_groups="700;999")
    with pytest.raises(SplitError, match="requires --frequency-groups"):
        split_config(far, "custom")
    with pytest.raises(SplitError, match="No frequency groups parsed"):
        split_config(far, "custom", frequency_groups=" ; ")
    # Near-field studies have no frequencies_mhz, so every frequency is unknown.
    with pytest.raises(SplitError, match=r"Frequency 700 not found in config\. Available: \[\]"):
        split("near_field_config.json", parents, "custom", frequency_groups="700")


def test_custom_repeated_frequency_warns(parents: dict[str, dict[str, Any]]) -> None:
    result = split("tutorial_5_parallel.json", parents, "custom", frequency_groups="700,900;900")
    assert [c["frequencies_mhz"] for c in result.configs] == [[700, 900], [900]]
    assert any("[900] appear in more than one group" in w for w in result.warnings)
    assert any("12 simulation run(s) are duplicated" in w for w in result.warnings)


# --- general ----------------------------------------------------------------------------------


def test_unknown_strategy() -> None:
    with pytest.raises(SplitError, match="unknown split strategy 'by_mood'"):
        split_config({}, "by_mood")


def test_options_for_other_strategies_are_ignored_with_a_warning(parents: dict[str, dict[str, Any]]) -> None:
    result = split("tutorial_5_parallel.json", parents, "phantom", num_splits=2, frequency_groups="700")
    assert len(result.assignments) == 3
    assert result.warnings == [
        "--num-splits is ignored when splitting by phantom: the config decides the number of assignments.",
        "--frequency-groups is ignored when splitting by phantom.",
    ]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_input_is_not_mutated(parents: dict[str, dict[str, Any]], strategy: str) -> None:
    for name in ("far_field_config.json", "near_field_config.json"):
        before = copy.deepcopy(parents[name])
        try:
            result = split(name, parents, strategy, frequency_groups="700;450")
        except SplitError:
            continue
        assert parents[name] == before
        result.configs[0]["phantoms"].append("mutant")
        assert parents[name] == before


# --- every strategy covers the campaign exactly once ------------------------------------------

SOME = 1  # empty lists are covered by the refusal tests; here they would only waste examples
SCENARIOS = ["front_of_eyes", "by_cheek", "by_belly"]
ORIENTATIONS = ["vertical", "horizontal", "tilt"]
DIRECTIONS = ["x_pos", "x_neg", "y_pos", "y_neg", "z_pos", "z_neg"]
NAMES = st.sampled_from(["thelonious", "eartha", "duke", "ella", "fiona", "glenn"])
PARENT = {
    "use_gui": False,
    "simulation_parameters": {"excitation_type": "Harmonic"},
    "gridding_parameters": {"global_gridding": {"grid_mode": "manual"}},
}


@st.composite
def far_field_campaigns(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    phantoms = draw(st.lists(NAMES, unique=True, min_size=SOME, max_size=4))
    frequencies = draw(st.lists(st.integers(100, 30000), unique=True, min_size=SOME, max_size=6))
    config: dict[str, Any] = {
        "extends": "base.json",
        "study_type": "far_field",
        "phantoms": {p: {} for p in phantoms} if draw(st.booleans()) else phantoms,
        "frequencies_mhz": frequencies,
        "far_field_setup": {
            "type": "environmental",
            "environmental": {
                "incident_directions": draw(
                    st.lists(st.sampled_from(DIRECTIONS), unique=True, min_size=SOME)
                ),
                "polarizations": draw(
                    st.lists(st.sampled_from(["theta", "phi"]), unique=True, min_size=SOME)
                ),
            },
        },
        "gridding_parameters": {
            "global_gridding_per_frequency": {str(f): 1.0 for f in frequencies if draw(st.booleans())}
        },
    }
    return config, PARENT


@st.composite
def near_field_campaigns(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    phantoms = draw(st.lists(NAMES, unique=True, min_size=SOME, max_size=4))
    scenario_names = draw(
        st.lists(st.sampled_from(["front_of_eyes", "by_cheek", "by_belly"]), unique=True, min_size=SOME)
    )
    scenarios = {}
    for name in scenario_names:
        scenario: dict[str, Any] = {
            "positions": {
                p: [0, 0, 0] for p in draw(st.lists(st.sampled_from("cdlr"), unique=True, max_size=3))
            }
        }
        if draw(st.booleans()):
            orientations = draw(
                st.lists(st.sampled_from(["vertical", "horizontal", "tilt"]), unique=True, min_size=SOME)
            )
            scenario["orientations"] = {o: [] for o in orientations}
        scenarios[name] = scenario
    definitions = {
        p: {"placements": {f"do_{s}": draw(st.booleans()) for s in scenario_names}}
        for p in phantoms
        if draw(st.booleans())
    }
    config = {
        "extends": "base.json",
        "study_type": "near_field",
        "phantoms": phantoms,
        "antenna_config": {
            str(f): {"center_frequency": f}
            for f in draw(st.lists(st.integers(100, 30000), unique=True, min_size=SOME, max_size=5))
        },
        "placement_scenarios": scenarios,
    }
    # The parent holds what no strategy narrows, so merging cannot undo a split.
    return config, {**PARENT, "phantom_definitions": definitions}


def _groups(frequencies: list[int], cuts: list[int]) -> str:
    bounds = [0, *sorted({c % (len(frequencies) + 1) for c in cuts}), len(frequencies)]
    return ";".join(",".join(map(str, frequencies[a:b])) for a, b in itertools.pairwise(bounds))


@pytest.mark.parametrize("strategy", STRATEGIES)
@settings(max_examples=60, deadline=None)
@given(
    st.one_of(far_field_campaigns(), near_field_campaigns()),
    st.integers(1, 12),
    st.randoms(use_true_random=False),
    st.lists(st.integers(0, 100), min_size=1, max_size=5),
)
def test_every_simulation_lands_in_exactly_one_assignment(
    strategy: str,
    campaign: tuple[dict[str, Any], dict[str, Any]],
    num_splits: int,
    rng: Any,
    cuts: list[int],
) -> None:
    config, parent = campaign
    parents = {"base.json": parent}
    frequencies = list(config.get("frequencies_mhz", []))
    rng.shuffle(frequencies)
    try:
        result = split_config(
            config,
            strategy,
            num_splits=num_splits if strategy == "auto" else None,
            frequency_groups=_groups(frequencies, cuts) if strategy == "custom" else None,
            parents=parents,
        )
    except SplitError:
        return
    whole = enumerate_simulations(merge_extends(config, parents))
    covered: Counter[Any] = Counter()
    for assignment in result.assignments:
        sims = enumerate_simulations(merge_extends(assignment.config, parents))
        assert assignment.size == len(sims)
        covered.update(sims)
    assert covered == Counter(whole)
    assert sum(a.size or 0 for a in result.assignments) == result.total_size == len(whole)
    assert not [w for w in result.warnings if "duplicated" in w or "in no assignment" in w]
    assert [a.index for a in result.assignments] == list(range(len(result.assignments)))
    if strategy == "auto" and not result.warnings:
        assert len(result.assignments) == num_splits
