"""The simulated `goliat study`: result files, GOLIAT's log formats, speed and failure modes."""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from goliat_monitor.demo.simulated_study import (
    SimulatedStudyError,
    load_config,
    png_bytes,
    run_simulated_study,
)
from goliat_monitor.domain.campaign import enumerate_simulations
from tests.conftest import TEST_CONFIGS

RESULT_FILES = {
    "config.json",
    "progress.log",
    "verbose.log",
    "sar_results.json",
    "sar_stats_all_tissues.pkl",
    "sar_stats_all_tissues.html",
    "point_sensor_data.png",
}
FILE_RECORD = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} - (INFO|ERROR) - ")


def write_config(folder: Path, **overrides: Any) -> Path:
    """A small far-field config (2 simulations) extending the test base config."""
    shutil.copy(TEST_CONFIGS / "base_config.json", folder / "base_config.json")
    config: dict[str, Any] = {
        "extends": "base_config",
        "study_type": "far_field",
        "phantoms": ["thelonious"],
        "frequencies_mhz": [700],
        "far_field_setup": {
            "type": "environmental",
            "environmental": {"incident_directions": ["x_pos"], "polarizations": ["theta", "phi"]},
        },
    }
    config.update(overrides)
    path = folder / "study.json"
    path.write_text(json.dumps(config))
    return path


def run(tmp_path: Path, config: Path | None = None, **kwargs: Any) -> tuple[int, str]:
    """The study in-process, instantly (no sleeping), without colours unless asked."""
    out = io.StringIO()
    kwargs.setdefault("colours", False)
    code = run_simulated_study(
        config or write_config(tmp_path), workdir=tmp_path, stdout=out, sleep=lambda _: None, **kwargs
    )
    return code, out.getvalue()


def result_folders(root: Path, config: Path) -> list[Path]:
    return [root / "results" / sim.relative_path for sim in enumerate_simulations(load_config(config))]


def test_result_files_are_written_and_valid(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    code, output = run(tmp_path, config)
    assert code == 0
    folders = result_folders(tmp_path, config)
    assert [f.relative_to(tmp_path / "results").as_posix() for f in folders] == [
        "far_field/thelonious/700MHz/environmental_x_pos_theta",
        "far_field/thelonious/700MHz/environmental_x_pos_phi",
    ]
    for folder in folders:
        assert {p.name for p in folder.iterdir()} == RESULT_FILES
        sar = json.loads((folder / "sar_results.json").read_text())
        assert sar["peak_sar_10g_W_kg"] > 0 and "power_balance" in sar
        stats = pickle.loads((folder / "sar_stats_all_tissues.pkl").read_bytes())
        assert {t["tissue"] for t in stats["tissues"]} >= {"Skin", "Muscle"}
        metadata = json.loads((folder / "config.json").read_text())
        assert metadata["run_done"] and metadata["extract_done"]
        assert_valid_png((folder / "point_sensor_data.png").read_bytes())
        progress_lines = (folder / "progress.log").read_text().splitlines()
        assert FILE_RECORD.match(progress_lines[0])
        assert any(line.endswith("    - Done in 0.00s [FarFieldStudy.subtask]") for line in progress_lines)
    assert "--- FarFieldStudy Finished ---" in output
    assert "\x1b" not in output


def assert_valid_png(data: bytes) -> None:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc
        kinds.append(kind)
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        if kind == b"IDAT":
            assert len(zlib.decompress(body)) == height * (1 + 3 * width)
        pos += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]


def test_png_helper() -> None:
    assert_valid_png(png_bytes(3, 2, seed=5))


def test_goliat_log_files(tmp_path: Path) -> None:
    code, _ = run(tmp_path)
    assert code == 0
    (progress_log,) = (tmp_path / "logs").glob("*.progress.log")
    (main_log,) = [p for p in (tmp_path / "logs").glob("*.log") if not p.name.endswith(".progress.log")]
    assert re.fullmatch(r"\d{2}-\d{2}_\d{2}-\d{2}-\d{2}\.progress\.log", progress_log.name)
    progress = progress_log.read_text()
    everything = main_log.read_text()
    assert "--- Progress logging started for file: " in progress.splitlines()[0]
    assert "--- Starting: setup ---" not in progress  # verbose level: main log only
    assert "--- Starting: setup --- [profile]" in everything
    assert "--- Processing Simulation 2/2: thelonious, 700MHz, x_pos, phi ---" in progress
    assert progress.rstrip().endswith("- INFO - --- Logging shutdown ---")
    lines = everything.splitlines()
    records = [line for line in lines if FILE_RECORD.match(line)]
    assert records[0] == lines[0]
    assert len(records) > len(lines) / 2  # the other lines continue multi-line records (boxes)
    for line in lines:
        assert FILE_RECORD.match(line) or not line.startswith("20"), line


def test_console_text_with_colours(tmp_path: Path) -> None:
    _, output = run(tmp_path, colours=True)
    lines = output.splitlines()
    assert (
        "\x1b[0m\x1b[35m\x1b[1m--- Starting Far-Field Study: study.json ---\x1b[0m "
        "\x1b[30m\x1b[2m[FarFieldStudy._run_study]\x1b[0m"
    ) in lines
    assert (
        "\x1b[0m\x1b[33m    - iSolve failed, retry attempt 1\x1b[0m \x1b[30m\x1b[2m[RetryHandler.record_attempt]\x1b[0m"
        in lines
    )
    assert (
        "\x1b[0m\x1b[32m\x1b[1m    - Done in 0.00s\x1b[0m \x1b[30m\x1b[2m[FarFieldStudy.subtask]\x1b[0m"
        in lines
    )
    assert "Simulation 1/2 (50.0%)" in lines


def test_colours_follow_goliats_environment_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUPYTER_NOTEBOOK", raising=False)
    monkeypatch.setenv("COLORAMA_STRIP", "0")
    _, coloured = run(tmp_path, colours=None)
    monkeypatch.delenv("COLORAMA_STRIP")
    _, plain = run(tmp_path, colours=None)
    assert "\x1b[" in coloured
    assert "\x1b[" not in plain
    assert "--- Starting Far-Field Study: study.json --- [FarFieldStudy._run_study]" in plain.splitlines()


@pytest.mark.parametrize("name", ["near_field_single_antenna.json", "near_field_dict_phantoms.json"])
def test_near_field_configs(tmp_path: Path, name: str) -> None:
    shutil.copytree(TEST_CONFIGS, tmp_path, dirs_exist_ok=True)
    config = tmp_path / name
    total = len(result_folders(tmp_path, config))
    assert total > 0
    code, output = run(tmp_path, config)
    assert code == 0
    assert f"--- Starting Near-Field Study: {name} ---" in output
    assert f"--- Processing Simulation {total}/{total}: " in output
    for folder in result_folders(tmp_path, config):
        assert (folder / "sar_results.json").is_file()


def test_near_field_config_from_goliat(tmp_path: Path, goliat_configs: Path) -> None:
    shutil.copytree(goliat_configs, tmp_path, dirs_exist_ok=True)
    config = tmp_path / "near_field_config_26ghz.json"
    code, output = run(tmp_path, config)
    assert code == 0
    assert "--- Starting Near-Field Study: near_field_config_26ghz.json ---" in output
    assert "--- Processing Simulation 12/12: " in output
    for folder in result_folders(tmp_path, config):
        assert (folder / "sar_results.json").is_file()


def test_speed_scales_the_time(tmp_path: Path) -> None:
    slept: list[float] = []
    code = run_simulated_study(
        write_config(tmp_path), workdir=tmp_path, stdout=io.StringIO(), speed=2.0, sleep=slept.append
    )
    assert code == 0
    assert 2 * 3.0 / 2 < sum(slept) < 2 * 5.0 / 2  # about 4 s per simulation at speed 1


def test_results_dir_option(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    code, _ = run(tmp_path, config, results_dir=elsewhere)
    assert code == 0
    assert all((f / "sar_results.json").is_file() for f in result_folders(elsewhere, config))
    assert not (tmp_path / "results").exists()
    assert list((tmp_path / "logs").glob("*.progress.log"))


@pytest.mark.parametrize("phase", ["setup", "run", "extract"])
def test_failure_in_a_phase(tmp_path: Path, phase: str) -> None:
    config = write_config(tmp_path)
    code, output = run(tmp_path, config, fail_at=phase, fail_simulation=2)
    assert code == 1
    assert "--- FATAL ERROR in study: " in output
    assert f"--- Finished: {phase} (took " in output.split("--- FATAL ERROR")[0].splitlines()[-1]
    assert output.rstrip().endswith("--- Logging shutdown ---")
    first, second = result_folders(tmp_path, config)
    assert (first / "sar_results.json").is_file()
    assert not (second / "sar_results.json").exists()
    assert ("Processing Simulation 2/2") in output


def test_out_of_memory_exit_code(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    code, output = run(tmp_path, config, fail_at="run", exit_code=42)
    assert code == 42
    assert "Max internal retries exceeded. Exiting with code 42 to trigger session restart." in output
    assert "FATAL ERROR" not in output  # GOLIAT's sys.exit(42) is no ordinary exception
    assert "--- FarFieldStudy Finished ---" in output
    assert not any((f / "sar_results.json").exists() for f in result_folders(tmp_path, config))


def test_exit_code_alone_fails_the_run_phase(tmp_path: Path) -> None:
    code, output = run(tmp_path, exit_code=42)
    assert code == 42
    assert "iSolve: Memory/allocation error detected after 2 attempts" in output


def test_disabled_phases_are_skipped(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, execution_control={"do_setup": True, "do_run": False, "do_extract": False}
    )
    code, output = run(tmp_path, config)
    assert code == 0
    assert "--- Starting: setup ---" in output
    assert "--- Starting: run ---" not in output
    assert not any((f / "sar_results.json").exists() for f in result_folders(tmp_path, config))


def test_bad_configs(tmp_path: Path) -> None:
    missing_parent = tmp_path / "orphan.json"
    missing_parent.write_text('{"extends": "nowhere.json", "study_type": "far_field"}')
    with pytest.raises(SimulatedStudyError, match=r"nowhere\.json"):
        run(tmp_path, missing_parent)
    wrong_type = tmp_path / "wrong.json"
    wrong_type.write_text('{"study_type": "mid_field"}')
    with pytest.raises(SimulatedStudyError, match="mid_field"):
        run(tmp_path, wrong_type)


# --- the command line, as a real process -------------------------------------------------------


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = shutil.which("goliat-monitor", path=str(Path(sys.executable).parent))
    assert script
    env = {k: v for k, v in os.environ.items() if k != "COLORAMA_STRIP"}
    return subprocess.run(
        [script, "simulate-study", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )


def test_cli_out_of_memory_exit_code_42(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    done = cli(tmp_path, str(config), "--speed", "200", "--fail-at", "run", "--exit-code", "42")
    assert done.returncode == 42, done.stderr
    assert "Max internal retries exceeded" in done.stdout
    assert (tmp_path / "logs").is_dir()


def test_cli_success_and_results_dir(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    done = cli(tmp_path, str(config), "--speed", "200", "--results-dir", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert (
        tmp_path / "out/results/far_field/thelonious/700MHz/environmental_x_pos_phi/sar_results.json"
    ).is_file()


def test_cli_rejects_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    done = cli(tmp_path, str(bad))
    assert done.returncode == 1
    assert "cannot read config" in done.stderr
