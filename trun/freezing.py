"""Immutable, hashable versions of JSON-like values, for dict and list parameters.

Step instances are cached and compared by their parameter values, so every
parameter value must be hashable. :class:`~trun.parameter.DictParameter` and
:class:`~trun.parameter.ListParameter` therefore store their values frozen:

* a mapping becomes a :class:`FrozenOrderedDict` (keeps insertion order,
  compares equal to a plain ``dict`` with the same items, hashable);
* a ``list`` or ``tuple`` becomes a ``tuple``;
* everything else is kept as it is.

Hazards:

* Freezing is shallow for types it does not know: a ``set`` or a custom
  mutable object inside a dict stays mutable and may make the hash fail.
* ``hash()`` of a :class:`FrozenOrderedDict` hashes its values; a value that is
  not hashable raises ``TypeError`` on the first ``hash()``, not at creation.
"""
from __future__ import annotations

import functools
import operator
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

__all__ = ["FrozenOrderedDict", "recursively_freeze", "recursively_unfreeze"]

_K = TypeVar("_K")
_V = TypeVar("_V")


class FrozenOrderedDict(Mapping[_K, _V], Generic[_K, _V]):
    """A read-only, hashable mapping that remembers insertion order.

    Takes the same arguments as ``dict``. Equality follows ``Mapping``: it
    equals any mapping with the same items, in any order, so
    ``FrozenOrderedDict(a=1) == {"a": 1}``.
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._data: dict[_K, _V] = dict(*args, **kwargs)
        self._hash: int | None = None

    def __getitem__(self, key: _K) -> _V:
        return self._data[key]

    def __iter__(self) -> Iterator[_K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        # Short like a dict, because these show up in step reprs and logs.
        return repr(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            # XOR is order-independent, matching the order-independent __eq__.
            self._hash = functools.reduce(operator.xor, map(hash, self._data.items()), 0)
        return self._hash

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (list(self._data.items()),))

    def get_wrapped(self) -> dict[_K, _V]:
        """Return the underlying ``dict`` (do not modify it)."""
        return self._data


def recursively_freeze(value: Any) -> Any:
    """Return ``value`` with every mapping made a :class:`FrozenOrderedDict` and every list a tuple."""
    if isinstance(value, Mapping):
        return FrozenOrderedDict((key, recursively_freeze(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(recursively_freeze(item) for item in value)
    return value


def recursively_unfreeze(value: Any) -> Any:
    """Inverse of :func:`recursively_freeze`: mappings become ``dict``, tuples and lists become ``list``."""
    if isinstance(value, Mapping):
        return {key: recursively_unfreeze(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [recursively_unfreeze(item) for item in value]
    return value
