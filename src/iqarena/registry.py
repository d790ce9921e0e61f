"""One small registry for every kind of named thing iqarena builds: metrics (with learned models,
trained checkpoints and ensembles), datasets, executors, parameter files and mappings.

>>> DATASETS = Registry("dataset", group="iqarena.datasets", listing="`iqarena datasets`")
>>> DATASETS.add("pipal", reader, aliases=("ntire2021",))
>>> DATASETS.get("NTIRE2021")          # names and aliases, case-insensitive
>>> DATASETS.get("pipl")               # InputError: unknown dataset 'pipl'; known: pipal, ...

Third-party packages add entries through the entry-point group (``group``): each entry point names a
module, which registers its entries when imported, or an object, which is added under the entry
point's name. Entry points are loaded once, the first time a name is missed or the names are listed.
"""

from __future__ import annotations

import importlib.metadata
import types
import warnings
from typing import Generic, Iterator, TypeVar

from .errors import InputError

T = TypeVar("T")
_MISSING = object()


class Registry(Generic[T]):
    """Named entries of one kind, with aliases and plugins; lookups are case-insensitive."""

    def __init__(self, kind: str, *, group: str | None = None, listing: str = ""):
        self.kind = kind  # what an entry is, in messages: "metric", "dataset" ...
        self.group = group  # entry-point group of third-party entries
        self.listing = listing  # how a user lists the names, in messages
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._plugins_loaded = group is None

    def add(self, name: str, item: T, *, aliases: tuple[str, ...] = (), replace: bool = False) -> T:
        """Register ``item`` under ``name`` (and ``aliases``); a taken name is an error unless ``replace``."""
        key = name.lower()
        for a in (key, *(x.lower() for x in aliases)):
            owner = a if a in self._items else self._aliases.get(a)
            if owner is not None and not (replace and owner == key):
                raise InputError(f"{self.kind} name {a!r} is taken (by {owner!r}); choose another name.")
        self._items[key] = item
        self._aliases.update({a.lower(): key for a in aliases})
        return item

    def register(self, name: str, *, aliases: tuple[str, ...] = ()):
        """Decorator form of :meth:`add`."""
        def deco(item: T) -> T:
            self.add(name, item, aliases=aliases)
            return item
        return deco

    def remove(self, name: str) -> None:
        key = self.resolve(name)
        del self._items[key]
        self._aliases = {a: k for a, k in self._aliases.items() if k != key}

    def resolve(self, name: str) -> str:
        """The canonical name of ``name`` or of the alias ``name``; InputError listing the names if unknown."""
        key = str(name).lower()
        key = self._aliases.get(key, key)
        if key not in self._items and not self._plugins_loaded:
            self._load_plugins()
            key = self._aliases.get(key, key)
        if key not in self._items:
            where = f" {self.listing} lists them." if self.listing else ""
            raise InputError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}.{where}")
        return key

    def get(self, name: str, default=_MISSING) -> T:
        """The entry of ``name``; unknown names give ``default`` if one is given, else InputError."""
        if default is not _MISSING and name not in self:
            return default
        return self._items[self.resolve(name)]

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __setitem__(self, name: str, item: T) -> None:
        self.add(name, item, replace=True)

    def __delitem__(self, name: str) -> None:
        self.remove(name)

    def names(self) -> list[str]:
        """Every canonical name, sorted (plugins included)."""
        if not self._plugins_loaded:
            self._load_plugins()
        return sorted(self._items)

    def aliases(self, name: str) -> list[str]:
        key = self.resolve(name)
        return sorted(a for a, k in self._aliases.items() if k == key)

    def __contains__(self, name: object) -> bool:
        try:
            self.resolve(str(name))
        except InputError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._items[n]) for n in self.names()]

    def values(self) -> list[T]:
        return [self._items[n] for n in self.names()]

    def _load_plugins(self) -> None:
        self._plugins_loaded = True
        for ep in importlib.metadata.entry_points(group=self.group):
            try:
                obj = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break iqarena
                warnings.warn(f"{self.kind} plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=3)
                continue
            if not isinstance(obj, types.ModuleType) and ep.name.lower() not in self._items:
                self.add(ep.name, obj)
