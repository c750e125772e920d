"""Which simulations a GOLIAT config implies, in GOLIAT's run order, and how `extends` is merged.

Pure functions on plain dicts (parsed JSON). GOLIAT itself is the reference:
`goliat/config/merge.py` and `Config._load_config_with_inheritance` for `extends`,
`goliat/studies/far_field_study.py` / `near_field_study.py` for the simulation loops and
`goliat/project_manager.py` for the result folder names. We re-implement, never import, them:
the server must know a campaign's shape without Sim4Life or GOLIAT installed.
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FAR_FIELD",
    "NEAR_FIELD",
    "ConfigError",
    "Frequency",
    "Simulation",
    "apply_run_tag",
    "collect_parents",
    "deep_merge",
    "enumerate_simulations",
    "frequency_label",
    "merge_extends",
    "parse_config",
    "phantom_names",
    "spherical_directions",
]

FAR_FIELD = "far_field"
NEAR_FIELD = "near_field"

# A far-field frequency is a number, or a tuple of numbers for a multi-sine group ("700+2450").
Frequency = int | float | tuple[int, ...]

_RUN_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class ConfigError(ValueError):
    """A config GOLIAT could not run (bad `extends`, unknown study type, malformed loops)."""


@dataclass(frozen=True, slots=True)
class Simulation:
    """One GOLIAT simulation: one Sim4Life project and one result folder.

    `scenario`, `position` and `orientation` are the three placement parts GOLIAT uses to name
    the folder: for far field they are `"environmental"`, the incident direction and the
    polarization. `case` is that folder name (with the `run_tag` suffix when set).
    """

    study_type: str
    phantom: str
    frequency_mhz: Frequency
    case: str
    scenario: str
    position: str
    orientation: str

    @property
    def frequency_label(self) -> str:
        """The frequency as GOLIAT writes it in paths: `700`, or `700+2450` for multi-sine."""
        return frequency_label(self.frequency_mhz)

    @property
    def relative_path(self) -> str:
        """`<study_type>/<phantom>/<freq>MHz/<case>`, the `relativePath` GOLIAT uploads results under.

        GOLIAT lower-cases the phantom name in the folder, so we do too.
        """
        return f"{self.study_type}/{self.phantom.lower()}/{self.frequency_label}MHz/{self.case}"


# --- extends ---------------------------------------------------------------------------------


def deep_merge(child: Mapping[str, Any], parent: Mapping[str, Any]) -> dict[str, Any]:
    """Return `parent` overridden by `child`, as GOLIAT's `deep_merge(source=child, destination=parent)`.

    A key whose value is a dict on both sides is merged recursively; anything else (lists
    included) is replaced wholesale by the child's value. Parent keys keep their position and
    child-only keys come after them, the order GOLIAT's in-place merge produces. Unlike GOLIAT
    neither input is mutated and the result shares no objects with them.
    """
    merged: dict[str, Any] = copy.deepcopy(dict(parent))
    for key, value in child.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and key in merged and isinstance(current, Mapping):
            merged[key] = deep_merge(value, current)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def merge_extends(config: Mapping[str, Any], parents: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Resolve `extends` recursively, the way GOLIAT loads a config.

    `parents` maps file names to parsed configs. A name is looked up as written, then with
    `.json` appended (GOLIAT adds it), then by its last path component. As in GOLIAT the merged
    result keeps the `extends` key of `config` itself. Raises `ConfigError` for a missing parent,
    a malformed `extends` or a cycle (GOLIAT would recurse until it crashed).
    """
    return _resolve(config, parents, chain=())


def _resolve(
    config: Mapping[str, Any], parents: Mapping[str, Mapping[str, Any]], chain: tuple[str, ...]
) -> dict[str, Any]:
    if not isinstance(config, Mapping):
        raise ConfigError(f"a config must be a JSON object, got {type(config).__name__}")
    if "extends" not in config:
        return copy.deepcopy(dict(config))
    name = config["extends"]
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"'extends' must name a parent config file, got {name!r}")
    key = _find_parent(name, parents)
    if key is None:
        known = ", ".join(sorted(parents)) or "none"
        raise ConfigError(f"parent config {name!r} named by 'extends' was not found (known: {known})")
    if key in chain:
        cycle = " -> ".join([*chain[chain.index(key) :], key])
        raise ConfigError(f"'extends' forms a cycle: {cycle}")
    parent = _resolve(parents[key], parents, (*chain, key))
    return deep_merge(config, parent)


def parse_config(text: str, name: str) -> dict[str, Any]:
    """Parse the text of the config file `name`; anything but a JSON object is a `ConfigError`."""
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"cannot read config {name}: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"config {name} must hold a JSON object, got {type(config).__name__}")
    return config


def collect_parents(config: Mapping[str, Any], texts: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The parent configs `config`'s `extends` chain names, parsed from `texts` (file name -> text).

    This is the one parent-config reader: the CLI, the demo and the tests hand it a lazy view of
    a folder. Names are looked up as `merge_extends` does, and the result is keyed by the name as
    written, ready for `merge_extends` and a study's `parentConfigs`. The walk stops quietly at a
    parent that is missing or already read (a cycle): splitting works on the config as written,
    and `merge_extends` reports both when the merged config is needed. A parent that is not a
    JSON object raises `ConfigError`.
    """
    parents: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    name = config.get("extends")
    while isinstance(name, str) and name.strip():
        key = _find_parent(name, texts)
        if key is None or key in seen:
            break
        seen.add(key)
        parent = parse_config(texts[key], key)
        parents[name] = parent
        name = parent.get("extends")
    return parents


def _find_parent(name: str, parents: Mapping[str, object]) -> str | None:
    """Find the key of `parents` that `extends: name` refers to."""
    candidates = [name]
    if not name.endswith(".json"):
        candidates.append(name + ".json")
    candidates += [posixpath.basename(c.replace("\\", "/")) for c in list(candidates)]
    for candidate in candidates:
        if candidate in parents:
            return candidate
    return None


# --- simulations -----------------------------------------------------------------------------


def enumerate_simulations(config: Mapping[str, Any]) -> list[Simulation]:
    """Every simulation a merged config implies, in the order GOLIAT runs them.

    Far field: phantoms × frequencies × incident directions × polarizations, read from
    `far_field_setup.environmental` (GOLIAT's study always reads that sub-dict, whatever
    `far_field_setup.type` says), with directions generated from `spherical_tessellation` when
    that is set. Near field: phantoms × antenna frequencies × placement scenarios × positions ×
    orientations, skipping a phantom without `phantom_definitions[p].placements` and a scenario
    whose `do_<scenario>` flag is not set for that phantom.
    """
    study_type = config.get("study_type")
    if study_type == FAR_FIELD:
        return list(_far_field(config))
    if study_type == NEAR_FIELD:
        return list(_near_field(config))
    raise ConfigError(f"unknown or missing study_type {study_type!r} (expected 'far_field' or 'near_field')")


def phantom_names(config: Mapping[str, Any]) -> list[str]:
    """The phantom names of a config: a list as is, a dict's keys (older near-field files), a lone name."""
    phantoms = config.get("phantoms") or []
    if isinstance(phantoms, Mapping):
        return [str(name) for name in phantoms]
    if isinstance(phantoms, list | tuple):
        return list(phantoms)
    return [phantoms]


def frequency_label(frequency: Frequency) -> str:
    """Format a frequency as GOLIAT does in folder names (`700`, `700+2450`)."""
    if isinstance(frequency, tuple):
        return "+".join(str(f) for f in frequency)
    return str(frequency)


def apply_run_tag(case: str, run_tag: object) -> str:
    """Append GOLIAT's `__<tag>` suffix (unsafe characters replaced by `_`) when `run_tag` is set.

    Non-string, empty and whitespace-only tags mean no tag, as in GOLIAT.
    """
    if not run_tag or not isinstance(run_tag, str):
        return case
    safe = _RUN_TAG_UNSAFE.sub("_", run_tag.strip())
    return f"{case}__{safe}" if safe else case


def spherical_directions(tessellation: Mapping[str, Any]) -> list[str]:
    """Direction names (`"<theta>_<phi>"`, whole degrees, truncated) of a spherical tessellation.

    Explicit `theta_values` / `phi_values` win over `theta_divisions` (default 3, 0..180
    inclusive) / `phi_divisions` (default 4, 0..360 exclusive). At a pole (theta 0 or 180) only
    phi 0 is kept, since every phi gives the same wave there.
    """
    try:
        if "theta_values" in tessellation:
            thetas = list(tessellation["theta_values"])
        else:
            n_theta = tessellation.get("theta_divisions", 3)
            thetas = [i * 180 / n_theta for i in range(n_theta + 1)]
        if "phi_values" in tessellation:
            phis = list(tessellation["phi_values"])
        else:
            n_phi = tessellation.get("phi_divisions", 4)
            phis = [i * 360 / n_phi for i in range(n_phi)]
        directions: list[str] = []
        for theta in thetas:
            if theta in (0, 180):
                directions.append(f"{int(theta)}_0")
            else:
                directions.extend(f"{int(theta)}_{int(phi)}" for phi in phis)
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise ConfigError(f"invalid spherical_tessellation {dict(tessellation)!r}: {exc}") from exc
    return directions


def _as_list(value: Any) -> list[Any]:
    """GOLIAT's `x or []`, then a lone value wrapped in a list."""
    if not value:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _parse_frequency(value: Any) -> Frequency:
    """`"700+2450"` -> (700, 2450), `"700"` -> 700, numbers unchanged (GOLIAT's far-field parsing)."""
    try:
        if isinstance(value, str):
            if "+" in value:
                return tuple(int(part.strip()) for part in value.split("+"))
            return int(value)
    except ValueError as exc:
        raise ConfigError(f"invalid frequency {value!r} in frequencies_mhz") from exc
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"invalid frequency {value!r} in frequencies_mhz")
    return value


def _sub(mapping: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """`mapping[key]` when it is a dict, else an empty dict (GOLIAT's `config[...] or {}`)."""
    value = mapping.get(key)
    return value if isinstance(value, Mapping) else {}


def _far_field(config: Mapping[str, Any]) -> Iterator[Simulation]:
    phantoms = phantom_names(config)
    frequencies = [_parse_frequency(f) for f in _as_list(config.get("frequencies_mhz"))]
    environmental = _sub(_sub(config, "far_field_setup"), "environmental")
    polarizations = _as_list(environmental.get("polarizations"))
    tessellation = environmental.get("spherical_tessellation")
    if tessellation:
        if not isinstance(tessellation, Mapping):
            raise ConfigError("spherical_tessellation must be an object")
        directions = spherical_directions(tessellation)
    else:
        directions = _as_list(environmental.get("incident_directions"))
    run_tag = config.get("run_tag")
    for phantom in phantoms:
        for frequency in frequencies:
            for direction in directions:
                for polarization in polarizations:
                    yield Simulation(
                        study_type=FAR_FIELD,
                        phantom=phantom,
                        frequency_mhz=frequency,
                        case=apply_run_tag(f"environmental_{direction}_{polarization}", run_tag),
                        scenario="environmental",
                        position=str(direction),
                        orientation=str(polarization),
                    )


def _names(value: Any, what: str) -> Iterable[str]:
    """The keys of a positions/orientations dict; GOLIAT calls `.keys()`, so anything else is an error."""
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what} must be an object keyed by name, got {type(value).__name__}")
    return list(value)


def _placements(config: Mapping[str, Any], phantom: str) -> Mapping[str, Any]:
    """`phantom_definitions[phantom].placements`; for dict-style `phantoms`, the phantom's own entry too."""
    definition = _sub(config, "phantom_definitions").get(phantom)
    if definition is None:
        legacy = config.get("phantoms")
        definition = legacy.get(phantom) if isinstance(legacy, Mapping) else None
    return _sub(definition, "placements") if isinstance(definition, Mapping) else {}


def _near_field(config: Mapping[str, Any]) -> Iterator[Simulation]:
    antenna_keys = list(_sub(config, "antenna_config"))
    scenarios = _sub(config, "placement_scenarios")
    run_tag = config.get("run_tag")
    for phantom in phantom_names(config):
        placements = _placements(config, phantom)
        if not placements:
            continue
        for key in antenna_keys:
            try:
                frequency = int(key)
            except ValueError as exc:
                raise ConfigError(f"antenna_config key {key!r} is not a frequency in MHz") from exc
            for scenario, details in scenarios.items():
                if not placements.get(f"do_{scenario}"):
                    continue
                if not isinstance(details, Mapping):
                    raise ConfigError(f"placement scenario {scenario!r} must be an object")
                orientations = _names(details.get("orientations"), f"{scenario}.orientations")
                for position in _names(details.get("positions"), f"{scenario}.positions"):
                    for orientation in orientations:
                        yield Simulation(
                            study_type=NEAR_FIELD,
                            phantom=phantom,
                            frequency_mhz=frequency,
                            case=apply_run_tag(f"{scenario}_{position}_{orientation}", run_tag),
                            scenario=scenario,
                            position=position,
                            orientation=orientation,
                        )
