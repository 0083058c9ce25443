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
imported. An installed distribution makes that happen in every run by naming the module under the entry-point
group `robustness_gate` (`load_extensions`):

    [project.entry-points.robustness_gate]
    my_models = "my_package.robustness_models"

`unregister(name)` undoes one, for tests and interactive sessions. Stdlib only: importing this module imports no
torch.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")
V = TypeVar("V")


EXTENSION_GROUP = "robustness_gate"


class ExtensionError(ImportError):
    """An extension named under the `robustness_gate` entry-point group failed to import."""


def load_extensions() -> list[str]:
    """Import every module named under the entry-point group `robustness_gate`, in name order, so that what they
    register is there; return "name = module (distribution version)" for each. ExtensionError names the entry
    point and its distribution when one fails to import."""
    from importlib.metadata import entry_points

    loaded = []
    for point in sorted(entry_points(group=EXTENSION_GROUP), key=lambda point: point.name):
        where = f"{point.name} = {point.value}"
        if point.dist is not None:
            where += f" ({point.dist.name} {point.dist.version})"
        try:
            point.load()
        except Exception as error:  # an extension's own error, whatever it is, must name the extension
            raise ExtensionError(f"robustness_gate extension {where} failed to import: {type(error).__name__}: "
                                 f"{error}; fix or uninstall that distribution") from error
        loaded.append(where)
    return loaded


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
