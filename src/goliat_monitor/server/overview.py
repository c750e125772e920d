"""The overview's rules, in one place: which workers a filter shows, in what order, and the totals.

The overview is rendered here and then kept live in the browser, so both would need these rules.
Instead, every worker view carries `overview` facets computed by `facets` (in the page data and in
each live `worker` event): the status filters it matches, the lowercased texts a search looks in,
one sort key per sort order and what it adds to each total. The route and `pages/overview.js` only
match, compare and sum those facets, so a live update and a reload can never disagree.
"""

from __future__ import annotations

from typing import Any

STATUS_FILTERS = ("all", "running", "stalled", "idle", "error", "offline")
SORTS = {"status": "Status", "name": "Name", "progress": "Progress", "seen": "Last seen"}
TOTALS = ("online", "running", "stalled", "idle", "offline", "warnings", "errors")
SEARCHED_FIELDS = ("displayName", "hostname", "machineId", "gpuName", "id")
# The status sort puts what needs attention first: errors, then stalled runs.
ATTENTION = {"red-ERROR": 0, "amber": 1, "green": 2, "yellow": 3, "red-OFFLINE": 4}

SortKey = list[float | str]


def facets(view: dict[str, Any], *, last_seen: float | None) -> dict[str, Any]:
    """What the overview needs to filter, sort and count one worker view (`light`, `stalled` set).

    `last_seen` is the view's `lastSeen` as a timestamp, parsed by the caller that already has the
    parser (the stream module, which imports this one).
    """
    gui = view.get("guiState") or {}
    name = str(view["displayName"]).lower()
    tie = [name, str(view["id"])]
    light = view["light"] if view["light"] != "red" else f"red-{view['status']}"
    return {
        "statuses": [status for status in STATUS_FILTERS if _matches_status(view, status)],
        "search": [str(view[k]).lower() for k in SEARCHED_FIELDS if view.get(k)],
        "sort": {
            "status": [ATTENTION.get(light, 9), *tie],
            "name": tie,
            "progress": [0.0 - float(gui.get("progress") or 0.0), *tie],
            "seen": [0.0 - (last_seen or 0.0), *tie],
        },
        "totals": _counts(view, gui),
    }


def _matches_status(view: dict[str, Any], status: str) -> bool:
    if status == "all":
        return True
    if status == "stalled":
        return bool(view["stalled"])
    if status == "running":
        return view["status"] == "RUNNING" and not view["stalled"]
    return str(view["status"]).lower() == status


def _counts(view: dict[str, Any], gui: dict[str, Any]) -> dict[str, int]:
    """A stale session (replaced by a newer one of the same machine) counts for nothing."""
    if view["isStale"]:
        return dict.fromkeys(TOTALS, 0)
    status = view["status"]
    return {
        "online": int(status != "OFFLINE"),
        "running": int(status == "RUNNING"),
        "stalled": int(bool(view["stalled"])),
        "idle": int(status == "IDLE"),
        "offline": int(status in ("OFFLINE", "ERROR")),
        "warnings": int(gui.get("warningCount") or 0),
        "errors": int(gui.get("errorCount") or 0),
    }


def shown_workers(
    views: list[dict[str, Any]], *, status: str, search: str, sort: str
) -> list[dict[str, Any]]:
    """The views a status filter and a search (already trimmed and lowercased) show, in sort order."""
    matching = [
        view
        for view in views
        if status in view["overview"]["statuses"]
        and (not search or any(search in text for text in view["overview"]["search"]))
    ]
    return sorted(matching, key=lambda view: view["overview"]["sort"][sort])


def totals(views: list[dict[str, Any]]) -> dict[str, int]:
    return {key: sum(view["overview"]["totals"][key] for view in views) for key in TOTALS}
