"""A campaign's simulations, results table and comparisons as the API answers them.

The rows come from `db.queries.simulations.study_simulation_data`; the rules (which simulation
GOLIAT runs N-th, its status, which figures a file holds) are `domain.simulations` and
`domain.result_figures`. This module only joins them and decides the JSON and CSV shapes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from goliat_monitor.db.queries.simulations import StudySimulationData
from goliat_monitor.domain.gui_state import order_key
from goliat_monitor.domain.result_figures import (
    IDENTITY_COLUMNS,
    ResultsTable,
    build_table,
    compare_tables,
    order_figures,
)
from goliat_monitor.domain.simulations import (
    AssignmentState,
    CampaignSimulation,
    SimulationState,
    campaign_simulations,
    folder_key,
    simulation_state,
)
from goliat_monitor.errors import Conflict, NotFound
from goliat_monitor.server.views import iso

COMPARE_EXAMPLES = 5
"""Simulation keys named in the answer when two campaigns differ in shape."""
LOG_LINK_AFTER_S = 2.0
"""The worker's log page a simulation links to ends this long after its "Simulation N/M"."""


@dataclass(frozen=True)
class Campaign:
    """A study's simulations joined with their assignments and states."""

    data: StudySimulationData
    simulations: list[CampaignSimulation]

    def assignment(self, index: int) -> AssignmentState | None:
        return self.data.assignments[index] if 0 <= index < len(self.data.assignments) else None

    def state(self, sim: CampaignSimulation) -> SimulationState:
        mark = self.data.marks.get((sim.assignment_index, sim.number))
        return simulation_state(
            self.assignment(sim.assignment_index),
            mark,
            self.data.result_paths.get(folder_key(sim.result_path)),
        )

    def find(self, key: str) -> CampaignSimulation:
        for sim in self.simulations:
            if sim.key == key:
                return sim
        raise NotFound(f"No simulation {key!r} in this super study")

    @property
    def keys(self) -> list[str]:
        return [sim.key for sim in self.simulations]


def campaign(data: StudySimulationData) -> Campaign:
    parents = data.study["parent_configs"] or {}
    return Campaign(data, campaign_simulations(data.configs, parents))


def simulation(c: Campaign, sim: CampaignSimulation) -> dict[str, Any]:
    """One simulation of the map: identity, assignment, status and times."""
    state = c.state(sim)
    assignment = c.assignment(sim.assignment_index)
    mark = c.data.marks.get((sim.assignment_index, sim.number))
    return {
        **sim.fields(),
        "assignmentId": assignment.id if assignment else None,
        "assignmentIndex": sim.assignment_index,
        "number": sim.number,
        "status": str(state.status),
        "startedAt": iso(state.started_at),
        "finishedAt": iso(state.finished_at),
        "durationS": state.duration_s,
        "resultPath": sim.result_path,
        "workerId": mark.worker_id if mark else None,
    }


def simulations(c: Campaign) -> list[dict[str, Any]]:
    return [simulation(c, sim) for sim in c.simulations]


def table(c: Campaign) -> ResultsTable:
    pairs = [
        (sim.result_path, {**sim.fields(), "assignmentIndex": sim.assignment_index}) for sim in c.simulations
    ]
    for _, fields in pairs:
        fields.pop("studyType", None)
    return build_table(pairs, c.data.figures)


def table_csv(result: ResultsTable) -> str:
    """The table as CSV: one header row of column names, numbers as Python writes them."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = [column.name for column in result.columns]
    writer.writerow(names)
    for row in result.rows:
        values = row.as_json()
        writer.writerow(["" if values.get(name) is None else values[name] for name in names])
    return out.getvalue()


def detail(
    c: Campaign,
    sim: CampaignSimulation,
    files: Sequence[Mapping[Any, Any]],
    timings: Sequence[Mapping[Any, Any]],
) -> dict[str, Any]:
    """A simulation as its panel on the study page shows it: files, timings, where its log is."""
    out = simulation(c, sim)
    mark = c.data.marks.get((sim.assignment_index, sim.number))
    out["files"] = [
        {"path": f"{sim.result_path}/{f['filename']}", "size": f["size"], "uploadedAt": iso(f["created_at"])}
        for f in files
    ]
    out["timings"] = [
        {"phase": t["phase"], "subtask": t["subtask"], "seconds": t["seconds"], "at": iso(t["ts"])}
        for t in timings
    ]
    log = None
    if mark is not None and mark.worker_id:
        cursor = f"{order_key(mark.started_at + LOG_LINK_AFTER_S, 0)}.0"
        log = {"workerId": mark.worker_id, "before": cursor}
    out["log"] = log
    return out


def compare(this: Campaign, other: Campaign, *, intersect: bool) -> dict[str, Any]:
    """The figures of two campaigns side by side per simulation key, with relative differences.

    Same shape means the same set of simulation keys (folders without `run_tag`). When the sets
    differ the answer is 409 naming the difference, unless `intersect` asks to compare the
    shared keys; the keys only one side has are then listed.
    """
    mine, theirs = set(this.keys), set(other.keys)
    only_this = [k for k in this.keys if k not in theirs]
    only_other = [k for k in other.keys if k not in mine]
    shared = [k for k in this.keys if k in theirs]
    if not shared:
        raise Conflict("The two super studies share no simulation: they are not the same campaign shape")
    if (only_this or only_other) and not intersect:
        raise Conflict(
            f"The two super studies differ in shape: {len(only_this)} simulation(s) only in this one"
            f"{_examples(only_this)}, {len(only_other)} only in the other{_examples(only_other)}. "
            f"Add intersect=true to compare the {len(shared)} they share."
        )
    mine_table, their_table = table(this), table(other)
    rows = compare_tables(mine_table.rows, their_table.rows, shared)
    names = {name for row in rows for name in row["figures"]}
    return {
        "study": _study(this),
        "other": _study(other),
        "columns": [c.as_json() for c in IDENTITY_COLUMNS if c.name != "assignmentIndex"]
        + [c.as_json() for c in order_figures(names)],
        "rows": rows,
        "sharedSimulations": len(shared),
        "onlyInStudy": only_this,
        "onlyInOther": only_other,
    }


def _study(c: Campaign) -> dict[str, Any]:
    return {"id": c.data.study["id"], "name": c.data.study["name"]}


def _examples(keys: Sequence[str]) -> str:
    if not keys:
        return ""
    shown = ", ".join(keys[:COMPARE_EXAMPLES])
    return f" (e.g. {shown})"
