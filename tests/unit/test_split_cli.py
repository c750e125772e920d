"""`goliat-monitor split`: the table, the JSON output and the refusals, through click's CliRunner."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from goliat_monitor.cli import main
from goliat_monitor.domain.splitting import split_config
from tests.conftest import TEST_CONFIGS as CONFIGS


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_table(runner: CliRunner) -> None:
    result = runner.invoke(main, ["split", str(CONFIGS / "far_field_small.json"), "--by", "auto"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    rows = [line for line in lines if "phantoms:" in line]
    assert len(rows) == 4
    assert (
        "0" in rows[0]
        and "thelonious, eartha; frequencies: 700" in rows[0]
        and rows[0].rstrip("│ ").endswith("8")
    )
    assert "3" in rows[3] and "ella; frequencies: 900" in rows[3] and rows[3].rstrip("│ ").endswith("4")
    assert any("4 assignment(s)" in line and line.rstrip("│ ").endswith("24") for line in lines)
    assert result.stderr == ""


def test_warnings_go_to_stderr(runner: CliRunner) -> None:
    result = runner.invoke(main, ["split", str(CONFIGS / "near_field_single_antenna.json")])  # auto, N=4
    assert result.exit_code == 0
    assert "warning: cannot split into exactly 4 assignments, made 1" in result.stderr
    assert "warning" not in result.stdout
    assert "antennas: 26000" in result.stdout
    # The size is counted through the chain near_field_common -> base_config.json beside it.
    assert any(
        "antennas: 26000" in line and line.rstrip("│ ").endswith("8") for line in result.stdout.splitlines()
    )


def test_json_prints_only_the_configs(runner: CliRunner) -> None:
    path = CONFIGS / "far_field_config.json"
    groups = "5800;2450;3500;2100,1800;450,700,835"
    result = runner.invoke(
        main, ["split", str(path), "--by", "custom", "--frequency-groups", groups, "--json"]
    )
    assert result.exit_code == 0
    configs = json.loads(result.stdout)
    assert configs == split_config(json.loads(path.read_text()), "custom", frequency_groups=groups).configs
    assert [c["frequencies_mhz"] for c in configs] == [[5800], [2450], [3500], [2100, 1800], [450, 700, 835]]
    assert "warning: Frequencies [900] from config are not assigned to any worker." in result.stderr


def test_num_splits(runner: CliRunner) -> None:
    path = str(CONFIGS / "near_field_config.json")
    result = runner.invoke(main, ["split", path, "--num-splits", "3", "--json"])
    assert result.exit_code == 0
    assert [list(c["antenna_config"]) for c in json.loads(result.stdout)] == [
        ["700", "900"],
        ["1800", "2450"],
        ["3500", "5800"],
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--by", "direction"], "Direction splitting is only supported for far-field studies."),
        (["--by", "custom"], "requires --frequency-groups"),
        (["--num-splits", "0"], "--num-splits must be at least 1"),
    ],
)
def test_refusal_exits_2(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(main, ["split", str(CONFIGS / "near_field_config.json"), *args, "--json"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot split ")
    assert message in result.stderr
    assert result.stdout == ""


def test_bad_input_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = runner.invoke(main, ["split", str(broken)])
    assert result.exit_code == 2
    assert "cannot read" in result.stderr
    listed = tmp_path / "list.json"
    listed.write_text("[]")
    assert runner.invoke(main, ["split", str(listed)]).exit_code == 2
    assert runner.invoke(main, ["split", str(tmp_path / "missing.json")]).exit_code == 2
    child = tmp_path / "child.json"
    child.write_text('{"extends": "broken", "study_type": "far_field", "phantoms": ["a"]}')
    bad_parent = runner.invoke(main, ["split", str(child), "--by", "phantom"])
    assert bad_parent.exit_code == 2
    assert "cannot read config broken.json" in bad_parent.stderr
    unknown = runner.invoke(main, ["split", str(CONFIGS / "far_field_config.json"), "--by", "mood"])
    assert unknown.exit_code == 2


def test_parents_are_read_next_to_config(runner: CliRunner, tmp_path: Path) -> None:
    # The parent is named without ".json" and itself extends a grandparent holding the phantoms'
    # scenario flags; both are found in CONFIG's directory.
    (tmp_path / "grand.json").write_text(
        json.dumps({"phantom_definitions": {"a": {"placements": {"do_s": True}}, "b": {}}})
    )
    (tmp_path / "parent.json").write_text(json.dumps({"extends": "grand.json", "study_type": "near_field"}))
    config = {
        "extends": "parent",
        "phantoms": ["a", "b"],
        "antenna_config": {"700": {}, "900": {}},
        "placement_scenarios": {"s": {"positions": {"p": []}, "orientations": {"x": [], "y": []}}},
    }
    (tmp_path / "study.json").write_text(json.dumps(config))
    result = runner.invoke(main, ["split", str(tmp_path / "study.json"), "--by", "phantom"])
    assert result.exit_code == 0, result.output
    rows = [line.rstrip("│ ") for line in result.stdout.splitlines() if "phantoms:" in line]
    assert [row[-1] for row in rows] == ["4", "0"]
    assert "imply no simulations" in result.stderr


def test_missing_parent_still_splits(runner: CliRunner, tmp_path: Path) -> None:
    shutil.copy(CONFIGS / "far_field_small.json", tmp_path)
    result = runner.invoke(main, ["split", str(tmp_path / "far_field_small.json"), "--by", "frequency"])
    assert result.exit_code == 0
    assert "simulation counts are unknown" in result.stderr
    assert [line.rstrip("│ ")[-1] for line in result.stdout.splitlines() if "frequencies:" in line] == [
        "?",
        "?",
    ]
    as_json = runner.invoke(
        main, ["split", str(tmp_path / "far_field_small.json"), "--by", "frequency", "--json"]
    )
    assert [c["frequencies_mhz"] for c in json.loads(as_json.stdout)] == [[700], [900]]
