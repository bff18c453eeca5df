"""One registry type for every pluggable kind (importance methods, compensations): factories
registered under a name with a one-line description, built by name with options."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import InvalidArgumentError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Named factories of ``base`` instances.

    Args:
        kind: what is registered, for messages (``"method"``, ``"compensation"``).
        base: the class every built object is an instance of; an instance given to
            :meth:`get` is returned as it is.
    """

    def __init__(self, kind: str, base: type[T]) -> None:
        self.kind, self.base = kind, base
        self._entries: dict[str, tuple[Callable[..., T], str]] = {}

    def register(self, name: str, description: str
                 ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering a factory under ``name``."""

        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise InvalidArgumentError(f"{self.kind} {name!r} is registered already")
            self._entries[name] = (factory, description)
            return factory

        return deco

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._entries)

    def description(self, name: str) -> str:
        """The one-line description of ``name``."""
        return self._entries[name][1]

    def get(self, name: str | T, **options: Any) -> T:
        """The object ``name`` builds with ``options`` (an instance: itself, no options).

        Raises:
            InvalidArgumentError: an unknown name, options the factory does not take, or
                options with an instance.
        """
        if isinstance(name, self.base):
            if options:
                raise InvalidArgumentError(f"options cannot be given with a {self.kind} "
                                           "instance")
            return name
        if name not in self._entries:
            raise InvalidArgumentError(f"unknown {self.kind} {name!r}; registered: "
                                       f"{', '.join(self.names())}")
        try:
            return self._entries[name][0](**options)
        except TypeError as exc:
            raise InvalidArgumentError(f"bad options for {self.kind} {name!r}: {exc}") from None
