"""GOLIAT's result files as figures, the results table and comparisons, on literal GOLIAT shapes."""

from __future__ import annotations

from pathlib import Path

from goliat_monitor.domain.result_figures import (
    KNOWN_FIGURES,
    MAX_RESULT_BYTES,
    StoredFigures,
    TableRow,
    build_table,
    compare_tables,
    figure_column,
    order_figures,
    parse_result_file,
    relative_difference,
)

RESULTS = Path(__file__).resolve().parents[1] / "data" / "goliat-results"


def _read(name: str) -> bytes:
    return (RESULTS / name).read_bytes()


def test_far_field_sar_results_give_every_numeric_top_level_scalar() -> None:
    parsed = parse_result_file("sar_results.json", _read("far_field_sar_results.json"))
    assert parsed.error is None
    figures = parsed.figures
    assert figures["whole_body_sar"] == 9.8812345e-06
    assert figures["peak_sar_10g_W_kg"] == 0.000142088119
    assert figures["skin_group_weighted_avg_sar"] == 1.66390215e-05
    assert figures["genitals_group_peak_sar"] == 6.90318842e-06
    assert figures["cross_section_m2"] == 0.6126
    assert figures["power_balance.Balance"] == 100.5389
    # strings, lists and Sim4Life's psSAR details are not figures
    assert "power_balance_input_method" not in figures and "cross_section_source" not in figures
    assert not any(name.startswith("peak_sar_details") for name in figures)


def test_near_field_sar_and_sapd_results() -> None:
    sar = parse_result_file("sar_results.json", _read("near_field_sar_results.json"))
    assert sar.figures["head_SAR"] == 0.0911403 and "whole_body_sar" not in sar.figures
    assert sar.figures["power_balance.Balance"] is None  # NaN: JSON cannot hold it
    sapd = parse_result_file("sapd_results.json", _read("near_field_sapd_results.json"))
    assert sapd.figures == {"peak_sapd_W_m2": 3.41207}


def test_unreadable_files_say_why() -> None:
    cases = {
        b"{not json": "not valid JSON",
        b"[1, 2]": "holds a JSON list",
        b'{"note": "SAR extraction was disabled", "flag": true}': "no numeric figure",
        b"\xff\xfe\x00": "not UTF-8",
    }
    for data, reason in cases.items():
        parsed = parse_result_file("sar_results.json", data)
        assert parsed.error is not None and reason in parsed.error, (data, parsed)
    big = parse_result_file("sar_results.json", b" " * (MAX_RESULT_BYTES + 1))
    assert big.error is not None and "larger than" in big.error


def test_known_figures_come_first_with_units() -> None:
    columns = order_figures(
        ["zeta", "input_power_W", "lungs_group_peak_sar", "whole_body_sar", "peak_sar_10g_W_kg"]
    )
    assert [c.name for c in columns] == [
        "whole_body_sar",
        "peak_sar_10g_W_kg",
        "input_power_W",
        "lungs_group_peak_sar",
        "zeta",
    ]
    assert columns[0].unit == "W/kg" and columns[2].unit == "W" and columns[3].unit == "W/kg"
    assert figure_column("detuning_mhz").unit == "MHz" and figure_column("zeta").unit is None
    assert len({c.name for c in KNOWN_FIGURES}) == len(KNOWN_FIGURES)


def test_table_matches_folders_newest_upload_wins_and_lists_the_unreadable() -> None:
    sims = [
        ("far_field/thelonious/700MHz/environmental_x_pos_theta", {"key": "k1", "phantom": "Thelonious"}),
        ("far_field/thelonious/700MHz/environmental_x_pos_phi", {"key": "k2", "phantom": "Thelonious"}),
        ("far_field/thelonious/900MHz/environmental_x_pos_phi", {"key": "k3", "phantom": "Thelonious"}),
    ]
    stored = [
        StoredFigures(sims[0][0], "sar_results.json", {"whole_body_sar": 1.0}, None, 1.0),
        StoredFigures(sims[0][0], "sar_results.json", {"whole_body_sar": 2.0}, None, 2.0),
        StoredFigures(sims[0][0], "sapd_results.json", {"peak_sapd_W_m2": 5.0}, None, 1.0),
        StoredFigures(sims[1][0].upper(), "sar_results.json", {"whole_body_sar": 3.0, "x": 1.0}, None, 1.0),
        StoredFigures(sims[2][0], "sar_results.json", None, "not valid JSON", 1.0),
        StoredFigures("far_field/other/1MHz/x", "sar_results.json", {"whole_body_sar": 9.0}, None, 1.0),
        StoredFigures(sims[2][0], "verbose.log", None, None, 1.0),
    ]
    table = build_table(sims, stored)
    assert [row.as_json() for row in table.rows] == [
        {"key": "k1", "phantom": "Thelonious", "whole_body_sar": 2.0, "peak_sapd_W_m2": 5.0},
        {"key": "k2", "phantom": "Thelonious", "whole_body_sar": 3.0, "x": 1.0},
    ]
    assert table.unreadable == [
        {"key": "k3", "path": f"{sims[2][0]}/sar_results.json", "error": "not valid JSON"}
    ]
    assert table.unmatched == ["far_field/other/1MHz/x"]
    assert [c.name for c in table.figure_columns] == ["whole_body_sar", "peak_sapd_W_m2", "x"]


def test_compare_gives_both_sides_and_the_relative_difference() -> None:
    this = [TableRow({"key": "k1"}, {"a": 2.0, "b": 0.0}), TableRow({"key": "k2"}, {"a": 1.0})]
    other = [TableRow({"key": "k1"}, {"a": 3.0, "b": 1.0, "c": 4.0})]
    rows = compare_tables(this, other, ["k1", "k2", "k3"])
    assert rows[0]["figures"] == {
        "a": {"this": 2.0, "other": 3.0, "relDiff": 0.5},
        "b": {"this": 0.0, "other": 1.0, "relDiff": None},
        "c": {"this": None, "other": 4.0, "relDiff": None},
    }
    assert rows[1]["figures"] == {"a": {"this": 1.0, "other": None, "relDiff": None}}
    assert len(rows) == 2
    assert relative_difference(-2.0, -1.0) == 0.5
