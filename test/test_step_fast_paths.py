"""The shortcuts taken when creating steps still give the general answers where it matters.

Step creation has fast paths (trun/step.py): a step id computed by a function
written for the class, the configuration looked up without ``get_config()``
when nothing changed, a constructor whose arguments name every parameter.
Each test here takes a case the shortcut must leave to the general code
(a configuration section, a command line, a reset configuration, another
parser, odd parameter values) and checks the answer against what the general
algorithm says.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest

import trun
import trun.step
from trun import configuration
from trun.cmdline_parser import CmdlineParser
from trun.parameter import ParameterVisibility, UnconsumedParameterWarning
from trun.testing import with_config


def reference_step_id(family: str, params: dict[str, Any]) -> str:
    """The id as Luigi documents it, written independently of trun's code."""
    text = json.dumps(params, separators=(",", ":"), sort_keys=True)
    digest = hashlib.md5(text.encode("utf-8")).hexdigest()[:10]
    summary = "_".join(params[name][:16] for name in sorted(params)[:3])
    return f"{family}_{re.sub(r'[^A-Za-z0-9_]', '_', summary)}_{digest}"


# -- step ids ------------------------------------------------------------------------

VALUES = ["", "x", "hello world/this is long", 'quote"and\\slash', "\u00e9t\u00e9 \u2603", "under_score", "1" * 40,
          "tab\tnewline\n", "__"]


@pytest.mark.parametrize("value", VALUES)
def test_compiled_step_id_equals_the_reference_for_odd_strings(value: str) -> None:
    class OddStrings(trun.Step):
        zeta = trun.Parameter()
        alpha = trun.Parameter()
        n = trun.IntParameter()

    step = OddStrings(zeta=value, alpha=value[::-1], n=3)
    assert step.step_id == reference_step_id("OddStrings", {"zeta": value, "alpha": value[::-1], "n": "3"})
    assert step.step_id == trun.step.step_id_str("OddStrings", step.to_str_params(only_significant=True,
                                                                                  only_public=True))


def test_compiled_step_id_leaves_out_private_hidden_and_insignificant_parameters() -> None:
    class Mixed(trun.Step):
        step_namespace = "ns"
        day = trun.DateParameter()
        secret = trun.Parameter(default="s", visibility=ParameterVisibility.PRIVATE)
        hidden = trun.Parameter(default="h", visibility=ParameterVisibility.HIDDEN)
        note = trun.Parameter(default="n", significant=False)
        b = trun.IntParameter(default=2)
        a = trun.FloatParameter(default=1.5)
        c = trun.Parameter(default="c")

    step = Mixed(day=datetime.date(2024, 3, 5))
    assert step.step_id == reference_step_id(
        "ns.Mixed", {"day": "2024-03-05", "b": "2", "a": "1.5", "c": "c"})


def test_a_serialize_returning_a_non_string_goes_the_general_way() -> None:
    class NumberParameter(trun.Parameter):
        def serialize(self, x: Any) -> Any:
            return x  # not a str

    class Numbered(trun.Step):
        n = NumberParameter()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # As step_id_str does: the summary cuts every value to 16 characters, an int cannot be cut.
        with pytest.raises(TypeError):
            trun.step.step_id_str("Numbered", {"n": 5})  # type: ignore[dict-item]
        with pytest.raises(TypeError):
            Numbered(n=5)


def test_a_serialize_returning_a_str_subclass_hashes_its_text() -> None:
    class Tagged(str):
        pass

    class TaggedParameter(trun.Parameter):
        def serialize(self, x: Any) -> str:
            return Tagged(f"<{x}>")

    class WithTagged(trun.Step):
        t = TaggedParameter()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert WithTagged(t="v").step_id == reference_step_id("WithTagged", {"t": "<v>"})


def test_changed_step_id_constants_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    class Constants(trun.Step):
        a = trun.Parameter()
        b = trun.Parameter()

    assert Constants(a="abcdef", b="x").step_id == reference_step_id("Constants", {"a": "abcdef", "b": "x"})
    monkeypatch.setattr(trun.step, "STEP_ID_INCLUDE_PARAMS", 1)
    monkeypatch.setattr(trun.step, "STEP_ID_TRUNCATE_PARAMS", 3)
    monkeypatch.setattr(trun.step, "STEP_ID_TRUNCATE_HASH", 4)
    digest = hashlib.md5(b'{"a":"zyxwvu","b":"x"}').hexdigest()[:4]
    assert Constants(a="zyxwvu", b="x").step_id == f"Constants_zyx_{digest}"


def test_a_class_without_parameters_has_the_id_of_an_empty_dict() -> None:
    class Bare(trun.Step):
        pass

    assert Bare().step_id == reference_step_id("Bare", {})


def test_a_parameter_added_later_changes_the_ids_of_new_instances() -> None:
    class Growing(trun.Step):
        a = trun.Parameter()

    assert Growing(a="1").step_id == reference_step_id("Growing", {"a": "1"})
    Growing.b = trun.Parameter(default="2")
    assert Growing(a="1").step_id == reference_step_id("Growing", {"a": "1", "b": "2"})


# -- configuration and command line ------------------------------------------------------

def make_pair() -> type[trun.Step]:
    class FastPair(trun.Step):
        a = trun.IntParameter()
        b = trun.Parameter(default="x")

    return FastPair


def test_a_family_section_added_after_steps_were_made_is_read_by_the_next_ones() -> None:
    FastPair = make_pair()
    assert FastPair(a=1).b == "x"
    with with_config({"FastPair": {"b": "from-config"}}):
        assert FastPair(a=2).b == "from-config"
        # Every parameter given: the section is still checked for stray keys.
        assert FastPair(a=3, b="given").b == "given"
    assert FastPair(a=4).b == "x"


def test_a_stray_key_warns_also_when_every_parameter_is_given() -> None:
    FastPair = make_pair()
    FastPair(a=1, b="y")
    with with_config({"FastPair": {"bb": "typo"}}):
        with pytest.warns(UnconsumedParameterWarning, match="'bb'"):
            FastPair(a=2, b="y")


def test_the_command_line_is_read_by_steps_made_while_it_is_active() -> None:
    FastPair = make_pair()
    assert FastPair(a=1).b == "x"
    with CmdlineParser.global_instance(["FastPair", "--a", "1", "--FastPair-b", "from-cli"]):
        assert FastPair(a=5).b == "from-cli"
    assert FastPair(a=6).b == "x"


def test_a_reset_configuration_is_seen_by_the_next_step(tmp_path: Path) -> None:
    FastPair = make_pair()
    assert FastPair(a=1).b == "x"
    configuration.reset_config()
    config_file = tmp_path / "extra.cfg"
    config_file.write_text("[FastPair]\nb = from-file\n")
    assert configuration.add_config_path(str(config_file))
    assert FastPair(a=2).b == "from-file"
    configuration.reset_config()
    assert FastPair(a=3).b == "x"


def test_the_parser_named_by_the_environment_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tomllib")
    FastPair = make_pair()
    assert FastPair(a=1).b == "x"
    toml_file = tmp_path / "trun.toml"
    toml_file.write_text('[FastPair]\nb = "from-toml"\n')
    monkeypatch.setenv("TRUN_CONFIG_PARSER", "toml")
    monkeypatch.setenv("TRUN_CONFIG_PATH", str(toml_file))
    configuration.reset_config()
    try:
        assert FastPair(a=2).b == "from-toml"
    finally:
        monkeypatch.delenv("TRUN_CONFIG_PARSER")
        monkeypatch.delenv("TRUN_CONFIG_PATH")
        configuration.reset_config()
    assert FastPair(a=3).b == "x"


# -- construction ---------------------------------------------------------------------

def test_keyword_construction_normalizes_lists_and_validates_values() -> None:
    class Normalizing(trun.Step):
        items = trun.ListParameter()
        when = trun.DateParameter()

    step = Normalizing(items=[1, 2], when=datetime.date(2024, 1, 31))
    assert step.items == (1, 2)
    assert Normalizing(when=datetime.date(2024, 1, 31), items=(1, 2)) is step
    with pytest.raises(ValueError):
        Normalizing(items=[1], when="not a date")


def test_a_list_or_set_value_finds_the_step_made_with_the_same_values_as_a_tuple() -> None:
    class Unnormalized(trun.Step):
        values = trun.IntParameter()  # no normalize(): lists and sets become tuples
        n = trun.IntParameter()

    step = Unnormalized(values=(1, 2), n=1)
    assert Unnormalized(values=[1, 2], n=1) is step
    assert Unnormalized(values=(1, 2), n=1) is step
    single = Unnormalized(values={3}, n=1)
    assert single.values == (3,)
    assert Unnormalized(values=(3,), n=1) is single
    assert Unnormalized(values={3}, n=1) is single


def test_an_overridden_requires_hook_is_honoured_by_deps() -> None:
    class Hidden(trun.Step):
        pass

    class WithHiddenDeps(trun.Step):
        def requires(self) -> list[trun.Step]:
            return []

        def _requires(self) -> list[trun.Step]:
            return [*super()._requires(), Hidden()]

    assert WithHiddenDeps().deps() == [Hidden()]


def test_instances_are_cached_per_class_and_value() -> None:
    FastPair = make_pair()

    class OtherPair(trun.Step):
        a = trun.IntParameter()
        b = trun.Parameter(default="x")

    assert FastPair(a=1) is FastPair(1) is FastPair(a=1, b="x")
    assert FastPair(a=1) is not OtherPair(a=1)
    assert FastPair(a=1).step_id != OtherPair(a=1).step_id


# -- the constructor written for the class --------------------------------------------------

def test_keyword_and_positional_calls_give_the_same_cached_step() -> None:
    class Both(trun.Step):
        day = trun.DateParameter()
        n = trun.IntParameter()
        tag = trun.Parameter()

    step = Both(day=datetime.date(2024, 1, 2), n=1, tag="t")
    assert Both(datetime.date(2024, 1, 2), 1, "t") is step
    assert Both(n=1, tag="t", day=datetime.date(2024, 1, 2)) is step
    assert step.param_kwargs == {"day": datetime.date(2024, 1, 2), "n": 1, "tag": "t"}
    assert list(step.__dict__)[:5] == ["day", "n", "tag", "param_kwargs", "step_id"]
    assert step.step_id == reference_step_id("Both", {"day": "2024-01-02", "n": "1", "tag": "t"})


def test_a_normalizer_runs_once_and_its_own_key_error_is_not_swallowed() -> None:
    calls: list[Any] = []

    class Picky(trun.Parameter):
        def normalize(self, x: Any) -> Any:
            calls.append(x)
            if x == "bad":
                raise KeyError("bad value")
            return x.upper()

    class UsesPicky(trun.Step):
        p = Picky()
        n = trun.IntParameter()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert UsesPicky(p="a", n=1).p == "A"
        assert calls == ["a"]
        with pytest.raises(KeyError, match="bad value"):
            UsesPicky(p="bad", n=2)
    assert calls == ["a", "bad"]


def make_two_normalizers(calls: list[str]) -> type:
    class Strict(trun.Parameter):
        def normalize(self, x: Any) -> Any:
            calls.append(f"{self.label}:{x}")
            if x == "bad":
                raise ValueError(f"bad {self.label}")
            return x.upper()

        def __init__(self, label: str) -> None:
            super().__init__()
            self.label = label

    class TwoStrict(trun.Step):
        first = Strict("first")
        second = Strict("second")

    return TwoStrict


def test_a_class_with_two_normalizing_parameters_gets_a_written_constructor() -> None:
    calls: list[str] = []
    TwoStrict = make_two_normalizers(calls)
    step = TwoStrict(first="a", second="b")
    assert TwoStrict._trun_param_spec().new_from_call is not None
    assert (step.first, step.second) == ("A", "B")
    assert TwoStrict("a", "b") is TwoStrict(second="b", first="a") is step
    assert calls == ["first:a", "second:b"] * 3


def test_with_two_normalizers_the_error_raised_follows_the_callers_keyword_order() -> None:
    calls: list[str] = []
    TwoStrict = make_two_normalizers(calls)
    with pytest.raises(ValueError, match="bad first"):
        TwoStrict(first="bad", second="bad")
    assert calls == ["first:bad"]  # in declaration order: raised as it is, each normalizer once
    with pytest.raises(ValueError, match="bad second"):
        TwoStrict(second="bad", first="bad")
    with pytest.raises(ValueError, match="bad first"):
        TwoStrict("bad", "bad")


def test_a_non_string_for_a_plain_parameter_still_warns_from_where_it_did() -> None:
    class Loose(trun.Step):
        text = trun.Parameter()

    with pytest.warns(UserWarning, match='Parameter "text" with value "5" is not of type string') as record:
        Loose(text=5)
    assert record[0].filename.endswith("step.py")


def test_unhashable_values_and_a_disabled_cache_make_new_steps() -> None:
    from trun.step_register import Register

    class Holder(trun.Step):
        n = trun.IntParameter()
        blob = trun.Parameter(significant=False)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert Holder(n=1, blob={"a": 1}) is not Holder(n=1, blob={"a": 1})
        assert Holder(n=1, blob=[1]) is Holder(n=1, blob=(1,))
        Register.disable_instance_cache()
        try:
            assert Holder(n=2, blob="x") is not Holder(n=2, blob="x")
        finally:
            Register.clear_instance_cache()
        assert Holder(n=2, blob="x") is Holder(n=2, blob="x")


def test_calls_the_class_cannot_take_fail_as_before() -> None:
    class Keyword(trun.Step):
        a = trun.IntParameter(positional=False)
        b = trun.IntParameter()

    with pytest.raises(trun.parameter.UnknownParameterException, match="takes at most 1 parameters"):
        Keyword(1, 2)
    with pytest.raises(trun.parameter.UnknownParameterException, match="unknown parameter c"):
        Keyword(a=1, c=2)
    with pytest.raises(trun.parameter.MissingParameterException, match="'a' parameter"):
        Keyword(b=1, **{})
    assert Keyword(2, a=1) is Keyword(a=1, b=2)
