"""Read a GOLIAT config file and the parents its `extends` chain names from the folder it sits in.

The I/O half of `domain.campaign.collect_parents`: the domain walks the chain over a mapping of
file texts, and this module supplies that mapping as a view of one folder that reads a file only
when the walk asks for it. The folder is a `Traversable`, so a folder on disk (`pathlib.Path`)
and package data (`importlib.resources.files(...)`) are read the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from importlib.resources.abc import Traversable
from typing import Any

from goliat_monitor.domain.campaign import ConfigError, collect_parents, parse_config

__all__ = ["read_config"]


class _FolderTexts(Mapping[str, str]):
    """The texts of the files in one folder, keyed by file name (or a path below the folder)."""

    def __init__(self, folder: Traversable) -> None:
        self._folder = folder

    def _file(self, name: str) -> Traversable:
        return self._folder.joinpath(*name.replace("\\", "/").split("/"))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(name) and self._file(name).is_file()

    def __getitem__(self, name: str) -> str:
        if name not in self:
            raise KeyError(name)
        try:
            return self._file(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config {name}: {exc}") from exc

    def __iter__(self) -> Iterator[str]:
        return (entry.name for entry in self._folder.iterdir() if entry.is_file())

    def __len__(self) -> int:
        return sum(1 for _ in self)


def read_config(folder: Traversable, name: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The config `folder/name` as written, and the parents its `extends` chain names, by name.

    A parent that is not in the folder is left out (see `collect_parents`); a config or parent
    that cannot be read or is not a JSON object raises `ConfigError`.
    """
    texts = _FolderTexts(folder)
    if name not in texts:
        raise ConfigError(f"cannot read config {name}: no such file")
    config = parse_config(texts[name], name)
    return config, collect_parents(config, texts)
