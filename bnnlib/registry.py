"""A name -> item table that refuses a second registration of a name and lists the known names
when asked for an unknown one: the mechanism behind the model and optimizer registries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Items of one ``kind`` ("model", "optimizer") by name; ``sort`` lists names sorted instead
    of in registration order."""

    def __init__(self, kind: str, *, sort: bool = False) -> None:
        self.kind = kind
        self.sort = sort
        self._items: dict[str, T] = {}
        self._sources: dict[str, Callable[..., Any]] = {}

    def add(self, name: str, item: T, source: Callable[..., Any]) -> None:
        """Register ``item`` as ``name``; ``source`` is the function that defines it. A name
        registered twice raises ValueError: silently replacing an entry would make a config build
        something else than its name says."""
        if name in self._items:
            old = self._sources[name]
            raise ValueError(
                f"{self.kind} {name!r} is already registered by {old.__module__}.{old.__qualname__}"
            )
        self._items[name] = item
        self._sources[name] = source

    def get(self, name: str) -> T:
        """The item registered as ``name``; ValueError listing the known names otherwise."""
        try:
            return self._items[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items) if self.sort else list(self._items)

    def copy(self) -> Registry[T]:
        """An independent copy (a test registers into it and drops it afterwards)."""
        other: Registry[T] = Registry(self.kind, sort=self.sort)
        other._items, other._sources = dict(self._items), dict(self._sources)
        return other
