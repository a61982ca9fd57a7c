"""A small typed registry with "did you mean …?" errors.

Datasets, models, methods, attacks and corruptions are each kept in a :class:`Registry` so that the CLI
and YAML configs can name them, and so that a typo gets a one-line error listing the close matches.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from medrobust.errors import ConfigError, UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered factory with its metadata."""

    name: str
    factory: Callable[..., T]
    help: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


def suggest(name: str, choices: list[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choices, or an empty string."""
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.6)
    if not close:
        close = [c for c in choices if name.lower() in c.lower() or c.lower() in name.lower()][:3]
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"


def unknown_name_message(kind: str, name: str, choices: list[str]) -> str:
    """One-line message for an unknown ``name`` of ``kind``."""
    return f"unknown {kind} {name!r}{suggest(name, choices)} (choices: {', '.join(sorted(choices))})"


class Registry(Generic[T]):
    """Maps names to factories, and ``prefix:<Name>`` families of names to a resolver (see :meth:`register_family`).

    Example:
        >>> models = Registry[object]("model")
        >>> @models.register("tiny", help="a tiny model")
        ... def tiny() -> object: return object()
        >>> models.names()
        ['tiny']
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._families: dict[str, tuple[Callable[[str], Entry[T]], Entry[T]]] = {}

    def register(self, name: str, *, help: str = "", **meta: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering ``factory`` under ``name`` (names are unique)."""

        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            doc = help or (factory.__doc__ or "").strip().split("\n")[0]
            self._entries[name] = Entry(name, factory, doc, dict(meta))
            return factory

        return decorate

    def register_family(self, prefix: str, resolve: Callable[[str], Entry[T]], *, help: str, **meta: Any) -> None:
        """Make every name ``prefix:<Name>`` resolve to ``resolve(Name)`` (which raises for an unknown ``Name``).

        The family is listed once, as ``prefix:<Name>`` with ``help``; its members are not enumerated.
        """
        if prefix in self._families:
            raise ValueError(f"{self.kind} family {prefix!r} is already registered")
        placeholder = f"{prefix}:<Name>"

        def unnamed(*_: Any, **__: Any) -> Any:
            raise ConfigError(f"{placeholder} stands for a {self.kind} name, e.g. {prefix}:SomeName")

        self._families[prefix] = (resolve, Entry(placeholder, unnamed, help, dict(meta)))

    def get(self, name: str) -> Entry[T]:
        """The entry for ``name``; raises :class:`UnknownNameError` with suggestions."""
        prefix, colon, member = name.partition(":")
        if colon and prefix in self._families:
            return self._families[prefix][0](member)
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(unknown_name_message(self.kind, name, self.names())) from None

    def create(self, name: str, /, **kwargs: Any) -> T:
        """Call the factory registered as ``name`` with ``kwargs`` (unknown options get a one-line error)."""
        entry = self.get(name)
        check_options(f"{self.kind} {name!r}", entry.factory, kwargs)
        return entry.factory(**kwargs)

    def names(self) -> list[str]:
        """Registered names, sorted, then one ``prefix:<Name>`` per family."""
        return sorted(self._entries) + [entry.name for _, entry in self._families.values()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        """The entries, then one placeholder entry per family (named ``prefix:<Name>``, for listings)."""
        yield from (self._entries[n] for n in sorted(self._entries))
        yield from (entry for _, entry in self._families.values())

    def __len__(self) -> int:
        return len(self._entries)


def check_options(what: str, factory: Callable[..., Any], options: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` if ``options`` names a keyword ``factory`` does not accept."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for key in options:
        if key not in accepted:
            raise ConfigError(
                f"unknown option {key!r} for {what}{suggest(key, accepted)} (options: {', '.join(accepted)})"
            )
