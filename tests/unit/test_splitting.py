"""Splitting a campaign config into assignments, strategy by strategy, as GOLIAT's `super_study` does.

Expected assignments are written out from GOLIAT's split rules (see docs/goliat-protocol.md) for
the configs in tests/data/goliat-configs; the property tests check that every strategy that
accepts a config covers each of its simulations exactly once. The tests taking `goliat_configs`
repeat a few checks on GOLIAT's own configs when GOLIAT_CONFIGS_DIR names them.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goliat_monitor.config_files import read_config
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
from tests.conftest import TEST_CONFIGS

FAR_FREQS = [450, 700, 835, 900, 1800, 2100, 2450, 3500, 5800]
# far_field_config.json's per-frequency gridding: 1800 and 2100 MHz have no entry.
GRIDDING = {"450": 3.0, "700": 2.5, "835": 2.5, "900": 2.0, "2450": 1.5, "3500": 1.0, "5800": 0.8}
DIRECTIONS = ["x_pos", "x_neg", "y_pos", "y_neg", "z_pos", "z_neg"]


def load(name: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A test config as written and its `extends` parents."""
    return read_config(TEST_CONFIGS, name)


def written(name: str) -> dict[str, Any]:
    return load(name)[0]


def split(name: str, strategy: str, **kwargs: Any) -> SplitResult:
    config, parents = load(name)
    return split_config(config, strategy, parents=parents, **kwargs)


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


def test_auto_small_far_field() -> None:
    result = split("far_field_small.json", "auto")
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
    config = written("far_field_small.json")
    for piece in result.configs:
        assert list(piece) == list(config)
        assert without(piece, "phantoms", "frequencies_mhz") == without(config, "phantoms", "frequencies_mhz")


def test_auto_far_field_config() -> None:
    four = split("far_field_config.json", "auto")
    assert [c["phantoms"] for c in four.configs] == [["thelonious"], ["eartha"], ["duke"], ["ella"]]
    assert all(c["frequencies_mhz"] == FAR_FREQS for c in four.configs)
    assert [a.size for a in four.assignments] == [108] * 4

    six = split("far_field_config.json", "auto", num_splits=6)
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


def test_auto_near_field_config() -> None:
    antennas = written("near_field_config.json")["antenna_config"]
    four = split("near_field_config.json", "auto")
    expected = [["700", "900", "1800"], ["2450", "3500", "5800"]]
    assert [(c["phantoms"], list(c["antenna_config"])) for c in four.configs] == [
        (["thelonious"], expected[0]),
        (["thelonious"], expected[1]),
        (["eartha"], expected[0]),
        (["eartha"], expected[1]),
    ]
    assert four.configs[1]["antenna_config"]["5800"] == antennas["5800"]
    assert "frequencies_mhz" not in four.configs[0]
    # thelonious skips by_belly (its do_by_belly is false): 8 simulations per antenna, eartha 12.
    assert [a.size for a in four.assignments] == [24, 24, 36, 36]
    assert four.assignments[0].summary == "phantoms: thelonious; antennas: 700, 900, 1800"

    three = split("near_field_config.json", "auto", num_splits=3)
    assert [list(c["antenna_config"]) for c in three.configs] == [
        ["700", "900"],
        ["1800", "2450"],
        ["3500", "5800"],
    ]
    assert all(c["phantoms"] == ["thelonious", "eartha"] for c in three.configs)
    assert [a.size for a in three.assignments] == [40, 40, 40]


def test_auto_falls_back_to_fewer_assignments_with_a_warning() -> None:
    result = split("near_field_single_antenna.json", "auto")  # 2 phantoms, 1 antenna, N=4
    assert len(result.assignments) == 1
    assert result.configs[0]["phantoms"] == ["thelonious", "eartha"]
    assert [a.size for a in result.assignments] == [8]  # counted through the two-level extends chain
    assert len(result.warnings) == 1
    assert "cannot split into exactly 4 assignments, made 1" in result.warnings[0]

    two = split("near_field_single_antenna.json", "auto", num_splits=2)
    assert [c["phantoms"] for c in two.configs] == [["thelonious"], ["eartha"]]
    assert [a.size for a in two.assignments] == [4, 4]
    assert two.warnings == []

    config = {"study_type": "far_field", "phantoms": ["a"], "frequencies_mhz": [1, 2, 3]}
    five = split_config(config, "auto", num_splits=5)
    assert [c["frequencies_mhz"] for c in five.configs] == [[1], [2], [3]]
    assert any("exactly 5" in w for w in five.warnings)


def test_auto_keeps_dict_phantoms() -> None:
    phantoms = written("near_field_dict_phantoms.json")["phantoms"]
    result = split("near_field_dict_phantoms.json", "auto", num_splits=3)
    assert [c["phantoms"] for c in result.configs] == [{name: entry} for name, entry in phantoms.items()]
    assert all(list(c["antenna_config"]) == ["900", "2450"] for c in result.configs)
    # The phantoms' own entries hold their placements; zoe has none, so GOLIAT skips it.
    assert [a.size for a in result.assignments] == [8, 8, 0]
    assert any("assignment(s) [2] imply no simulations" in w for w in result.warnings)


def test_auto_refusals() -> None:
    far = written("far_field_small.json")
    with pytest.raises(SplitError, match="No phantoms found in config"):
        split_config(without(far, "phantoms"), "auto")
    with pytest.raises(SplitError, match="No frequencies found in config"):
        split_config({**far, "frequencies_mhz": []}, "auto")
    with pytest.raises(SplitError, match="No antennas found in config"):
        split_config(without(written("near_field_config.json"), "antenna_config"), "auto")
    for bad in (0, -2, True, 2.0):
        with pytest.raises(SplitError, match="at least 1"):
            split_config(far, "auto", num_splits=bad)  # type: ignore[arg-type]


def test_config_must_be_an_object() -> None:
    with pytest.raises(SplitError, match="a config must be a JSON object, got list"):
        split_config([], "phantom")  # type: ignore[arg-type]


def test_split_works_on_the_file_as_written() -> None:
    # GOLIAT does not look into the parent: phantoms defined there are invisible to the split.
    setup = {"environmental": {"incident_directions": ["x_pos"], "polarizations": ["theta"]}}
    parents = {"base.json": {"phantoms": ["a", "b"], "frequencies_mhz": [700, 900], "far_field_setup": setup}}
    config = {"extends": "base.json", "study_type": "far_field"}
    with pytest.raises(SplitError, match=r"'phantoms' is only defined in the parent config 'base\.json'"):
        split_config(config, "auto", parents=parents)
    with pytest.raises(SplitError, match="'frequencies_mhz' is only defined in the parent"):
        split_config(config, "frequency", parents=parents)
    for strategy in ("direction", "polarization"):
        with pytest.raises(SplitError, match="'far_field_setup' is only defined in the parent"):
            split_config({**config, "phantoms": ["a"]}, strategy, parents=parents)
    with pytest.raises(SplitError, match=r"Frequency 700 not found .*'frequencies_mhz' is only defined"):
        split_config(config, "custom", frequency_groups="700", parents=parents)
    # `phantom` on no phantoms is no refusal in GOLIAT: it makes an empty super study.
    result = split_config(config, "phantom", parents=parents)
    assert result.assignments == []
    assert result.warnings[0].startswith("no assignments were made: one assignment per phantom (0); the")
    assert "'phantoms' is only defined in the parent config" in result.warnings[0]
    assert "4 simulation(s) are in no assignment" in result.warnings[-1]


def test_a_key_from_the_grandparent_chain_is_named_in_the_refusal() -> None:
    # near_field_single_antenna.json inherits its scenarios from near_field_common(.json).
    with pytest.raises(
        SplitError, match="'placement_scenarios' is only defined in the parent config 'near_field_common'"
    ):
        split("near_field_single_antenna.json", "scenario")
    config, parents = load("near_field_single_antenna.json")
    with pytest.raises(SplitError, match=r"^No antennas found in config\.$"):
        # The hint appears only when the parent chain defines the key.
        split_config(without(config, "antenna_config"), "auto", parents=parents)


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


def test_sizes_unknown_without_the_parent() -> None:
    result = split_config(written("far_field_small.json"), "phantom")
    assert [a.size for a in result.assignments] == [None, None, None]
    assert result.total_size is None
    assert any("simulation counts are unknown" in w and "base_config.json" in w for w in result.warnings)


# --- one dimension at a time ------------------------------------------------------------------


def test_phantom() -> None:
    result = split("far_field_config.json", "phantom")
    assert [c["phantoms"] for c in result.configs] == [["thelonious"], ["eartha"], ["duke"], ["ella"]]
    assert [a.summary for a in result.assignments] == [
        "phantoms: thelonious",
        "phantoms: eartha",
        "phantoms: duke",
        "phantoms: ella",
    ]
    assert [a.size for a in split("near_field_config.json", "phantom").assignments] == [48, 72]
    legacy = split("near_field_dict_phantoms.json", "phantom")
    phantoms = written("near_field_dict_phantoms.json")["phantoms"]
    assert [c["phantoms"] for c in legacy.configs] == [{name: entry} for name, entry in phantoms.items()]
    assert [a.size for a in legacy.assignments] == [8, 8, 0]


def test_frequency() -> None:
    result = split("far_field_config.json", "frequency")
    assert [c["frequencies_mhz"] for c in result.configs] == [[f] for f in FAR_FREQS]
    assert [a.size for a in result.assignments] == [48] * 9
    assert all(c["gridding_parameters"]["global_gridding_per_frequency"] == GRIDDING for c in result.configs)
    with pytest.raises(SplitError, match="No frequencies found in config for frequency splitting"):
        split("near_field_config.json", "frequency")


def test_direction() -> None:
    config = written("far_field_config.json")
    result = split("far_field_config.json", "direction")
    assert [c["far_field_setup"]["environmental"]["incident_directions"] for c in result.configs] == [
        [d] for d in DIRECTIONS
    ]
    assert [a.summary for a in result.assignments] == [f"directions: {d}" for d in DIRECTIONS]
    assert [a.size for a in result.assignments] == [72] * 6
    for piece in result.configs:
        assert piece["far_field_setup"]["environmental"]["polarizations"] == ["theta", "phi"]
        assert without(piece, "far_field_setup") == without(config, "far_field_setup")
    with pytest.raises(SplitError, match="Direction splitting is only supported for far-field studies"):
        split("near_field_config.json", "direction")
    # The tessellated config writes no incident_directions of its own (its parent's are unused).
    with pytest.raises(
        SplitError, match=r"^No incident_directions found in config for direction splitting\.$"
    ):
        split("far_field_tessellated.json", "direction")


def test_polarization() -> None:
    result = split("far_field_config.json", "polarization")
    assert [c["far_field_setup"]["environmental"]["polarizations"] for c in result.configs] == [
        ["theta"],
        ["phi"],
    ]
    assert [a.size for a in result.assignments] == [216, 216]
    tessellated = split("far_field_tessellated.json", "polarization")
    assert [a.size for a in tessellated.assignments] == [12]
    with pytest.raises(SplitError, match="Polarization splitting is only supported for far-field studies"):
        split("near_field_config.json", "polarization")
    no_polarizations = written("far_field_small.json")
    no_polarizations["far_field_setup"]["environmental"]["polarizations"] = []
    with pytest.raises(SplitError, match="No polarizations found in config for polarization splitting"):
        split_config(no_polarizations, "polarization")


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


def test_freq_x_pol() -> None:
    result = split("far_field_config.json", "freq_x_pol")
    assert len(result.assignments) == 18
    assert [
        (c["frequencies_mhz"], c["far_field_setup"]["environmental"]["polarizations"])
        for c in result.configs[:5]
    ] == [([450], ["theta"]), ([450], ["phi"]), ([700], ["theta"]), ([700], ["phi"]), ([835], ["theta"])]
    gridding = [c["gridding_parameters"]["global_gridding_per_frequency"] for c in result.configs]
    assert gridding[5] == {"835": 2.5}
    assert gridding[-1] == {"5800": 0.8}
    # 1800 MHz has no entry: like GOLIAT, its assignments keep every entry.
    assert result.configs[8]["frequencies_mhz"] == [1800]
    assert gridding[8] == gridding[9] == GRIDDING
    assert result.configs[-1]["gridding_parameters"]["global_gridding"] == {
        "manual_fallback_max_step_mm": 2.0
    }
    assert result.assignments[3].summary == "frequencies: 700; polarizations: phi"
    assert [a.size for a in result.assignments] == [24] * 18
    assert result.warnings == []
    # A config without gridding of its own gets none added.
    assert all("gridding_parameters" not in c for c in split("far_field_small.json", "freq_x_pol").configs)


def test_freq_x_pol_refusals() -> None:
    with pytest.raises(SplitError, match="freq_x_pol splitting is only supported for far-field studies"):
        split("near_field_config.json", "freq_x_pol")
    far = written("far_field_config.json")
    with pytest.raises(SplitError, match="No frequencies found in config for freq_x_pol"):
        split_config(without(far, "frequencies_mhz"), "freq_x_pol")
    no_pols = copy.deepcopy(far)
    no_pols["far_field_setup"]["environmental"]["polarizations"] = []
    with pytest.raises(SplitError, match="No polarizations found in config for freq_x_pol"):
        split_config(no_pols, "freq_x_pol")


def test_scenario() -> None:
    result = split("near_field_config.json", "scenario")
    expected = [
        ("front_of_eyes", "vertical"),
        ("front_of_eyes", "horizontal"),
        ("by_cheek", "cheek"),
        ("by_cheek", "tilt"),
        ("by_belly", "vertical"),
        ("by_belly", "horizontal"),
    ]
    got = []
    for config in result.configs:
        ((name, details),) = config["placement_scenarios"].items()
        got.append((name, *details["orientations"]))
    assert got == expected
    assert [a.size for a in result.assignments] == [36, 36, 12, 12, 12, 12]
    assert result.assignments[2].summary == "scenario: by_cheek; orientations: cheek"
    by_cheek = written("near_field_config.json")["placement_scenarios"]["by_cheek"]
    assert result.configs[3]["placement_scenarios"]["by_cheek"] == {
        **by_cheek,
        "orientations": {"tilt": by_cheek["orientations"]["tilt"]},
    }
    assert result.warnings == []


def test_scenario_without_orientations_is_one_assignment() -> None:
    result = split("near_field_dict_phantoms.json", "scenario")
    scenarios = written("near_field_dict_phantoms.json")["placement_scenarios"]
    assert [c["placement_scenarios"] for c in result.configs] == [
        {"by_belly": {**scenarios["by_belly"], "orientations": {"vertical": []}}},
        {
            "by_belly": {
                **scenarios["by_belly"],
                "orientations": {"horizontal": [{"axis": "Y", "angle_deg": 90}]},
            }
        },
        {"front_of_eyes": scenarios["front_of_eyes"]},
    ]
    assert result.assignments[2].summary == "scenario: front_of_eyes; orientations: (none)"
    # A scenario without orientations implies no simulations in GOLIAT's loop.
    assert [a.size for a in result.assignments] == [8, 8, 0]
    assert any("assignment(s) [2] imply no simulations" in w for w in result.warnings)


def test_scenario_refusals() -> None:
    with pytest.raises(SplitError, match="Scenario splitting is only supported for near-field studies"):
        split("far_field_config.json", "scenario")
    with pytest.raises(SplitError, match="No placement_scenarios found"):
        split_config({"study_type": "near_field", "placement_scenarios": {}}, "scenario")


# --- custom -----------------------------------------------------------------------------------


def test_custom() -> None:
    groups = "5800;3500;2100,2450;1800;450,700,835,900"
    result = split("far_field_config.json", "custom", frequency_groups=groups)
    assert [c["frequencies_mhz"] for c in result.configs] == [
        [5800],
        [3500],
        [2100, 2450],
        [1800],
        [450, 700, 835, 900],
    ]
    # The gridding narrows to the group's entries; a group with none keeps every entry.
    assert [c["gridding_parameters"]["global_gridding_per_frequency"] for c in result.configs] == [
        {"5800": 0.8},
        {"3500": 1.0},
        {"2450": 1.5},
        GRIDDING,
        {"450": 3.0, "700": 2.5, "835": 2.5, "900": 2.0},
    ]
    assert [a.size for a in result.assignments] == [48, 48, 96, 48, 192]
    assert result.assignments[2].summary == "frequencies: 2100, 2450"
    assert result.warnings == []


def test_custom_left_out_frequencies_warn() -> None:
    result = split("far_field_config.json", "custom", frequency_groups="5800;2450,2100;3500,900,835,1800")
    assert len(result.assignments) == 3
    assert "Frequencies [450, 700] from config are not assigned to any worker." in result.warnings
    assert any("96 simulation(s) are in no assignment" in w for w in result.warnings)


def test_custom_refusals() -> None:
    far = written("far_field_config.json")
    with pytest.raises(SplitError, match=r"Frequency 999 not found in config\. Available: \[450, 700"):
        split_config(far, "custom", frequency_groups="700;999")
    with pytest.raises(SplitError, match="requires --frequency-groups"):
        split_config(far, "custom")
    with pytest.raises(SplitError, match="No frequency groups parsed"):
        split_config(far, "custom", frequency_groups=" ; ")
    with pytest.raises(SplitError, match="invalid frequency '7 GHz'"):
        split_config(far, "custom", frequency_groups="700;7 GHz")
    # Near-field studies have no frequencies_mhz, so every frequency is unknown.
    with pytest.raises(SplitError, match=r"Frequency 700 not found in config\. Available: \[\] Near-field"):
        split("near_field_config.json", "custom", frequency_groups="700")


def test_custom_repeated_frequency_warns() -> None:
    result = split("far_field_small.json", "custom", frequency_groups="700,900;900")
    assert [c["frequencies_mhz"] for c in result.configs] == [[700, 900], [900]]
    assert any("[900] appear in more than one group" in w for w in result.warnings)
    assert any("12 simulation run(s) are duplicated" in w for w in result.warnings)


def test_near_field_frequency_splits_warn_that_they_narrow_nothing() -> None:
    config = {**written("near_field_config.json"), "frequencies_mhz": [700, 900]}
    for strategy, groups in (("frequency", None), ("custom", "700;900")):
        result = split_config(config, strategy, frequency_groups=groups)
        assert any("near-field studies ignore frequencies_mhz" in w for w in result.warnings)


# --- general ----------------------------------------------------------------------------------


def test_unknown_strategy() -> None:
    with pytest.raises(SplitError, match="unknown split strategy 'by_mood'"):
        split_config({}, "by_mood")


def test_options_for_other_strategies_are_ignored_with_a_warning() -> None:
    result = split("far_field_small.json", "phantom", num_splits=2, frequency_groups="700")
    assert len(result.assignments) == 3
    assert result.warnings == [
        "--num-splits is ignored when splitting by phantom: the config decides the number of assignments.",
        "--frequency-groups is ignored when splitting by phantom.",
    ]


# Which strategies each shape of config accepts; every other one is refused.
ACCEPTED = {
    "far_field_config.json": {
        "auto",
        "phantom",
        "direction",
        "polarization",
        "frequency",
        "freq_x_pol",
        "custom",
    },
    "near_field_config.json": {"auto", "phantom", "scenario"},
    "near_field_dict_phantoms.json": {"auto", "phantom", "scenario"},
}


def scribble(value: Any) -> None:
    """Change every dict and list inside `value`, so any object a split shares with its input shows."""
    if isinstance(value, dict):
        for inner in value.values():
            scribble(inner)
        value["mutant"] = True
    elif isinstance(value, list):
        for inner in value:
            scribble(inner)
        value.append("mutant")


@pytest.mark.parametrize(("name", "strategy"), list(itertools.product(ACCEPTED, STRATEGIES)))
def test_input_is_not_mutated(name: str, strategy: str) -> None:
    config, parents = load(name)
    before = copy.deepcopy((config, parents))
    if strategy not in ACCEPTED[name]:
        with pytest.raises(SplitError):
            split_config(config, strategy, frequency_groups="700;450", parents=parents)
        assert (config, parents) == before
        return
    result = split_config(config, strategy, frequency_groups="700;450", parents=parents)
    assert len(result.assignments) >= 2
    assert (config, parents) == before
    for piece in result.configs:
        scribble(piece)
    assert (config, parents) == before


# --- every strategy covers the campaign exactly once ------------------------------------------

SOME = 1  # empty lists are covered by the refusal tests; here they would only waste examples
SCENARIOS = ["front_of_eyes", "by_cheek", "by_belly"]
ORIENTATIONS = ["vertical", "horizontal", "tilt"]
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


# Near-field campaigns have no frequencies_mhz or far_field_setup; far-field ones no scenarios.
REFUSED_BY_CONSTRUCTION = {
    ("far_field", "scenario"),
    *(("near_field", s) for s in ("direction", "polarization", "frequency", "freq_x_pol", "custom")),
}


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
        # The drawn campaigns always have what a strategy needs, except these by construction.
        assert (config["study_type"], strategy) in REFUSED_BY_CONSTRUCTION
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


# --- extra: GOLIAT's own configs (GOLIAT_CONFIGS_DIR) -----------------------------------------

# Sizes of GOLIAT's splits of its own configs, counted from GOLIAT's split rules and study loops.
GOLIAT_SPLITS = [
    ("tutorial_5_parallel.json", "auto", None, [8, 8, 4, 4]),
    ("far_field_config.json", "auto", None, [108] * 4),
    ("far_field_config.json", "direction", None, [72] * 6),
    ("far_field_config.json", "freq_x_pol", None, [24] * 18),
    ("far_field_config.json", "custom", "5800;5200;3500;2140,2450;450,700,835,1450", [48, 48, 48, 96, 192]),
    ("near_field_config.json", "auto", None, [88] * 4),
    ("near_field_config.json", "scenario", None, [64, 64, 16, 16, 16, 16, 16, 16, 64, 64]),
    ("near_field_config_26ghz.json", "auto", None, [12]),
]


@pytest.mark.parametrize(("name", "strategy", "groups", "sizes"), GOLIAT_SPLITS)
def test_goliats_own_configs(
    goliat_configs: Path, name: str, strategy: str, groups: str | None, sizes: list[int]
) -> None:
    config, parents = read_config(goliat_configs, name)
    result = split_config(config, strategy, frequency_groups=groups, parents=parents)
    assert [a.size for a in result.assignments] == sizes
    assert result.total_size == sum(sizes)
    assert not [w for w in result.warnings if "duplicated" in w or "in no assignment" in w]


def test_goliats_own_near_field_config_refuses_far_field_splits(goliat_configs: Path) -> None:
    config, parents = read_config(goliat_configs, "near_field_config.json")
    for strategy in ("direction", "polarization", "frequency", "freq_x_pol"):
        with pytest.raises(SplitError):
            split_config(config, strategy, parents=parents)
