"""The figures of GOLIAT's result files, the campaign's results table and comparisons: pure.

GOLIAT's `ResultsExtractor._save_json_results` writes, per simulation folder, `sar_results.json`
(every key its extractors put in `results_data`, except temporaries, point sensors and SAPD)
and, when SAPD extraction is on, `sapd_results.json` (`peak_sapd_W_m2`, `peak_sapd_location_m`).
The SAR file's scalars come from `PowerExtractor` (`input_power_W`, `input_power_frequency_MHz`,
far field also `cross_section_m2`) and `SarExtractor`: `whole_body_sar` (far field, or near
field with a whole-body bounding box), else `head_SAR` or `trunk_SAR`; `peak_sar_10g_W_kg`; and
per tissue group of `material_name_mapping.json` (`eyes_group`, `skin_group`, `brain_group`,
`genitals_group`) `<group>_weighted_avg_sar` and `<group>_peak_sar`. Nested objects are
`power_balance` (Pin, DielLoss, RadPower, Balance in %) and `peak_sar_details` (Sim4Life's
psSAR report). NaN is possible (a balance with no input power): Python's json writes it.

A figure is every numeric top-level scalar, plus `power_balance`'s numbers as
`power_balance.<name>`; booleans, strings, lists and other objects are not figures. Files are
parsed once, when they are uploaded (`parse_result_file`), and never larger than
`MAX_RESULT_BYTES`; the table is built from the parsed figures alone.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from goliat_monitor.domain.simulations import folder_key

__all__ = [
    "IDENTITY_COLUMNS",
    "KNOWN_FIGURES",
    "MAX_RESULT_BYTES",
    "RESULT_FILES",
    "Column",
    "ParsedResult",
    "ResultsTable",
    "StoredFigures",
    "TableRow",
    "build_table",
    "compare_tables",
    "figure_column",
    "merge_figures",
    "order_figures",
    "parse_result_file",
    "relative_difference",
]

RESULT_FILES = ("sar_results.json", "sapd_results.json")
"""The files whose figures make the table; the sar file's win when both name a figure."""

MAX_RESULT_BYTES = 4 * 1024 * 1024
"""GOLIAT's result JSONs are a few kB; anything past this is not parsed (and listed unreadable)."""

_NESTED = ("power_balance",)


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    label: str
    unit: str | None = None
    kind: str = "figure"

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "unit": self.unit, "kind": self.kind}


IDENTITY_COLUMNS = (
    Column("key", "Simulation", kind="key"),
    Column("phantom", "Phantom", kind="key"),
    Column("frequencyMhz", "Frequency", "MHz", kind="key"),
    Column("direction", "Direction", kind="key"),
    Column("polarization", "Polarization", kind="key"),
    Column("scenario", "Scenario", kind="key"),
    Column("position", "Position", kind="key"),
    Column("orientation", "Orientation", kind="key"),
    Column("assignmentIndex", "Assignment", kind="key"),
)

_GROUPS = ("eyes", "skin", "brain", "genitals")
KNOWN_FIGURES: tuple[Column, ...] = (
    Column("whole_body_sar", "Whole-body SAR", "W/kg"),
    Column("head_SAR", "Head SAR", "W/kg"),
    Column("trunk_SAR", "Trunk SAR", "W/kg"),
    Column("peak_sar_10g_W_kg", "psSAR10g", "W/kg"),
    *(
        Column(f"{g}_group_weighted_avg_sar", f"{g.capitalize()} SAR (mass-weighted)", "W/kg")
        for g in _GROUPS
    ),
    *(Column(f"{g}_group_peak_sar", f"{g.capitalize()} psSAR10g", "W/kg") for g in _GROUPS),
    Column("peak_sapd_W_m2", "Peak SAPD", "W/m²"),
    Column("input_power_W", "Input power", "W"),
    Column("power_balance.Balance", "Power balance", "%"),
    Column("power_balance.Pin", "Pin", "W"),
    Column("power_balance.DielLoss", "Dielectric loss", "W"),
    Column("power_balance.RadPower", "Radiated power", "W"),
    Column("cross_section_m2", "Cross-section", "m²"),
    Column("input_power_frequency_MHz", "Input power frequency", "MHz"),
)
_KNOWN = {column.name: column for column in KNOWN_FIGURES}
_GROUP_FIGURE = re.compile(r"^(.+)_(weighted_avg_sar|peak_sar)$")
_UNIT_SUFFIXES = (
    ("_W_kg", "W/kg"),
    ("_W_m2", "W/m²"),
    ("_mhz", "MHz"),
    ("_MHz", "MHz"),
    ("_m2", "m²"),
    ("_W", "W"),
    ("_sar", "W/kg"),
    ("_SAR", "W/kg"),
)


def figure_column(name: str) -> Column:
    """The column of a figure: GOLIAT's known ones with their labels, others with a guessed unit."""
    known = _KNOWN.get(name)
    if known is not None:
        return known
    if m := _GROUP_FIGURE.match(name):
        group = m.group(1).removesuffix("_group").replace("_", " ")
        what = "SAR (mass-weighted)" if m.group(2) == "weighted_avg_sar" else "psSAR10g"
        return Column(name, f"{group.capitalize()} {what}", "W/kg")
    unit = next((u for suffix, u in _UNIT_SUFFIXES if name.endswith(suffix)), None)
    return Column(name, name, unit)


def order_figures(names: Iterable[str]) -> list[Column]:
    """GOLIAT's known figures first in their order, then other tissue groups, then the rest by name."""
    present = set(names)
    known = [c for c in KNOWN_FIGURES if c.name in present]
    rest = sorted(present - set(_KNOWN))
    groups = [n for n in rest if _GROUP_FIGURE.match(n)]
    others = [n for n in rest if not _GROUP_FIGURE.match(n)]
    return known + [figure_column(n) for n in groups + others]


@dataclass(frozen=True, slots=True)
class ParsedResult:
    """What one result file yielded: its figures, or why it is unreadable (`error` set)."""

    figures: dict[str, float | None]
    error: str | None = None


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def _finite(value: float) -> float | None:
    """A figure's value: None for NaN or infinity (JSON cannot hold them)."""
    number = float(value)
    return number if math.isfinite(number) else None


def parse_result_file(filename: str, data: bytes, *, limit: int = MAX_RESULT_BYTES) -> ParsedResult:
    """The figures of one `sar_results.json` / `sapd_results.json`; never raises.

    Anything that is not a JSON object holding at least one number is unreadable, with a
    reason a person can act on.
    """
    if len(data) > limit:
        return ParsedResult({}, f"{filename} is larger than {limit} bytes and was not read")
    try:
        parsed = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        return ParsedResult({}, f"{filename} is not UTF-8 text")
    except (ValueError, RecursionError) as exc:
        return ParsedResult({}, f"{filename} is not valid JSON: {exc}")
    if not isinstance(parsed, dict):
        return ParsedResult({}, f"{filename} holds a JSON {type(parsed).__name__}, not an object")
    figures: dict[str, float | None] = {}
    for key, value in parsed.items():
        if _is_number(value):
            figures[str(key)] = _finite(value)
        elif key in _NESTED and isinstance(value, dict):
            for inner, inner_value in value.items():
                if _is_number(inner_value):
                    figures[f"{key}.{inner}"] = _finite(inner_value)
    if not figures:
        return ParsedResult({}, f"{filename} holds no numeric figure")
    return ParsedResult(figures)


@dataclass(frozen=True, slots=True)
class TableRow:
    """One simulation's row: its identity fields and its figures."""

    fields: dict[str, Any]
    figures: dict[str, float | None]

    @property
    def key(self) -> str:
        return str(self.fields["key"])

    def as_json(self) -> dict[str, Any]:
        return {**self.fields, **self.figures}


@dataclass(frozen=True, slots=True)
class ResultsTable:
    columns: list[Column]
    rows: list[TableRow]
    unreadable: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    @property
    def figure_columns(self) -> list[Column]:
        return [c for c in self.columns if c.kind == "figure"]

    def as_json(self) -> dict[str, Any]:
        return {
            "columns": [c.as_json() for c in self.columns],
            "rows": [row.as_json() for row in self.rows],
            "unreadable": self.unreadable,
            "unmatched": self.unmatched,
        }


def relative_difference(this: float | None, other: float | None) -> float | None:
    """(other - this) / |this|; None when either is missing or `this` is 0."""
    if this is None or other is None or this == 0:
        return None
    return (other - this) / abs(this)


def compare_tables(
    this: Sequence[TableRow], other: Sequence[TableRow], keys: Sequence[str]
) -> list[dict[str, Any]]:
    """Per simulation key (in `keys`' order), each figure of either side with the relative difference.

    A key without results on one side still gets a row, with that side's values None.
    """
    mine = {row.key: row for row in this}
    theirs = {row.key: row for row in other}
    out = []
    for key in keys:
        a, b = mine.get(key), theirs.get(key)
        base = a or b
        if base is None:
            continue
        names = list(dict.fromkeys([*(a.figures if a else {}), *(b.figures if b else {})]))
        figures = {}
        for name in names:
            x = a.figures.get(name) if a else None
            y = b.figures.get(name) if b else None
            figures[name] = {"this": x, "other": y, "relDiff": relative_difference(x, y)}
        fields = {k: v for k, v in base.fields.items() if k != "assignmentIndex"}
        out.append({**fields, "figures": figures})
    return out


def merge_figures(parsed: Mapping[str, Mapping[str, float | None]]) -> dict[str, float | None]:
    """One simulation's figures from its files (filename -> figures): sar_results.json wins."""
    merged: dict[str, float | None] = {}
    for name in reversed(RESULT_FILES):
        merged.update(parsed.get(name, {}))
    return merged


@dataclass(frozen=True, slots=True)
class StoredFigures:
    """One parsed result file as the database keeps it."""

    relative_path: str
    filename: str
    figures: Mapping[str, float | None] | None
    error: str | None
    uploaded_at: float


def build_table(
    simulations: Sequence[tuple[str, Mapping[str, Any]]], stored: Iterable[StoredFigures]
) -> ResultsTable:
    """The campaign's table: one row per simulation with results, in the campaign's order.

    `simulations` are (results folder, identity fields) pairs. A file is matched to its
    simulation by folder (`simulations.folder_key`); when several uploads wrote the same
    file the newest wins. Unreadable files are listed, never in a row; folders that match no
    simulation of the campaign are listed as `unmatched`.
    """
    by_folder = {folder_key(path): index for index, (path, _) in enumerate(simulations)}
    latest: dict[tuple[int, str], StoredFigures] = {}
    unmatched: set[str] = set()
    for item in stored:
        if item.filename not in RESULT_FILES:
            continue
        index = by_folder.get(folder_key(item.relative_path))
        if index is None:
            unmatched.add(item.relative_path)
            continue
        slot = (index, item.filename)
        if slot not in latest or item.uploaded_at >= latest[slot].uploaded_at:
            latest[slot] = item
    unreadable = []
    per_simulation: dict[int, dict[str, Mapping[str, float | None]]] = {}
    for (index, filename), item in sorted(latest.items()):
        if item.error is not None or item.figures is None:
            unreadable.append(
                {
                    "key": simulations[index][1].get("key"),
                    "path": f"{item.relative_path}/{filename}",
                    "error": item.error or "not parsed",
                }
            )
            continue
        per_simulation.setdefault(index, {})[filename] = item.figures
    rows = [
        TableRow(dict(simulations[index][1]), merge_figures(files))
        for index, files in sorted(per_simulation.items())
    ]
    names = {name for row in rows for name in row.figures}
    columns = [*IDENTITY_COLUMNS, *order_figures(names)]
    return ResultsTable(columns, rows, unreadable, sorted(unmatched))
