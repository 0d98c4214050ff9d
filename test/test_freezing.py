"""trun.freezing: immutable, hashable versions of JSON-like values."""
from __future__ import annotations

import pickle

import pytest

from trun.freezing import FrozenOrderedDict, recursively_freeze, recursively_unfreeze


def test_frozen_ordered_dict_keeps_insertion_order():
    frozen = FrozenOrderedDict([("b", 1), ("a", 2), ("c", 3)])
    assert list(frozen) == ["b", "a", "c"]


def test_frozen_ordered_dict_equals_plain_dict_with_same_items():
    assert FrozenOrderedDict(a=1, b=2) == {"b": 2, "a": 1}


def test_frozen_ordered_dict_hash_ignores_order_like_equality():
    first = FrozenOrderedDict([("a", 1), ("b", 2)])
    second = FrozenOrderedDict([("b", 2), ("a", 1)])
    assert first == second
    assert hash(first) == hash(second)


def test_frozen_ordered_dict_hash_differs_for_different_values():
    assert hash(FrozenOrderedDict(a=1)) != hash(FrozenOrderedDict(a=2))


def test_frozen_ordered_dict_rejects_item_assignment():
    frozen = FrozenOrderedDict(a=1)
    with pytest.raises(TypeError):
        frozen["a"] = 2  # type: ignore[index]


def test_frozen_ordered_dict_rejects_new_attributes():
    frozen = FrozenOrderedDict(a=1)
    with pytest.raises(AttributeError):
        frozen.extra = 1  # type: ignore[attr-defined]


def test_frozen_ordered_dict_repr_is_short_like_a_dict():
    assert repr(FrozenOrderedDict(a=1)) == "{'a': 1}"


def test_frozen_ordered_dict_get_wrapped_returns_the_underlying_dict():
    assert FrozenOrderedDict(a=1).get_wrapped() == {"a": 1}
    assert type(FrozenOrderedDict(a=1).get_wrapped()) is dict


def test_frozen_ordered_dict_survives_pickling_with_order():
    frozen = FrozenOrderedDict([("z", 1), ("a", (1, 2))])
    copy = pickle.loads(pickle.dumps(frozen))
    assert copy == frozen
    assert list(copy) == ["z", "a"]
    assert hash(copy) == hash(frozen)


def test_frozen_ordered_dict_with_unhashable_value_fails_on_hash():
    frozen = FrozenOrderedDict(a=[1])
    with pytest.raises(TypeError):
        hash(frozen)


def test_recursively_freeze_turns_nested_lists_and_dicts_into_hashable_values():
    frozen = recursively_freeze({"a": [1, {"b": [2, 3]}], "c": (4, [5])})
    assert frozen == {"a": (1, {"b": (2, 3)}), "c": (4, (5,))}
    assert isinstance(frozen, FrozenOrderedDict)
    assert isinstance(frozen["a"][1], FrozenOrderedDict)
    hash(frozen)


def test_recursively_freeze_keeps_scalars():
    assert recursively_freeze("text") == "text"
    assert recursively_freeze(3) == 3
    assert recursively_freeze(None) is None


def test_recursively_unfreeze_gives_plain_dicts_and_lists():
    thawed = recursively_unfreeze(FrozenOrderedDict(a=(1, FrozenOrderedDict(b=(2,)))))
    assert thawed == {"a": [1, {"b": [2]}]}
    assert type(thawed) is dict
    assert type(thawed["a"]) is list
    assert type(thawed["a"][1]) is dict


def test_freeze_then_unfreeze_round_trips_json_like_values():
    value = {"x": [1, 2, {"y": ["z"]}], "n": None}
    assert recursively_unfreeze(recursively_freeze(value)) == value
