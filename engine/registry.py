"""Name → implementation registries, one per stage.

Implementations register either a callable or a lazy ``"module:attr"`` path, so that naming a heavy
backend (torch, transformers) costs nothing until it is created.

>>> r = Registry("flow backend")
>>> r.register("noop", lambda **kw: kw)
>>> r.create("noop", a=1)
{'a': 1}
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from engine.errors import UnknownNameError, UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """A registry of factories for one kind of stage implementation."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T] | str] = {}

    def register(self, name: str, factory: Callable[..., T] | str) -> None:
        """Register ``factory`` (a callable or ``"module:attr"``) under ``name``; duplicates are rejected."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = factory

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def resolve_name(self, name: str) -> str:
        """``name`` when registered (nothing is imported), else `UnknownNameError` listing the valid ones."""
        if name not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
        return name

    def resolve(self, name: str) -> Callable[..., T]:
        """The factory for ``name``; an unknown name raises `UnknownNameError` listing the valid ones."""
        entry = self._entries[self.resolve_name(name)]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module), attr)
            self._entries[name] = entry
        return entry

    def create(self, name: str, **params: Any) -> T:
        """Build the implementation registered as ``name`` with keyword ``params``.

        Parameters the factory does not take are a `UserError` listing the ones it does, so a
        misspelt key in a config file is one clear line rather than a ``TypeError``.
        """
        factory = self.resolve(name)
        try:
            sig = inspect.signature(factory)
        except (TypeError, ValueError):  # builtins without a signature: let the call decide
            sig = None
        if sig is not None:
            try:
                sig.bind(**params)
            except TypeError as exc:
                allowed = [
                    p.name
                    for p in sig.parameters.values()
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                ]
                raise UserError(
                    f"{self.kind} {name!r}: {exc}; allowed parameters: {', '.join(allowed) or 'none'}"
                ) from None
        return factory(**params)
