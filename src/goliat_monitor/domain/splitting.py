"""Cut a GOLIAT campaign config into per-worker assignment configs, exactly as GOLIAT does.

GOLIAT's `goliat super_study --split-by ...` splits on the client (`cli/run_super_study.py`);
the server must produce the very same assignments for configs uploaded in the browser, so this
module re-implements every strategy with the same order, contents and refusals. Like GOLIAT it
works on the config *as written*: keys that live only in an `extends` parent are not seen. The
merged view (when parents are given) is used only to count each assignment's simulations, to
explain refusals and to warn when the split would not cover the campaign exactly once.

Deliberate differences from GOLIAT, all on inputs GOLIAT mishandles: a lone string `phantoms`
or a scalar `frequencies_mhz` is one item (GOLIAT would slice the string or crash), bad
`--frequency-groups` text is a `SplitError` (GOLIAT crashes), and the warnings are richer.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from goliat_monitor.domain.campaign import (
    FAR_FIELD,
    NEAR_FIELD,
    ConfigError,
    Simulation,
    enumerate_simulations,
    merge_extends,
)

__all__ = [
    "DEFAULT_NUM_SPLITS",
    "STRATEGIES",
    "SplitAssignment",
    "SplitError",
    "SplitResult",
    "auto_split_factors",
    "parse_frequency_groups",
    "split_config",
    "split_evenly",
]

# GOLIAT's `--split-by` choices, in GOLIAT's order.
STRATEGIES: tuple[str, ...] = (
    "auto",
    "phantom",
    "direction",
    "polarization",
    "frequency",
    "freq_x_pol",
    "custom",
    "scenario",
)
DEFAULT_NUM_SPLITS = 4
_DEFAULT_FAR_FIELD_TYPE = "environmental"
_EXAMPLES = 3  # simulations named in a coverage warning


class SplitError(ValueError):
    """GOLIAT would refuse this split (it prints the message and exits)."""


@dataclass(frozen=True, slots=True)
class SplitAssignment:
    """One worker's share: the config it runs and how many simulations that config implies.

    `size` is None when the simulations cannot be counted (a parent config was not given, or the
    merged config is not a runnable study).
    """

    index: int
    config: dict[str, Any]
    size: int | None
    summary: str


@dataclass(frozen=True, slots=True)
class SplitResult:
    """The assignments in GOLIAT's order, plus what the user should know about them."""

    strategy: str
    assignments: list[SplitAssignment]
    warnings: list[str] = field(default_factory=list)
    plan: str = ""
    total_size: int | None = None

    @property
    def configs(self) -> list[dict[str, Any]]:
        """The split configs in order, the `splitConfig` payloads GOLIAT would upload."""
        return [assignment.config for assignment in self.assignments]


@dataclass(slots=True)
class _Part:
    """An assignment being built: its config and its summary items."""

    config: dict[str, Any]
    summary: list[tuple[str, Sequence[Any]]]


def split_config(
    config: Mapping[str, Any],
    strategy: str,
    num_splits: int | None = None,
    frequency_groups: str | None = None,
    parents: Mapping[str, Mapping[str, Any]] | None = None,
) -> SplitResult:
    """Split `config` (as written) by `strategy`; see GOLIAT's `--split-by` for the meaning of each.

    `num_splits` is for `auto` only (default 4) and `frequency_groups` for `custom` only
    (`"5800;5200;3500;2140,2450;450,700,835,1450"`). `parents` maps file names to configs for
    `extends`; they are only used for sizes, hints and coverage warnings. Raises `SplitError`
    wherever GOLIAT refuses.
    """
    if strategy not in STRATEGIES:
        raise SplitError(f"unknown split strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    if not isinstance(config, Mapping):
        raise SplitError(f"a config must be a JSON object, got {type(config).__name__}")
    written: dict[str, Any] = copy.deepcopy(dict(config))
    merged = _try_merge(written, parents)
    warnings: list[str] = []
    if strategy != "auto" and num_splits is not None:
        warnings.append(
            f"--num-splits is ignored when splitting by {strategy}: the config decides the number "
            "of assignments."
        )
    if strategy != "custom" and frequency_groups:
        warnings.append(f"--frequency-groups is ignored when splitting by {strategy}.")

    if strategy == "auto":
        wanted = DEFAULT_NUM_SPLITS if num_splits is None else num_splits
        parts, plan = _split_auto(written, wanted, merged)
        if len(parts) < wanted:
            warnings.append(
                f"cannot split into exactly {wanted} assignments, made {len(parts)}: {plan}. No "
                "phantom × item grouping fits, so like GOLIAT all phantoms stay together and each "
                "item gets its own assignment."
            )
    elif strategy == "phantom":
        parts, plan = _split_phantom(written, merged)
    elif strategy == "frequency":
        parts, plan = _split_frequency(written, merged)
    elif strategy in ("direction", "polarization"):
        parts, plan = _split_far_field_list(written, strategy, merged)
    elif strategy == "freq_x_pol":
        parts, plan = _split_freq_x_pol(written, merged)
    elif strategy == "scenario":
        parts, plan = _split_scenario(written, merged)
    else:
        parts, plan = _split_custom(written, frequency_groups, merged, warnings)

    warnings += _lookalike_warnings(written, strategy)
    return _finish(strategy, parts, plan, written, parents, warnings)


# --- list cutting, shared with GOLIAT's auto strategy ----------------------------------------


def split_evenly(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """Cut `items` into `parts` contiguous runs, the first ones one longer, as GOLIAT does.

    Asking for at least as many parts as there are items gives one part per item (so possibly
    fewer parts than asked); no items or no parts gives no runs.
    """
    items = list(items)
    if parts <= 0 or not items:
        return []
    if parts >= len(items):
        return [[item] for item in items]
    base, extra = divmod(len(items), parts)
    runs: list[list[Any]] = []
    start = 0
    for i in range(parts):
        end = start + base + (1 if i < extra else 0)
        runs.append(items[start:end])
        start = end
    return runs


def auto_split_factors(num_phantoms: int, num_items: int, num_splits: int) -> tuple[int, int]:
    """GOLIAT's choice of (phantom groups, item groups) for `auto`: p·q = N with the largest p that fits.

    A pair fits when p <= phantoms and q <= items. Only a p above 1 replaces the fallback
    (1, N), which is kept even when N exceeds the item count.
    """
    best = (1, num_splits)
    for p in range(1, num_splits + 1):
        if num_splits % p:
            continue
        q = num_splits // p
        if p <= num_phantoms and q <= num_items and p > best[0]:
            best = (p, q)
    return best


def parse_frequency_groups(text: str) -> list[list[int]]:
    """Parse `"5800;5200;2140,2450"` into `[[5800], [5200], [2140, 2450]]` (empty groups skipped)."""
    groups: list[list[int]] = []
    for chunk in text.split(";"):
        chunk = chunk.strip()
        if not chunk:
            continue
        group: list[int] = []
        for token in chunk.split(","):
            try:
                group.append(int(token.strip()))
            except ValueError:
                raise SplitError(
                    f"invalid frequency {token.strip()!r} in frequency groups {text!r}: expected whole "
                    "MHz values, ',' between frequencies and ';' between groups"
                ) from None
        groups.append(group)
    return groups


# --- strategies ------------------------------------------------------------------------------


def _split_auto(
    config: dict[str, Any], num_splits: int, merged: dict[str, Any] | None
) -> tuple[list[_Part], str]:
    if isinstance(num_splits, bool) or not isinstance(num_splits, int) or num_splits < 1:
        raise SplitError(f"--num-splits must be at least 1 (got {num_splits!r}).")
    phantoms = _phantom_list(config)
    near = config.get("study_type") == NEAR_FIELD
    items_name = "antennas" if near else "frequencies"
    items = list(_dict(config.get("antenna_config"))) if near else _frequencies(config)
    if not phantoms:
        raise SplitError("No phantoms found in config." + _parent_hint(config, merged, "phantoms"))
    if not items:
        key = "antenna_config" if near else "frequencies_mhz"
        raise SplitError(f"No {items_name} found in config." + _parent_hint(config, merged, key))

    p, q = auto_split_factors(len(phantoms), len(items), num_splits)
    phantom_groups = split_evenly(phantoms, p)
    item_groups = split_evenly(items, q)
    made = len(phantom_groups) * len(item_groups)
    plan = (
        f"{len(phantom_groups)} phantom group(s) × {len(item_groups)} {items_name} group(s) = "
        f"{made} assignment(s) ({len(phantoms)} phantom(s), {len(items)} {items_name})"
    )
    parts = []
    for phantom_group in phantom_groups:
        for item_group in item_groups:
            new = copy.deepcopy(config)
            new["phantoms"] = _select_phantoms(config, phantom_group)
            if near:
                antennas = config["antenna_config"]
                new["antenna_config"] = {key: copy.deepcopy(antennas[key]) for key in item_group}
            else:
                new["frequencies_mhz"] = list(item_group)
            parts.append(_Part(new, [("phantoms", phantom_group), (items_name, item_group)]))
    return parts, plan


def _split_phantom(config: dict[str, Any], merged: dict[str, Any] | None) -> tuple[list[_Part], str]:
    phantoms = _phantom_list(config)
    parts = []
    for phantom in phantoms:
        new = copy.deepcopy(config)
        new["phantoms"] = _select_phantoms(config, [phantom])
        parts.append(_Part(new, [("phantoms", [phantom])]))
    plan = f"one assignment per phantom ({len(phantoms)})"
    if not phantoms:
        plan += "; the config as written has no phantoms." + _parent_hint(config, merged, "phantoms")
    return parts, plan


def _split_frequency(config: dict[str, Any], merged: dict[str, Any] | None) -> tuple[list[_Part], str]:
    frequencies = _frequencies(config)
    if not frequencies:
        raise SplitError(
            "No frequencies found in config for frequency splitting."
            + _near_field_hint(config)
            + _parent_hint(config, merged, "frequencies_mhz")
        )
    parts = []
    for frequency in frequencies:
        new = copy.deepcopy(config)
        new["frequencies_mhz"] = [frequency]
        parts.append(_Part(new, [("frequencies", [frequency])]))
    return parts, f"one assignment per frequency ({len(frequencies)})"


def _split_far_field_list(
    config: dict[str, Any], strategy: str, merged: dict[str, Any] | None
) -> tuple[list[_Part], str]:
    """`direction` / `polarization`: one assignment per entry of `far_field_setup[type]`'s list."""
    key = "incident_directions" if strategy == "direction" else "polarizations"
    if config.get("study_type") != FAR_FIELD:
        raise SplitError(f"{strategy.capitalize()} splitting is only supported for far-field studies.")
    setup_type, values = _far_field_values(config, key)
    if not values:
        raise SplitError(
            f"No {key} found in config for {strategy} splitting."
            + _parent_hint(config, merged, "far_field_setup")
        )
    parts = []
    for value in values:
        new = copy.deepcopy(config)
        new["far_field_setup"][setup_type][key] = [value]
        parts.append(_Part(new, [(f"{strategy}s", [value])]))
    return parts, f"one assignment per {strategy} ({len(values)})"


def _split_freq_x_pol(config: dict[str, Any], merged: dict[str, Any] | None) -> tuple[list[_Part], str]:
    if config.get("study_type") != FAR_FIELD:
        raise SplitError("freq_x_pol splitting is only supported for far-field studies.")
    frequencies = _frequencies(config)
    if not frequencies:
        raise SplitError(
            "No frequencies found in config for freq_x_pol splitting."
            + _parent_hint(config, merged, "frequencies_mhz")
        )
    setup_type, polarizations = _far_field_values(config, "polarizations")
    if not polarizations:
        raise SplitError(
            "No polarizations found in config for freq_x_pol splitting."
            + _parent_hint(config, merged, "far_field_setup")
        )
    gridding = _gridding_per_frequency(config)
    parts = []
    for frequency in frequencies:
        for polarization in polarizations:
            new = copy.deepcopy(config)
            new["frequencies_mhz"] = [frequency]
            new["far_field_setup"][setup_type]["polarizations"] = [polarization]
            # GOLIAT narrows the gridding only when the frequency has an entry; else it keeps all.
            if gridding and str(frequency) in gridding:
                step = copy.deepcopy(gridding[str(frequency)])
                new["gridding_parameters"]["global_gridding_per_frequency"] = {str(frequency): step}
            parts.append(_Part(new, [("frequencies", [frequency]), ("polarizations", [polarization])]))
    plan = f"{len(frequencies)} frequencies × {len(polarizations)} polarizations = {len(parts)} assignment(s)"
    return parts, plan


def _split_scenario(config: dict[str, Any], merged: dict[str, Any] | None) -> tuple[list[_Part], str]:
    if config.get("study_type") != NEAR_FIELD:
        raise SplitError("Scenario splitting is only supported for near-field studies.")
    scenarios = _dict(config.get("placement_scenarios"))
    if not scenarios:
        raise SplitError(
            "No placement_scenarios found in config for scenario splitting."
            + _parent_hint(config, merged, "placement_scenarios")
        )
    parts = []
    for name, details in scenarios.items():
        orientations = _dict(details.get("orientations")) if isinstance(details, Mapping) else {}
        if not orientations:
            new = copy.deepcopy(config)
            new["placement_scenarios"] = {name: copy.deepcopy(details)}
            parts.append(_Part(new, [("scenario", [name]), ("orientations", ["(none)"])]))
            continue
        for orientation, value in orientations.items():
            new = copy.deepcopy(config)
            reduced = copy.deepcopy(dict(details))
            reduced["orientations"] = {orientation: copy.deepcopy(value)}
            new["placement_scenarios"] = {name: reduced}
            parts.append(_Part(new, [("scenario", [name]), ("orientations", [orientation])]))
    return parts, f"one assignment per placement scenario × orientation ({len(parts)})"


def _split_custom(
    config: dict[str, Any], text: str | None, merged: dict[str, Any] | None, warnings: list[str]
) -> tuple[list[_Part], str]:
    if not text:
        raise SplitError("--split-by custom requires --frequency-groups, e.g. '5800;5200;2140,2450'.")
    groups = parse_frequency_groups(text)
    if not groups:
        raise SplitError(f"No frequency groups parsed from {text!r}.")
    available = _frequencies(config)
    for group in groups:
        for frequency in group:
            if frequency not in available:
                raise SplitError(
                    f"Frequency {frequency} not found in config. Available: {_sorted(available)}"
                    + _near_field_hint(config)
                    + _parent_hint(config, merged, "frequencies_mhz")
                )
    chosen = [frequency for group in groups for frequency in group]
    missing = [f for f in available if f not in chosen]
    if missing:
        warnings.append(f"Frequencies {_sorted(set(missing))} from config are not assigned to any worker.")
    repeated = sorted(f for f, n in Counter(chosen).items() if n > 1)
    if repeated:
        warnings.append(
            f"Frequencies {repeated} appear in more than one group: their simulations would run twice."
        )
    gridding = _gridding_per_frequency(config)
    parts = []
    for group in groups:
        new = copy.deepcopy(config)
        new["frequencies_mhz"] = list(group)
        if gridding:
            narrowed = {str(f): copy.deepcopy(gridding[str(f)]) for f in group if str(f) in gridding}
            if narrowed:
                new["gridding_parameters"]["global_gridding_per_frequency"] = narrowed
        parts.append(_Part(new, [("frequencies", group)]))
    return parts, f"one assignment per frequency group ({len(groups)})"


# --- reading the config as written -----------------------------------------------------------


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _phantom_list(config: Mapping[str, Any]) -> list[Any]:
    """Phantom names as GOLIAT's splitter sees them: a list, or a dict's keys."""
    phantoms = config.get("phantoms")
    if not phantoms:
        return []
    if isinstance(phantoms, Mapping):
        return list(phantoms)
    if isinstance(phantoms, list | tuple):
        return list(phantoms)
    return [phantoms]


def _select_phantoms(config: Mapping[str, Any], names: Sequence[Any]) -> Any:
    """The `phantoms` value for a subset, keeping GOLIAT's dict form (with each entry) when used."""
    original = config.get("phantoms")
    if isinstance(original, Mapping):
        return {name: copy.deepcopy(original[name]) for name in names}
    return list(names)


def _frequencies(config: Mapping[str, Any]) -> list[Any]:
    value = config.get("frequencies_mhz")
    if not value:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _far_field_values(config: Mapping[str, Any], key: str) -> tuple[str, list[Any]]:
    """`(type, far_field_setup[type][key])`, with GOLIAT's default type `environmental`."""
    setup = _dict(config.get("far_field_setup"))
    setup_type = setup.get("type", _DEFAULT_FAR_FIELD_TYPE)
    params = _dict(setup.get(setup_type)) if isinstance(setup_type, str) else {}
    value = params.get(key)
    if not value:
        return setup_type, []
    return setup_type, list(value) if isinstance(value, list | tuple) else [value]


def _gridding_per_frequency(config: Mapping[str, Any]) -> Mapping[str, Any]:
    return _dict(_dict(config.get("gridding_parameters")).get("global_gridding_per_frequency"))


def _sorted(values: Any) -> list[Any]:
    """Sort numbers numerically and anything else (multi-sine `"700+835"`) after them."""
    return sorted(values, key=lambda v: (0, v, "") if isinstance(v, int | float) else (1, 0, str(v)))


# --- hints and warnings ----------------------------------------------------------------------


def _parent_hint(written: Mapping[str, Any], merged: Mapping[str, Any] | None, key: str) -> str:
    """Explain a refusal caused by a key that only the `extends` parent defines."""
    if merged is None or key in written or not merged.get(key):
        return ""
    return (
        f" '{key}' is only defined in the parent config '{written.get('extends')}'; GOLIAT splits "
        "the file as written, so copy it into this file to split on it."
    )


def _near_field_hint(config: Mapping[str, Any]) -> str:
    if config.get("study_type") != NEAR_FIELD:
        return ""
    return " Near-field studies take their frequencies from antenna_config: split them with 'auto'."


def _lookalike_warnings(config: Mapping[str, Any], strategy: str) -> list[str]:
    """Name the GOLIAT quirks that make a split narrow a key the study never reads."""
    warnings = []
    if strategy in ("frequency", "custom") and config.get("study_type") == NEAR_FIELD:
        warnings.append(
            "near-field studies ignore frequencies_mhz (they run every antenna_config frequency), "
            "so this split does not narrow the simulations."
        )
    if strategy in ("direction", "polarization", "freq_x_pol") and config.get("study_type") == FAR_FIELD:
        setup = _dict(config.get("far_field_setup"))
        setup_type = setup.get("type", _DEFAULT_FAR_FIELD_TYPE)
        if setup_type != _DEFAULT_FAR_FIELD_TYPE:
            warnings.append(
                f"far_field_setup.type is {setup_type!r}, but GOLIAT's far-field study always reads "
                "far_field_setup.environmental, so the narrowed lists are not the ones it runs."
            )
        tessellated = _dict(setup.get(setup_type)).get("spherical_tessellation")
        if strategy == "direction" and tessellated:
            warnings.append(
                "spherical_tessellation is set: GOLIAT generates the directions from it and ignores "
                "incident_directions, so every assignment runs every direction."
            )
    return warnings


def _try_merge(
    config: Mapping[str, Any], parents: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, Any] | None:
    try:
        return merge_extends(config, parents or {})
    except ConfigError:
        return None


def _simulations(
    config: Mapping[str, Any], parents: Mapping[str, Mapping[str, Any]] | None
) -> tuple[list[Simulation] | None, str | None]:
    """The simulations a (written) config implies, or why they cannot be known."""
    try:
        return enumerate_simulations(merge_extends(config, parents or {})), None
    except ConfigError as exc:
        return None, str(exc)


def count_simulations(
    config: Mapping[str, Any], parents: Mapping[str, Mapping[str, Any]] | None = None
) -> int | None:
    """How many simulations a (written) config implies, or None when that cannot be known."""
    simulations, _ = _simulations(config, parents)
    return None if simulations is None else len(simulations)


def _summary(items: list[tuple[str, Sequence[Any]]]) -> str:
    return "; ".join(f"{label}: {', '.join(str(v) for v in values)}" for label, values in items)


def _finish(
    strategy: str,
    parts: list[_Part],
    plan: str,
    config: Mapping[str, Any],
    parents: Mapping[str, Mapping[str, Any]] | None,
    warnings: list[str],
) -> SplitResult:
    """Number the assignments, count their simulations and check they cover the campaign once."""
    whole, reason = _simulations(config, parents)
    if reason is not None:
        warnings.append(f"simulation counts are unknown: {reason}")
    assignments = []
    covered: Counter[Simulation] = Counter()
    for index, part in enumerate(parts):
        sims = None if whole is None else _simulations(part.config, parents)[0]
        if sims is not None:
            covered.update(sims)
        assignments.append(
            SplitAssignment(
                index=index,
                config=part.config,
                size=None if sims is None else len(sims),
                summary=_summary(part.summary),
            )
        )
    if not assignments:
        warnings.append(f"no assignments were made: {plan}")
    if whole is not None:
        empty = [a.index for a in assignments if a.size == 0]
        if empty:
            warnings.append(f"assignment(s) {empty} imply no simulations.")
        warnings += _coverage_warnings(Counter(whole), covered)
    return SplitResult(
        strategy=strategy,
        assignments=assignments,
        warnings=warnings,
        plan=plan,
        total_size=None if whole is None else len(whole),
    )


def _coverage_warnings(whole: Counter[Simulation], covered: Counter[Simulation]) -> list[str]:
    """Say which simulations the assignments leave out or run more than once."""
    warnings = []
    extra = covered - whole
    if extra:
        examples = ", ".join(sim.relative_path for sim in list(extra)[:_EXAMPLES])
        warnings.append(
            f"{extra.total()} simulation run(s) are duplicated across assignments (e.g. {examples}): "
            "the split narrows a key the study does not read, or the parent config re-adds entries "
            "the split removed (GOLIAT merges dicts with their parent's)."
        )
    missing = whole - covered
    if missing:
        examples = ", ".join(sim.relative_path for sim in list(missing)[:_EXAMPLES])
        warnings.append(f"{missing.total()} simulation(s) are in no assignment (e.g. {examples}).")
    return warnings
