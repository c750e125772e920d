"""The files a simulated simulation leaves behind, in the shapes GOLIAT writes them.

The monitor's results tree, uploads and artifact pages read these files, so the stand-in writes
real ones with plausible numbers: in `<results_dir>/results/<study_type>/<phantom>/<freq>MHz/<case>/`,
`config.json` (GOLIAT's setup metadata, marked done after extraction), `sar_results.json` (and
`sapd_results.json` for near field), `sar_stats_all_tissues.pkl`, `sar_stats_all_tissues.html`
and `point_sensor_data.png`. They live
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


# How much each phantom absorbs relative to an adult male, so the demo's lines stay apart.
_PHANTOM_FACTOR = {"thelonious": 1.9, "eartha": 1.5, "ella": 1.1, "duke": 1.0}
_GROUPS = ("eyes_group", "skin_group", "brain_group", "genitals_group")
_HEAD_PLACEMENTS = ("front_of_eyes", "by_cheek")


def _frequency(sim: Simulation) -> float:
    value = sim.frequency_mhz
    return float(sum(value) if isinstance(value, tuple) else value)


def fake_results(sim: Simulation, rng: random.Random) -> dict[str, Any]:
    """Plausible numbers in the exact shape of GOLIAT's `sar_results.json`.

    Keys and their order follow `ResultsExtractor._save_json_results` (see
    `domain/result_figures.py`): input power, the tissue groups, whole-body SAR (far field) or
    head/trunk SAR (near field), psSAR10g with Sim4Life's peak details, the power balance. Values
    follow a trend with frequency and phantom so the study page's plot shows lines, with a spread
    over directions and polarizations. Two private keys feed `write_results`: `_tissues` (the
    per-tissue report) and, for near field, `_sapd` (GOLIAT's `sapd_results.json`).
    """
    freq = _frequency(sim)
    factor = _PHANTOM_FACTOR.get(sim.phantom.lower(), 1.0 + (zlib.crc32(sim.phantom.encode()) % 50) / 100)
    near = sim.study_type != "far_field"
    # Far field at 1 V/m: ~1e-5 W/kg whole body; near field at the antenna's input power: ~0.1 W/kg.
    scale = (0.09 if near else 1.1e-05) * factor * (700.0 / freq) ** 0.35
    spread = rng.uniform(0.75, 1.25)
    power = rng.uniform(0.45, 0.55) if near else 0.00053 * factor**0.5 * rng.uniform(0.9, 1.1)
    tissues: list[dict[str, Any]] = [
        {
            "tissue": t,
            "mass_avg_sar": scale * rng.uniform(0.2, 2.5),
            "peak_sar_10g": scale * rng.uniform(3, 12),
        }
        for t in TISSUES
    ]
    results: dict[str, Any] = {"input_power_W": power, "input_power_frequency_MHz": freq}
    if not near:
        area = 0.55 * factor**0.5
        results.update(
            power_balance_input_method="bounding_box",
            cross_section_m2=area,
            cross_section_source="bounding_box",
        )
    for group in _GROUPS:
        average = 0.0 if near and group == "genitals_group" else scale * spread * rng.uniform(0.3, 1.8)
        results[f"{group}_weighted_avg_sar"] = average
        results[f"{group}_peak_sar"] = average * rng.uniform(1.3, 9.0)
    whole = scale * spread
    if near:
        key = "head_SAR" if sim.case.startswith(_HEAD_PLACEMENTS) else "trunk_SAR"
        results[key] = whole
    else:
        results["whole_body_sar"] = whole
    peak = max(float(t["peak_sar_10g"]) for t in tissues) * spread
    results["peak_sar_10g_W_kg"] = peak
    location = [
        round(rng.uniform(-0.2, 0.2), 4),
        round(rng.uniform(-0.1, 0.1), 4),
        round(rng.uniform(-0.9, 0.8), 4),
    ]
    results["peak_sar_details"] = {
        "PeakValue": peak,
        "PeakLocation": location,
        "PeakCell": [rng.randrange(40, 260), rng.randrange(40, 180), rng.randrange(60, 600)],
        "PeakCubeSideLength": rng.uniform(0.0205, 0.0216),
    }
    diel = power * rng.uniform(0.3, 0.5)
    rad = power * rng.uniform(0.45, 0.65)
    results["power_balance"] = {
        "Pin": power,
        "LumpedLoss": 0.0,
        "DielLoss": diel,
        "SIBCLoss": 0.0,
        "RadPower": rad,
        "Balance": 100.0 * (diel + rad) / power,
    }
    results["_tissues"] = tissues
    if near:
        results["_sapd"] = {
            "peak_sapd_W_m2": peak * rng.uniform(3.0, 6.0) * (freq / 3500.0) ** 0.5,
            "peak_sapd_location_m": location,
        }
    return results


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
    sapd = results.pop("_sapd", None)
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
    if sapd is not None:
        sapd_path = folder / "sapd_results.json"
        sapd_path.write_text(json.dumps(sapd, indent=4), encoding="utf-8")
        logs.log(
            f"  - SAPD results saved to: {sapd_path}",
            log_type="info",
            caller="ResultsExtractor._save_json_results",
        )
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
