"""`read_config`: a config file and the parents its `extends` chain names, read from its folder."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from goliat_monitor.config_files import read_config
from goliat_monitor.domain.campaign import ConfigError
from tests.conftest import TEST_CONFIGS


def test_reads_the_chain_keyed_as_written() -> None:
    config, parents = read_config(TEST_CONFIGS, "near_field_single_antenna.json")
    assert config["extends"] == "near_field_common"
    assert list(parents) == ["near_field_common", "base_config.json"]
    assert parents["base_config.json"] == json.loads((TEST_CONFIGS / "base_config.json").read_text())


def test_reads_only_the_files_the_chain_names(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "parent.json").write_text('{"a": 1}')
    (tmp_path / "broken.json").write_text("{not json")  # beside it, never named: never read
    (tmp_path / "child.json").write_text('{"extends": "sub/parent"}')
    assert read_config(tmp_path, "child.json") == ({"extends": "sub/parent"}, {"sub/parent": {"a": 1}})


def test_a_missing_parent_is_left_out_and_a_missing_config_refused(tmp_path: Path) -> None:
    (tmp_path / "child.json").write_text('{"extends": "gone.json"}')
    assert read_config(tmp_path, "child.json") == ({"extends": "gone.json"}, {})
    with pytest.raises(ConfigError, match=r"cannot read config nope\.json: no such file"):
        read_config(tmp_path, "nope.json")


def test_reads_package_data() -> None:
    folder = resources.files("goliat_monitor.demo") / "configs"
    config, parents = read_config(folder, "far_field_config.json")
    assert config["study_type"] == "far_field"
    assert list(parents) == ["base_config.json"]
