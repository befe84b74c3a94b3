"""Named registries for the extension points, filled by `register_*` calls and entry points.

Each registry is a dict behind `register` and `get`. Entry points of the group
`promptomatix.<kind>` (for example `promptomatix.backends`) are loaded the first time a registry
is read; a plugin that fails to load is reported with its name and reason, and the rest work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from promptomatix.errors import ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, builtins: Callable[[Registry[T]], None] | None = None):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._builtins = builtins
        self._loaded = False
        self._loading = False
        self._lock = threading.RLock()
        self.errors: dict[str, str] = {}

    @property
    def group(self) -> str:
        return f"promptomatix.{self.kind}"

    def register(self, name: str, item: T, *, replace: bool = False) -> T:
        if not self._loading:
            self._load()
        if not replace and name in self._items and self._items[name] is not item:
            raise ConfigError(f"a {self.kind[:-1]} named {name!r} is already registered")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            hint = f" (its plugin failed: {self.errors[name]})" if name in self.errors else ""
            raise ConfigError(
                f"unknown {self.kind[:-1].replace('_', ' ')} {name!r}{hint}; "
                f"choose one of: {', '.join(sorted(self._items))}"
            ) from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _load(self) -> None:
        """Fill the registry once: built-ins, then entry points. Thread-safe; a built-in that
        fails leaves the registry unloaded (the next read tries again) rather than half full."""
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            registered, self._items = self._items, {}
            self._loading = True
            try:
                if self._builtins:
                    self._builtins(self)
                self._load_entry_points()
            except BaseException:
                self._items = registered
                raise
            finally:
                self._loading = False
            self._items.update({k: v for k, v in registered.items() if k not in self._items})
            self._loaded = True

    def _load_entry_points(self) -> None:
        for ep in entry_points(group=self.group):
            try:
                item = ep.load()
            except Exception as exc:  # a broken plugin must not break the others
                self.errors[ep.name] = f"{type(exc).__name__}: {exc}"
                log.warning("plugin %r (%s) failed to load: %s", ep.name, self.group, exc)
                continue
            if ep.name in self._items:
                self.errors[ep.name] = f"name clashes with an existing {self.kind[:-1]}"
                log.warning("plugin %r (%s) skipped: the name is taken", ep.name, self.group)
                continue
            self._items[ep.name] = item
