"""`extends` merging and simulation enumeration, checked against GOLIAT's rules.

Expected values are written out by hand from GOLIAT's code (`goliat/config/merge.py`, the far-
and near-field study loops, `project_manager._build_project_path`) for the configs in
tests/data/goliat-configs, so a regression fails here. The tests taking `goliat_configs` repeat
the counts on GOLIAT's own configs when GOLIAT_CONFIGS_DIR names them.
"""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goliat_monitor.config_files import read_config
from goliat_monitor.domain.campaign import (
    ConfigError,
    Simulation,
    collect_parents,
    deep_merge,
    enumerate_simulations,
    merge_extends,
    parse_config,
    spherical_directions,
)
from tests.conftest import TEST_CONFIGS


def merged(name: str, folder: Path = TEST_CONFIGS) -> dict[str, Any]:
    """A config of `folder` with its `extends` chain merged in."""
    return merge_extends(*read_config(folder, name))


def paths(config: dict[str, Any]) -> list[str]:
    return [sim.relative_path for sim in enumerate_simulations(config)]


# --- merge_extends ----------------------------------------------------------------------------


def test_merge_far_field_config_over_base() -> None:
    config = merged("far_field_config.json")
    # Dicts merge key by key: the child's values win, the parent's other keys stay.
    assert config["gridding_parameters"]["global_gridding"] == {
        "grid_mode": "manual",
        "manual_fallback_max_step_mm": 2.0,
    }
    assert config["gridding_parameters"]["padding"] == {"padding_mode": "automatic"}
    assert config["execution_control"] == {
        "do_setup": True,
        "do_run": True,
        "do_extract": True,
        "only_write_input_file": False,
        "batch_run": False,
    }
    assert config["simulation_parameters"] == {
        "excitation_type": "Harmonic",
        "simulation_time_multiplier": 3.0,
        "number_of_point_sensors": 2,
    }
    # GOLIAT merges the child into the parent: parent keys first, child-only keys after them.
    assert list(config) == [
        "use_gui",
        "use_web",
        "verbose",
        "execution_control",
        "extraction",
        "simulation_parameters",
        "gridding_parameters",
        "solver_settings",
        "extends",
        "study_type",
        "phantoms",
        "frequencies_mhz",
        "far_field_setup",
    ]
    # GOLIAT keeps the child's own `extends` key in the merged config.
    assert config["extends"] == "base_config.json"


def test_merge_replaces_lists_and_mismatched_types() -> None:
    parent: dict[str, Any] = {
        "a": [1, 2, 3],
        "b": {"x": 1, "y": {"z": 1, "w": 2}},
        "c": {"k": 1},
        "d": 5,
        "e": "keep",
    }
    child: dict[str, Any] = {
        "extends": "p.json",
        "a": [9],
        "b": {"y": {"z": 7}, "n": None},
        "c": 3,
        "d": {"k": 2},
    }
    before = copy.deepcopy((parent, child))
    result = merge_extends(child, {"p.json": parent})
    assert result == {
        "a": [9],
        "b": {"x": 1, "y": {"z": 7, "w": 2}, "n": None},
        "c": 3,
        "d": {"k": 2},
        "e": "keep",
        "extends": "p.json",
    }
    assert list(result) == ["a", "b", "c", "d", "e", "extends"]
    assert (parent, child) == before  # unlike GOLIAT's deep_merge, nothing is mutated
    result["b"]["y"]["w"] = 99
    assert parent["b"]["y"]["w"] == 2  # and nothing is shared


def test_merge_chain_and_name_lookup() -> None:
    grandparent = {"a": 1, "b": {"x": 1, "y": 1}, "z": "gp"}
    parent = {"extends": "grand", "b": {"y": 2}, "z": "p"}
    child = {"extends": "configs/parent.json", "b": {"x": 3}}
    result = merge_extends(child, {"grand.json": grandparent, "parent.json": parent})
    assert result == {"a": 1, "b": {"x": 3, "y": 2}, "z": "p", "extends": "configs/parent.json"}


def test_merge_without_extends_is_a_copy() -> None:
    config = {"a": {"b": [1]}}
    result = merge_extends(config, {})
    assert result == config
    assert result["a"] is not config["a"]


def test_merge_missing_parent() -> None:
    with pytest.raises(ConfigError, match=r"parent config 'base\.json'.*not found"):
        merge_extends({"extends": "base.json"}, {"other.json": {}})


@pytest.mark.parametrize("value", [None, "", 3])
def test_merge_malformed_extends(value: object) -> None:
    with pytest.raises(ConfigError, match="'extends' must name"):
        merge_extends({"extends": value}, {})


def test_merge_cycle() -> None:
    parents = {"a.json": {"extends": "b.json"}, "b.json": {"extends": "a.json"}}
    with pytest.raises(ConfigError, match=r"cycle: a\.json -> b\.json -> a\.json"):
        merge_extends({"extends": "a.json"}, parents)
    with pytest.raises(ConfigError, match="cycle"):
        merge_extends({"extends": "self"}, {"self.json": {"extends": "self.json"}})


# --- collect_parents and parse_config: reading the chain from file texts ----------------------


def test_collect_parents_walks_the_chain_keyed_as_written() -> None:
    texts = {
        "child.json": '{"extends": "parent"}',
        "parent.json": '{"extends": "configs/base.json", "b": 2}',
        "base.json": '{"a": 1}',
        "unrelated.json": "not even JSON",
    }
    parents = collect_parents({"extends": "parent"}, texts)
    assert parents == {"parent": {"extends": "configs/base.json", "b": 2}, "configs/base.json": {"a": 1}}
    assert merge_extends({"extends": "parent", "c": 3}, parents) == {
        "a": 1,
        "extends": "parent",
        "b": 2,
        "c": 3,
    }


def test_collect_parents_stops_at_a_missing_parent_or_a_cycle() -> None:
    assert collect_parents({"a": 1}, {"x.json": "{}"}) == {}
    assert collect_parents({"extends": "gone.json"}, {}) == {}
    chain = {"p.json": '{"extends": "q.json", "p": 1}', "q.json": '{"extends": "missing.json"}'}
    assert collect_parents({"extends": "p"}, chain) == {
        "p": {"extends": "q.json", "p": 1},
        "q.json": {"extends": "missing.json"},
    }
    loop = {"a.json": '{"extends": "b"}', "b.json": '{"extends": "a.json"}'}
    parents = collect_parents({"extends": "a.json"}, loop)
    assert parents == {"a.json": {"extends": "b"}, "b": {"extends": "a.json"}}
    with pytest.raises(ConfigError, match="cycle"):
        merge_extends({"extends": "a.json"}, parents)


def test_collect_parents_refuses_a_parent_that_is_no_object() -> None:
    with pytest.raises(ConfigError, match=r"cannot read config p\.json"):
        collect_parents({"extends": "p.json"}, {"p.json": "{broken"})
    with pytest.raises(ConfigError, match=r"config p\.json must hold a JSON object, got list"):
        collect_parents({"extends": "p.json"}, {"p.json": "[1]"})


def test_parse_config() -> None:
    assert parse_config('{"a": [1]}', "x.json") == {"a": [1]}
    with pytest.raises(ConfigError, match=r"config x\.json must hold a JSON object, got str"):
        parse_config('"text"', "x.json")


@given(
    st.recursive(
        st.none() | st.integers(0, 3) | st.text("ab", max_size=2),
        lambda inner: (
            st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from("abc"), inner, max_size=3)
        ),
    ).filter(lambda value: isinstance(value, dict)),
    st.dictionaries(
        st.sampled_from("abcd"), st.integers() | st.dictionaries(st.sampled_from("ab"), st.integers())
    ),
)
def test_deep_merge_properties(child: dict[str, Any], parent: dict[str, Any]) -> None:
    result = deep_merge(child, parent)
    assert set(result) == set(child) | set(parent)
    for key, value in child.items():
        if not (isinstance(value, dict) and isinstance(parent.get(key), dict)):
            assert result[key] == value
    for key in parent.keys() - child.keys():
        assert result[key] == parent[key]


# --- far field --------------------------------------------------------------------------------


def test_far_field_config() -> None:
    sims = enumerate_simulations(merged("far_field_config.json"))
    assert len(sims) == 4 * 9 * 6 * 2
    assert sims[0] == Simulation(
        study_type="far_field",
        phantom="thelonious",
        frequency_mhz=450,
        case="environmental_x_pos_theta",
        scenario="environmental",
        position="x_pos",
        orientation="theta",
    )
    assert [s.relative_path for s in sims[:5]] == [
        "far_field/thelonious/450MHz/environmental_x_pos_theta",
        "far_field/thelonious/450MHz/environmental_x_pos_phi",
        "far_field/thelonious/450MHz/environmental_x_neg_theta",
        "far_field/thelonious/450MHz/environmental_x_neg_phi",
        "far_field/thelonious/450MHz/environmental_y_pos_theta",
    ]
    assert sims[12].relative_path == "far_field/thelonious/700MHz/environmental_x_pos_theta"
    assert sims[108].relative_path == "far_field/eartha/450MHz/environmental_x_pos_theta"
    assert sims[-1].relative_path == "far_field/ella/5800MHz/environmental_z_neg_phi"
    assert len(set(sims)) == len(sims)


def test_small_far_field() -> None:
    assert paths(merged("far_field_small.json")) == [
        f"far_field/{phantom}/{freq}MHz/environmental_{direction}_{pol}"
        for phantom in ("thelonious", "eartha", "ella")
        for freq in (700, 900)
        for direction in ("x_pos", "z_neg")
        for pol in ("theta", "phi")
    ]


def test_far_field_reads_environmental_whatever_the_type() -> None:
    config = {
        "study_type": "far_field",
        "phantoms": ["Duke"],
        "frequencies_mhz": ["700+2450", "900", 450],
        "far_field_setup": {
            "type": "other",
            "other": {"incident_directions": ["nope"], "polarizations": ["nope"]},
            "environmental": {"incident_directions": ["x_pos"], "polarizations": ["theta"]},
        },
        "run_tag": " my run/1 ",
    }
    sims = enumerate_simulations(config)
    assert [(s.phantom, s.frequency_mhz, s.case) for s in sims] == [
        ("Duke", (700, 2450), "environmental_x_pos_theta__my_run_1"),
        ("Duke", 900, "environmental_x_pos_theta__my_run_1"),
        ("Duke", 450, "environmental_x_pos_theta__my_run_1"),
    ]
    # Phantom folders are lower case; multi-sine groups are joined with '+'.
    assert sims[0].relative_path == "far_field/duke/700+2450MHz/environmental_x_pos_theta__my_run_1"


@pytest.mark.parametrize("tag", [None, "", "   ", 7])
def test_run_tag_that_means_no_tag(tag: object) -> None:
    config = {
        "study_type": "far_field",
        "phantoms": ["a"],
        "frequencies_mhz": [1],
        "far_field_setup": {"environmental": {"incident_directions": ["d"], "polarizations": ["p"]}},
        "run_tag": tag,
    }
    assert [s.case for s in enumerate_simulations(config)] == ["environmental_d_p"]


def test_spherical_tessellation_through_an_extends_chain() -> None:
    # far_field_tessellated.json extends far_field_config.json, which extends base_config.json:
    # the tessellation wins over the incident_directions the parent still contributes.
    full = merged("far_field_tessellated.json")
    assert full["far_field_setup"]["environmental"]["incident_directions"][0] == "x_pos"
    assert full["use_gui"] is True  # from the grandparent
    directions = ["0_0", "90_0", "90_90", "90_180", "90_270", "180_0"]
    assert paths(full) == [
        f"far_field/thelonious/{freq}MHz/environmental_{direction}_theta"
        for freq in (700, 2450)
        for direction in directions
    ]


def test_spherical_directions() -> None:
    assert spherical_directions({}) == [
        "0_0",
        *[f"60_{phi}" for phi in (0, 90, 180, 270)],
        *[f"120_{phi}" for phi in (0, 90, 180, 270)],
        "180_0",
    ]
    assert spherical_directions({"theta_values": [90], "phi_values": [90, 150, 210, 270]}) == [
        "90_90",
        "90_150",
        "90_210",
        "90_270",
    ]
    # Explicit values win over divisions; angles are truncated to whole degrees.
    assert spherical_directions({"theta_values": [0, 45.9], "theta_divisions": 9, "phi_divisions": 3}) == [
        "0_0",
        "45_0",
        "45_120",
        "45_240",
    ]
    # No phi divisions leaves only the poles; no theta divisions is GOLIAT's division by zero.
    assert spherical_directions({"phi_divisions": 0}) == ["0_0", "180_0"]
    with pytest.raises(ConfigError, match="spherical_tessellation"):
        spherical_directions({"theta_divisions": 0})


def test_far_field_empty_pieces_give_no_simulations() -> None:
    assert enumerate_simulations({"study_type": "far_field", "phantoms": ["a"], "frequencies_mhz": [1]}) == []
    config = {
        "study_type": "far_field",
        "phantoms": "solo",
        "frequencies_mhz": 700,
        "far_field_setup": {"environmental": {"incident_directions": ["d"], "polarizations": ["p"]}},
    }
    assert paths(config) == ["far_field/solo/700MHz/environmental_d_p"]


@pytest.mark.parametrize("study_type", [None, "free_space", "Far_Field"])
def test_unknown_study_type(study_type: object) -> None:
    with pytest.raises(ConfigError, match="study_type"):
        enumerate_simulations({"study_type": study_type, "phantoms": ["a"]})


# --- near field -------------------------------------------------------------------------------

ORIENTATIONS = ("vertical", "horizontal")
FRONT = [f"front_of_eyes_{p}_{o}" for p in ("center", "left", "right") for o in ORIENTATIONS]
CHEEK = ["by_cheek_tragus_cheek", "by_cheek_tragus_tilt"]
BELLY = [f"by_belly_{p}_{o}" for p in ("center", "up") for o in ORIENTATIONS]


def test_near_field_config() -> None:
    sims = enumerate_simulations(merged("near_field_config.json"))
    # Six antennas; thelonious has do_by_belly false, eartha runs all three scenarios.
    assert len(sims) == 6 * (6 + 2) + 6 * (6 + 2 + 4)
    assert [s.case for s in sims[:8]] == FRONT + CHEEK
    assert {s.frequency_mhz for s in sims[:8]} == {700}
    assert sims[8].relative_path == "near_field/thelonious/900MHz/front_of_eyes_center_vertical"
    assert [s.case for s in sims[48:60]] == FRONT + CHEEK + BELLY
    assert sims[48].relative_path == "near_field/eartha/700MHz/front_of_eyes_center_vertical"
    assert sims[-1] == Simulation(
        study_type="near_field",
        phantom="eartha",
        frequency_mhz=5800,
        case="by_belly_up_horizontal",
        scenario="by_belly",
        position="up",
        orientation="horizontal",
    )


def test_near_field_through_an_extends_chain() -> None:
    # The scenarios and placements come from near_field_common (named without ".json").
    cases = [
        "front_of_eyes_center_vertical",
        "front_of_eyes_center_horizontal",
        "by_cheek_tragus_cheek",
        "by_cheek_tragus_tilt",
    ]
    assert paths(merged("near_field_single_antenna.json")) == [
        f"near_field/{phantom}/26000MHz/{case}" for phantom in ("thelonious", "eartha") for case in cases
    ]


def test_near_field_dict_phantoms_file() -> None:
    # The phantoms' own entries hold their placements; zoe has none and front_of_eyes no
    # orientations, so both imply no simulations.
    assert paths(merged("near_field_dict_phantoms.json")) == [
        f"near_field/{phantom}/{freq}MHz/by_belly_{position}_{orientation}"
        for phantom in ("athena", "martin")
        for freq in (900, 2450)
        for position in ("center", "left")
        for orientation in ORIENTATIONS
    ]


def test_near_field_placement_flags_and_missing_definitions() -> None:
    config = {
        "study_type": "near_field",
        # duke has no placements and zoe no definition at all: GOLIAT skips both.
        "phantoms": ["duke", "thelonious", "zoe"],
        "antenna_config": {"5800": {}, "700": {}},
        "placement_scenarios": {
            "by_belly": {"positions": {"up": [0, 0, 1]}, "orientations": {"vertical": []}},
            "by_cheek": {"positions": {"tragus": [0, 0, 0]}, "orientations": {"base": [], "tilt": []}},
            "front_of_eyes": {"positions": {"center": [0, 0, 0]}},  # no orientations: no simulations
        },
        "phantom_definitions": {
            "duke": {"lips": [1, 2, 3]},
            "thelonious": {
                "placements": {"do_by_belly": False, "do_by_cheek": True, "do_front_of_eyes": True}
            },
        },
    }
    # Antenna keys keep their written order (not sorted).
    assert paths(config) == [
        "near_field/thelonious/5800MHz/by_cheek_tragus_base",
        "near_field/thelonious/5800MHz/by_cheek_tragus_tilt",
        "near_field/thelonious/700MHz/by_cheek_tragus_base",
        "near_field/thelonious/700MHz/by_cheek_tragus_tilt",
    ]


def test_near_field_phantoms_as_dict() -> None:
    # Older near-field files key `phantoms` by name; the names are the keys, and the placements
    # come from phantom_definitions or, failing that, from the phantom's own entry.
    config = {
        "study_type": "near_field",
        "phantoms": {"athena": {"placements": {"do_belly": True}}, "Martin": {}},
        "phantom_definitions": {"Martin": {"placements": {"do_belly": 1}}},
        "antenna_config": {"900": {}},
        "placement_scenarios": {"belly": {"positions": {"c": []}, "orientations": {"v": []}}},
        "run_tag": "r",
    }
    assert paths(config) == ["near_field/athena/900MHz/belly_c_v__r", "near_field/martin/900MHz/belly_c_v__r"]


def test_near_field_malformed() -> None:
    base = {
        "study_type": "near_field",
        "phantoms": ["a"],
        "phantom_definitions": {"a": {"placements": {"do_s": True}}},
        "placement_scenarios": {"s": {"positions": {"p": []}, "orientations": {"o": []}}},
    }
    with pytest.raises(ConfigError, match="antenna_config key '7GHz'"):
        enumerate_simulations({**base, "antenna_config": {"7GHz": {}}})
    bad = {**base, "antenna_config": {"7": {}}, "placement_scenarios": {"s": {"positions": ["p"]}}}
    with pytest.raises(ConfigError, match=r"s\.positions must be an object"):
        enumerate_simulations(bad)


# --- the hand-made 26 GHz split in GOLIAT's repository ----------------------------------------

# configs/near_field_config_26ghz_parallel/*.json and configs/near_field_config_26ghz_remaining.json
# from GOLIAT's repository (commit 139f21d), reduced to the keys that decide the simulations.
# The four files are a manual "phantom x body region" split of the remaining config: no
# `--split-by` strategy produces them (they also rewrite the do_* placement flags).
HEAD_SCENARIOS = {
    "front_of_eyes": {
        "positions": {"left": [-25, 0, -40], "right": [25, 0, -40], "down": [0, 0, -100]},
        "orientations": {"vertical": [], "horizontal": [{"axis": "Y", "angle_deg": 90}]},
    },
    "by_cheek": {
        "positions": {"tragus": [0, 0, 0]},
        "orientations": {"cheek_up": [], "cheek_down": [], "tilt_up": [], "tilt_down": []},
    },
}
BELLY_SCENARIO = {
    "by_belly": {
        "positions": {"left": [-150, 0, 0], "right": [150, 0, 0], "up": [0, 0, 100]},
        "orientations": {"vertical": [], "horizontal": [{"axis": "Y", "angle_deg": 90}]},
    }
}


def _parallel_file(
    phantom: str, scenarios: dict[str, Any], eyes: bool, belly: bool, cheek: bool
) -> dict[str, Any]:
    return {
        "extends": "base_config.json",
        "study_type": "near_field",
        "phantoms": [phantom],
        "antenna_config": {"26000": {"center_frequency": 26000, "target_power_mW": 1.38}},
        "placement_scenarios": scenarios,
        "phantom_definitions": {
            phantom: {
                "placements": {
                    "do_front_of_eyes": eyes,
                    "do_by_belly": belly,
                    "do_by_cheek": cheek,
                    "distance_from_eye": 200,
                    "distance_from_belly": 200,
                    "distance_from_cheek": 8,
                }
            }
        },
    }


PARALLEL_26GHZ = {
    "near_field_config_0_thel_belly.json": _parallel_file("thelonious", BELLY_SCENARIO, False, True, False),
    "near_field_config_1_thel_head.json": _parallel_file("thelonious", HEAD_SCENARIOS, True, False, True),
    "near_field_config_2_eartha_belly.json": _parallel_file("eartha", BELLY_SCENARIO, False, True, False),
    "near_field_config_3_eartha_head.json": _parallel_file("eartha", HEAD_SCENARIOS, True, False, True),
}
REMAINING_26GHZ = {
    **_parallel_file("thelonious", {**HEAD_SCENARIOS, **BELLY_SCENARIO}, True, True, True),
    "phantoms": ["thelonious", "eartha"],
    "phantom_definitions": {
        name: {"placements": {"do_front_of_eyes": True, "do_by_belly": True, "do_by_cheek": True}}
        for name in ("thelonious", "eartha")
    },
}


def test_26ghz_parallel_files_partition_the_remaining_campaign() -> None:
    _config, parents = read_config(TEST_CONFIGS, "near_field_config.json")  # base_config.json
    per_file = {
        name: enumerate_simulations(merge_extends(config, parents)) for name, config in PARALLEL_26GHZ.items()
    }
    assert {name: len(sims) for name, sims in per_file.items()} == {
        "near_field_config_0_thel_belly.json": 6,
        "near_field_config_1_thel_head.json": 10,
        "near_field_config_2_eartha_belly.json": 6,
        "near_field_config_3_eartha_head.json": 10,
    }
    assert [s.case for s in per_file["near_field_config_1_thel_head.json"]] == [
        "front_of_eyes_left_vertical",
        "front_of_eyes_left_horizontal",
        "front_of_eyes_right_vertical",
        "front_of_eyes_right_horizontal",
        "front_of_eyes_down_vertical",
        "front_of_eyes_down_horizontal",
        "by_cheek_tragus_cheek_up",
        "by_cheek_tragus_cheek_down",
        "by_cheek_tragus_tilt_up",
        "by_cheek_tragus_tilt_down",
    ]
    whole = enumerate_simulations(merge_extends(REMAINING_26GHZ, parents))
    assert len(whole) == 32  # "the remaining simulation matrix (32 sims)" in GOLIAT's commit message
    assert Counter(s for sims in per_file.values() for s in sims) == Counter(whole)


# --- extra: GOLIAT's own configs (GOLIAT_CONFIGS_DIR) -----------------------------------------


@pytest.mark.parametrize(
    ("name", "count", "first", "last"),
    [
        (
            "far_field_config.json",
            4 * 9 * 6 * 2,
            "far_field/thelonious/450MHz/environmental_x_pos_theta",
            "far_field/ella/5800MHz/environmental_z_neg_phi",
        ),
        (
            "tutorial_5_parallel.json",
            3 * 2 * 2 * 2,
            "far_field/thelonious/700MHz/environmental_x_pos_theta",
            "far_field/ella/900MHz/environmental_z_neg_phi",
        ),
        (
            "near_field_config.json",
            2 * 8 * (8 + 6 + 8),
            "near_field/thelonious/700MHz/front_of_eyes_center_vertical",
            "near_field/eartha/5800MHz/by_belly_up_horizontal",
        ),
        (
            "near_field_config_26ghz.json",
            2 * 6,
            "near_field/thelonious/26000MHz/front_of_eyes_center_vertical",
            "near_field/eartha/26000MHz/by_belly_center_horizontal",
        ),
    ],
)
def test_goliats_own_configs(goliat_configs: Path, name: str, count: int, first: str, last: str) -> None:
    sims = paths(merged(name, goliat_configs))
    assert (len(sims), sims[0], sims[-1]) == (count, first, last)
    assert len(set(sims)) == count
