"""One shape for every name -> thing table of the harness: model families, benchmarks, attacks, transforms.

The contract of a `Registry`:

- a name is registered once: `register(name)` (a decorator, for a function or class) and `add(name, value)`
  (for a plain value) raise `DuplicateNameError` when the name is taken, instead of silently replacing the
  built-in or earlier entry;
- looking up a name that is not registered (`get(name)`, `registry[name]`) raises `UnknownNameError`, whose
  message names the kind of thing, the name asked for and every name that is available;
- `names()`, iteration, `items()` and `values()` go in sorted name order, so listings are the same whatever the
  import order; `in`, `len()` and `registry[name]` read it like a dict.

Code outside the harness registers into the tables with their public decorators (`harness.models.register_family`,
`harness.data.register_benchmark`, `harness.attacks.register_attack`,
`harness.shifts.perturbations.register_transform`); the registration takes effect when the registering module is
imported. `unregister(name)` undoes one, for tests and interactive sessions. Stdlib only: importing this module
imports no torch.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")
V = TypeVar("V")


class DuplicateNameError(ValueError):
    """A name was registered twice in one registry."""


class UnknownNameError(KeyError):
    """A registry was asked for a name it does not hold; the message lists the available names. A KeyError (and
    so a LookupError), so `except KeyError` around a dict-style lookup keeps working."""

    def __str__(self) -> str:  # KeyError's own str() would quote the message
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Names -> values of one `kind` ("model family", "benchmark", ...); see the module docstring."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, value: T) -> T:
        """Register `value` under `name` and return it; DuplicateNameError when `name` is taken."""
        if name in self._entries:
            raise DuplicateNameError(
                f"{self.kind} {name!r} is already registered; choose another name (or unregister the first)")
        self._entries[name] = value
        return value

    def register(self, name: str) -> Callable[[V], V]:
        """Decorator: `@REGISTRY.register("name")` registers the decorated function or class and returns it
        unchanged."""
        def decorate(value: V) -> V:
            self.add(name, value)  # type: ignore[arg-type]
            return value
        return decorate

    def unregister(self, name: str) -> T:
        """Remove `name` and return what it held (for tests and interactive sessions, to undo a registration)."""
        self.get(name)
        return self._entries.pop(name)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            available = ", ".join(self.names()) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; available: {available}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return [(name, self._entries[name]) for name in self.names()]

    def values(self) -> list[T]:
        return [self._entries[name] for name in self.names()]

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
