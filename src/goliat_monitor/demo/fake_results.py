"""The files a simulated simulation leaves behind, in the shapes GOLIAT writes them.

The monitor's results tree, uploads and artifact pages read these files, so the stand-in writes
real ones with plausible numbers: in `<results_dir>/results/<study_type>/<phantom>/<freq>MHz/<case>/`,
`config.json` (GOLIAT's setup metadata, marked done after extraction), `sar_results.json`,
`sar_stats_all_tissues.pkl`, `sar_stats_all_tissues.html` and `point_sensor_data.png`. They live
apart from the study driver in `simulated_study.py` because they are data, not console behaviour.
"""

from __future__ import annotations

import json
import pickle
import random
import struct
import zlib
from pathlib import Path
from typing import Any

from goliat_monitor.demo.goliat_logs import GoliatLogs
from goliat_monitor.domain.campaign import Simulation

__all__ = ["TISSUES", "fake_results", "png_bytes", "write_metadata", "write_results"]

TISSUES = (
    "Skin",
    "Muscle",
    "Fat",
    "Bone (Cortical)",
    "Brain (Grey Matter)",
    "Eye (Vitreous Humor)",
    "Heart Muscle",
)


def png_bytes(width: int = 16, height: int = 16, seed: int = 0) -> bytes:
    """A small valid RGB PNG (a colour gradient), built with zlib and struct only."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type: none
        for x in range(width):
            rows += bytes(
                ((x * 255) // max(1, width - 1), (y * 255) // max(1, height - 1), (seed * 37) % 256)
            )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows)))
        + chunk(b"IEND", b"")
    )


def fake_results(sim: Simulation, rng: random.Random) -> dict[str, Any]:
    """Plausible numbers in the shape of GOLIAT's `sar_results.json`."""
    power = rng.uniform(1e-4, 6e-4)
    tissues: list[dict[str, Any]] = [
        {"tissue": t, "mass_avg_sar": rng.uniform(1e-6, 5e-4), "peak_sar_10g": rng.uniform(1e-5, 2e-3)}
        for t in TISSUES
    ]
    whole_body = rng.uniform(2e-6, 4e-5)
    return {
        "study_type": sim.study_type,
        "phantom": sim.phantom,
        "frequency_mhz": sim.frequency_label,
        "placement": sim.case,
        "input_power_W": power,
        "whole_body_sar": whole_body,
        "peak_sar_10g_W_kg": max(float(t["peak_sar_10g"]) for t in tissues),
        "head_SAR": rng.uniform(1e-6, 5e-5),
        "trunk_SAR": rng.uniform(1e-6, 5e-5),
        "power_balance": {"Pin": power, "Balance": rng.uniform(88.0, 112.0)},
        "_tissues": tissues,
    }


def write_metadata(sim: Simulation, folder: Path, setup_timestamp: float) -> None:
    """GOLIAT's setup metadata, written when setup ends; extraction later marks it done."""
    snapshot = {
        "study_type": sim.study_type,
        "phantom": sim.phantom,
        "frequency_mhz": sim.frequency_label,
        "scenario": sim.scenario,
        "position": sim.position,
        "orientation": sim.orientation,
    }
    metadata = {
        "config_hash": f"{zlib.crc32(json.dumps(snapshot, sort_keys=True).encode()):08x}",
        "config_snapshot": snapshot,
        "setup_timestamp": setup_timestamp,
        "run_done": False,
        "extract_done": False,
    }
    (folder / "config.json").write_text(json.dumps(metadata, indent=4), encoding="utf-8")


def write_results(logs: GoliatLogs, folder: Path, results: dict[str, Any], plot_seed: int) -> None:
    """The extractors' result files, each logged as GOLIAT logs it, then metadata marked done."""
    folder.mkdir(parents=True, exist_ok=True)
    png = folder / "point_sensor_data.png"
    png.write_bytes(png_bytes(seed=plot_seed))
    logs.log(f"  - Point sensor plot saved to: {png}", log_type="info", caller="SensorExtractor._save_plot")
    tissues = results.pop("_tissues")
    pkl = folder / "sar_stats_all_tissues.pkl"
    with pkl.open("wb") as handle:
        pickle.dump({"tissues": tissues, "summary": dict(results)}, handle)
    logs.log(f"  - Pickle report saved to: {pkl}", log_type="info", caller="Reporter._save_pickle_report")
    html = folder / "sar_stats_all_tissues.html"
    rows = "".join(f"<tr><td>{t['tissue']}</td><td>{t['mass_avg_sar']:.4e}</td></tr>" for t in tissues)
    html.write_text(
        f"<html><body><table><tr><th>Tissue</th><th>SAR (W/kg)</th></tr>{rows}</table></body></html>"
    )
    logs.log(f"  - HTML report saved to: {html}", log_type="info", caller="Reporter._save_html_report")
    sar = folder / "sar_results.json"
    sar.write_text(json.dumps(results, indent=4), encoding="utf-8")
    logs.log(
        f"  - SAR results saved to: {sar}", log_type="info", caller="ResultsExtractor._save_json_results"
    )
    meta_path = folder / "config.json"
    if meta_path.is_file():
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
        metadata.update(run_done=True, extract_done=True)
        meta_path.write_text(json.dumps(metadata, indent=4), encoding="utf-8")
