"""Tests of trun.step: construction, identity, parameters, structure helpers and policy hooks."""
from __future__ import annotations

import datetime
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import trun
from trun.parameter import (
    DuplicateParameterException,
    MissingParameterException,
    ParameterVisibility,
    UnconsumedParameterWarning,
    UnknownParameterException,
)
from trun.step import (
    BulkCompleteNotImplementedError,
    DynamicRequirements,
    InvalidRequirementError,
    MixinNaiveBulkComplete,
    externalize,
    flatten,
    flatten_output,
    getpaths,
    validate_requirement,
)
from trun.step_register import Register
from trun.testing import with_config


def path_of(struct):
    """The same structure with each target replaced by its path (targets do not compare equal)."""
    if isinstance(struct, dict):
        return {key: path_of(value) for key, value in struct.items()}
    if isinstance(struct, (list, tuple)):
        return type(struct)(path_of(item) for item in struct)
    return struct.path


def make_pair_class():
    class Pair(trun.Step):
        a = trun.IntParameter()
        b = trun.Parameter(default="x")

    return Pair


# -- construction ---------------------------------------------------------------

def test_positional_arguments_fill_parameters_in_declaration_order():
    Pair = make_pair_class()
    step = Pair(3, "y")
    assert (step.a, step.b) == (3, "y")


def test_missing_parameter_takes_its_default():
    Pair = make_pair_class()
    assert Pair(a=1).b == "x"


def test_missing_required_parameter_raises_naming_step_and_parameter():
    Pair = make_pair_class()
    with pytest.raises(MissingParameterException, match=r"Pair.*requires the 'a' parameter to be set.*--Pair-a"):
        Pair()


def test_unknown_keyword_raises_with_did_you_mean_suggestion():
    Pair = make_pair_class()
    with pytest.raises(UnknownParameterException, match=r"unknown parameter aa\. Did you mean 'a'\?"):
        Pair(aa=1)


def test_too_many_positional_arguments_raise():
    Pair = make_pair_class()
    with pytest.raises(UnknownParameterException, match="takes at most 2 parameters"):
        Pair(1, "y", 3)


def test_keyword_repeating_a_positional_argument_raises_duplicate():
    Pair = make_pair_class()
    with pytest.raises(DuplicateParameterException, match="parameter a was already set"):
        Pair(1, a=2)


def test_non_positional_parameter_cannot_be_passed_positionally():
    class KwOnly(trun.Step):
        a = trun.IntParameter(positional=False)
        b = trun.IntParameter()

    step = KwOnly(5, a=1)
    assert (step.a, step.b) == (1, 5)


def test_list_values_become_tuples():
    class Listy(trun.Step):
        items = trun.Parameter()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        step = Listy(items=[1, 2])
    assert step.items == (1, 2)


def test_parameter_value_comes_from_config_section_of_the_family():
    Pair = make_pair_class()
    with with_config({"Pair": {"b": "from-config"}}):
        assert Pair(a=1).b == "from-config"


def test_constructor_argument_beats_config_value():
    Pair = make_pair_class()
    with with_config({"Pair": {"b": "from-config"}}):
        assert Pair(a=1, b="given").b == "given"


def test_config_added_after_first_instance_is_used_by_later_instances():
    Pair = make_pair_class()
    assert Pair(a=1).b == "x"
    with with_config({"Pair": {"b": "later"}}):
        assert Pair(a=2).b == "later"
    assert Pair(a=3).b == "x"


def test_config_path_location_is_read_for_the_default():
    class Legacy(trun.Step):
        value = trun.Parameter(default="d", config_path={"section": "legacy", "name": "the_value"})

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert Legacy().value == "d"
        with with_config({"legacy": {"the_value": "from-legacy"}}):
            assert Legacy().value == "from-legacy"


def test_bad_config_value_raises_value_error_naming_parameter():
    class Counted(trun.Step):
        n = trun.IntParameter(default=1)

    with with_config({"Counted": {"n": "many"}}):
        with pytest.raises(ValueError, match="n"):
            Counted()


def test_class_flag_on_command_line_sets_parameter_of_every_instance():
    from trun.cmdline_parser import CmdlineParser

    class Flagged(trun.Step):
        n = trun.IntParameter(default=1)

    assert Flagged().n == 1
    with CmdlineParser.global_instance(["Flagged", "--Flagged-n", "7"]):
        assert Flagged().n == 7
    assert Flagged().n == 1


def test_parameter_type_with_its_own_lookup_is_asked_for_every_instance(monkeypatch):
    class EnvParameter(trun.Parameter):
        def step_value(self, step_name, param_name):
            return os.environ.get("TRUN_TEST_STEP_ENV_VALUE", "unset")

    class FromEnv(trun.Step):
        value = EnvParameter()

    assert FromEnv().value == "unset"
    monkeypatch.setenv("TRUN_TEST_STEP_ENV_VALUE", "set")
    assert FromEnv().value == "set"


def test_custom_init_calling_super_still_gets_parameters():
    class Custom(trun.Step):
        a = trun.IntParameter()

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.doubled = self.a * 2

    step = Custom(a=4)
    assert (step.a, step.doubled, step.step_id) == (4, 8, Custom(4).step_id)


def test_custom_init_may_change_arguments_before_super():
    class Adjusting(trun.Step):
        a = trun.IntParameter(default=0)

        def __init__(self, *args, **kwargs):
            kwargs["a"] = kwargs.get("a", 0) + 100
            super().__init__(*args, **kwargs)

    assert Adjusting(a=1).a == 101


def test_init_subclass_receives_class_keyword_arguments():
    seen = {}

    class Base(trun.Step):
        def __init_subclass__(cls, tag=None, **kwargs):
            super().__init_subclass__(**kwargs)
            seen[cls.__name__] = tag

    class Tagged(Base, tag="hello"):
        pass

    assert seen == {"Tagged": "hello"}
    assert Tagged().step_family == "Tagged"


def test_register_is_marked_as_dataclass_transform_with_parameter_field_specifier():
    transform = Register.__dataclass_transform__
    assert transform["kw_only_default"] is True
    assert trun.Parameter in transform["field_specifiers"]


# -- instance cache -------------------------------------------------------------

def test_equal_arguments_return_the_cached_instance():
    Pair = make_pair_class()
    assert Pair(1) is Pair(a=1, b="x")


def test_different_insignificant_values_give_distinct_but_equal_instances():
    class Secretive(trun.Step):
        a = trun.IntParameter()
        token = trun.Parameter(significant=False)

    first, second = Secretive(a=1, token="t1"), Secretive(a=1, token="t2")
    assert first is not second
    assert first == second and hash(first) == hash(second)


def test_unhashable_values_bypass_the_cache():
    class Holder(trun.Step):
        data = trun.DictParameter()

    class Unhashable:
        __hash__ = None

    class Raw(trun.Step):
        thing = trun.Parameter()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = Unhashable()
        assert Raw(thing=value) is not Raw(thing=value)
    assert Holder(data={"k": 1}) is Holder(data={"k": 1})  # DictParameter freezes the dict


def test_clear_instance_cache_makes_new_instances():
    Pair = make_pair_class()
    first = Pair(a=1)
    Register.clear_instance_cache()
    assert Pair(a=1) is not first
    assert Pair(a=1) == first


def test_disable_instance_cache_creates_a_new_instance_per_call():
    Pair = make_pair_class()
    Register.disable_instance_cache()
    try:
        assert Pair(a=1) is not Pair(a=1)
    finally:
        Register.clear_instance_cache()


# -- identity and representation ----------------------------------------------

def test_repr_shows_significant_parameters_in_declaration_order():
    class Shown(trun.Step):
        z = trun.IntParameter()
        a = trun.Parameter()
        secret = trun.Parameter(significant=False)

    assert repr(Shown(z=2, a="q", secret="s")) == "Shown(z=2, a=q)"
    assert str(Shown(z=2, a="q", secret="s")) == "Shown(z=2, a=q)"


def test_steps_of_different_classes_with_same_id_are_not_equal():
    class One(trun.Step):
        pass

    class Other(trun.Step):
        step_namespace = ""

    Other.__name__ = "One"
    assert One().step_id == Other().step_id
    assert One() != Other()


def test_hash_is_hash_of_step_id():
    Pair = make_pair_class()
    step = Pair(a=1)
    assert hash(step) == hash(step.step_id)


def test_step_pickles_and_unpickles_to_an_equal_step():
    step = PicklableStep(a=5)
    clone = pickle.loads(pickle.dumps(step))
    assert clone == step and clone.param_kwargs == {"a": 5}


class PicklableStep(trun.Step):
    a = trun.IntParameter()


def test_initialized_is_false_until_the_constructor_ran():
    class Lazy(trun.Step):
        def __init__(self, *args, **kwargs):
            self.early = self.initialized()
            super().__init__(*args, **kwargs)

    step = Lazy()
    assert step.early is False and step.initialized() is True


# -- families and namespaces ----------------------------------------------------

def test_family_is_class_name_without_namespace():
    Pair = make_pair_class()
    assert Pair.step_family == Pair.get_step_family() == Pair(a=1).step_family == "Pair"


def test_step_namespace_attribute_prefixes_family():
    class Named(trun.Step):
        step_namespace = "team"

    assert Named.get_step_family() == "team.Named"
    assert Named.get_step_namespace() == "team"


def test_namespace_function_applies_to_classes_defined_afterwards():
    before = type("BeforeNs", (trun.Step,), {"__module__": "nsmod_a"})
    trun.namespace("spaced", scope="nsmod_a")
    try:
        after = type("AfterNs", (trun.Step,), {"__module__": "nsmod_a"})
        elsewhere = type("ElsewhereNs", (trun.Step,), {"__module__": "nsmod_b"})
    finally:
        trun.namespace(scope="nsmod_a")
    assert before.get_step_family() == "BeforeNs"
    assert after.get_step_family() == "spaced.AfterNs"
    assert elsewhere.get_step_family() == "ElsewhereNs"


def test_most_specific_namespace_scope_wins():
    trun.namespace("outer", scope="pkg_ns")
    trun.namespace("inner", scope="pkg_ns.sub")
    try:
        deep = type("Deep", (trun.Step,), {"__module__": "pkg_ns.sub.mod"})
        shallow = type("Shallow", (trun.Step,), {"__module__": "pkg_ns.other"})
    finally:
        trun.namespace(scope="pkg_ns")
        trun.namespace(scope="pkg_ns.sub")
    assert deep.get_step_family() == "inner.Deep"
    assert shallow.get_step_family() == "outer.Shallow"


def test_auto_namespace_uses_module_name():
    trun.auto_namespace(scope="auto_ns_pkg")
    try:
        auto = type("Auto", (trun.Step,), {"__module__": "auto_ns_pkg.jobs"})
    finally:
        trun.namespace(scope="auto_ns_pkg")
    assert auto.get_step_family() == "auto_ns_pkg.jobs.Auto"


def test_explicit_step_namespace_beats_namespace_function():
    trun.namespace("ignored", scope="explicit_ns_mod")
    try:
        explicit = type("Explicit", (trun.Step,), {"__module__": "explicit_ns_mod", "step_namespace": "mine"})
    finally:
        trun.namespace(scope="explicit_ns_mod")
    assert explicit.get_step_family() == "mine.Explicit"


def test_step_module_is_module_of_the_class():
    Pair = make_pair_class()
    assert Pair(a=1).step_module == __name__


# -- parameter introspection ----------------------------------------------------

def test_get_params_lists_inherited_parameters_in_declaration_order():
    class Base(trun.Step):
        first = trun.Parameter()

    class Child(Base):
        second = trun.IntParameter()

    assert [name for name, _ in Child.get_params()] == ["first", "second"]


def test_subclass_may_replace_a_parameter_by_a_plain_attribute():
    class Base(trun.Step):
        keep = trun.Parameter(default="k")
        drop = trun.Parameter(default="d")

    class Child(Base):
        drop = "constant"

    assert Child.get_param_names() == ["keep"]
    assert Child().drop == "constant"


def test_get_param_names_excludes_insignificant_unless_asked():
    class Mixed(trun.Step):
        a = trun.Parameter()
        b = trun.Parameter(significant=False)

    assert Mixed.get_param_names() == ["a"]
    assert Mixed.get_param_names(include_significant=True) == ["a", "b"]


def test_param_kwargs_maps_names_to_values():
    Pair = make_pair_class()
    assert Pair(a=1).param_kwargs == {"a": 1, "b": "x"}


def test_get_param_values_resolves_explicit_parameter_list():
    Pair = make_pair_class()
    assert Pair.get_param_values(Pair.get_params(), [4], {}) == [("a", 4), ("b", "x")]


def test_param_args_is_deprecated():
    Pair = make_pair_class()
    with pytest.warns(DeprecationWarning):
        assert Pair(a=1).param_args == (1, "x")


def test_parameter_added_after_class_creation_is_used():
    class Growing(trun.Step):
        a = trun.IntParameter()

    Growing(a=1)
    Growing.extra = trun.Parameter(default="e")
    assert Growing(a=1).extra == "e"
    assert [name for name, _ in Growing.get_params()] == ["a", "extra"]


def test_parameter_added_to_base_class_reaches_existing_subclass():
    class Base(trun.Step):
        a = trun.IntParameter()

    class Sub(Base):
        pass

    Sub(a=1)
    Base.late = trun.Parameter(default="late")
    assert Sub(a=1).late == "late"


def test_to_str_params_serializes_and_always_skips_private():
    class Visible(trun.Step):
        public = trun.IntParameter()
        hidden = trun.Parameter(visibility=ParameterVisibility.HIDDEN)
        private = trun.Parameter(visibility=ParameterVisibility.PRIVATE)
        loose = trun.Parameter(significant=False)

    step = Visible(public=1, hidden="h", private="p", loose="l")
    assert step.to_str_params() == {"public": "1", "hidden": "h", "loose": "l"}
    assert step.to_str_params(only_significant=True) == {"public": "1", "hidden": "h"}
    assert step.to_str_params(only_public=True) == {"public": "1", "loose": "l"}
    assert step._get_param_visibilities() == {"public": 0, "hidden": 1, "loose": 0}


def test_from_str_params_round_trips_to_the_same_step():
    class Typed(trun.Step):
        n = trun.IntParameter()
        day = trun.DateParameter()

    step = Typed(n=3, day=datetime.date(2020, 5, 17))
    assert Typed.from_str_params(step.to_str_params()) is step


def test_from_str_params_combines_a_list_with_the_batch_method():
    class Batched(trun.Step):
        n = trun.IntParameter(batch_method=max)

    assert Batched.from_str_params({"n": ["1", "5", "3"]}).n == 5


def test_clone_copies_values_and_applies_overrides():
    Pair = make_pair_class()
    assert Pair(a=1, b="y").clone(a=2) is Pair(a=2, b="y")


def test_clone_into_another_class_passes_shared_parameters_only():
    Pair = make_pair_class()

    class Other(trun.Step):
        a = trun.IntParameter()
        c = trun.Parameter(default="c")

    other = Pair(a=7, b="y").clone(Other, unrelated=1)
    assert other.param_kwargs == {"a": 7, "c": "c"}


# -- unconsumed configuration ---------------------------------------------------

def test_unknown_key_in_family_section_warns_once_with_suggestion():
    class Consumer(trun.Step):
        size = trun.IntParameter(default=1)

    with with_config({"Consumer": {"sise": "3"}}):
        with pytest.warns(UnconsumedParameterWarning, match=r"'sise'.*Did you mean 'size'\?"):
            Consumer()
        with warnings.catch_warnings():
            warnings.simplefilter("error", UnconsumedParameterWarning)
            Consumer(size=2)


def test_ignore_unconsumed_silences_listed_keys():
    class Tolerant(trun.Step):
        ignore_unconsumed = {"note"}
        size = trun.IntParameter(default=1)

    with with_config({"Tolerant": {"note": "anything"}}):
        with warnings.catch_warnings():
            warnings.simplefilter("error", UnconsumedParameterWarning)
            Tolerant()


# -- structure helpers ----------------------------------------------------------

def test_flatten_handles_none_strings_scalars_dicts_and_nesting():
    assert flatten(None) == []
    assert flatten("abc") == ["abc"]
    assert flatten(42) == [42]
    assert flatten({"a": 1, "b": [2, (3, None)]}) == [1, 2, 3]
    assert flatten(x for x in [1, [2]]) == [1, 2]


class Numbered(trun.Step):
    n = trun.IntParameter()


class OtherNumbered(trun.Step):
    n = trun.IntParameter()


@pytest.mark.parametrize("size", [3, 16, 50])
def test_flatten_of_a_long_list_of_steps_is_a_new_list_of_the_same_steps(size):
    steps = [Numbered(n=i) for i in range(size)]
    for given in (steps, tuple(steps)):
        flat = flatten(given)
        assert flat == steps and flat is not given


def test_flatten_of_a_long_list_still_flattens_what_is_nested_in_it():
    steps = [Numbered(n=i) for i in range(20)]
    assert flatten([*steps, [OtherNumbered(n=1), None], {"k": steps[0]}]) == [*steps, OtherNumbered(n=1), steps[0]]
    mixed = [*steps, *(OtherNumbered(n=i) for i in range(20))]
    assert flatten(mixed) == mixed


def test_flatten_of_a_long_list_of_steps_and_other_things_keeps_the_other_things():
    items = [Numbered(n=i) for i in range(20)] + ["a", 1]
    assert flatten(items) == items


def test_getpaths_keeps_structure_of_requires(tmp_path):
    class Leaf(trun.ExternalStep):
        name = trun.Parameter()

        def output(self):
            return trun.LocalTarget(str(tmp_path / self.name))

    leaf_a, leaf_b = Leaf(name="a"), Leaf(name="b")
    paths = getpaths({"x": leaf_a, "y": (leaf_b,), "z": [leaf_a]})
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert path_of(paths) == {"x": a, "y": (b,), "z": [a]}
    assert path_of(getpaths(iter([leaf_a]))) == [a]


def test_getpaths_rejects_non_iterable_non_step():
    with pytest.raises(TypeError, match="Cannot map 5"):
        getpaths(5)


def test_input_is_output_of_requirements(tmp_path):
    class Source(trun.ExternalStep):
        def output(self):
            return trun.LocalTarget(str(tmp_path / "src"))

    class Sink(trun.Step):
        def requires(self):
            return {"src": Source()}

    assert path_of(Sink().input()) == {"src": str(tmp_path / "src")}


def test_deps_flattens_requires_and_hidden_requirements():
    class A(trun.Step):
        pass

    class B(trun.Step):
        pass

    class Template(trun.Step):
        def _requires(self):
            return flatten(self.requires()) + [B()]

    class Concrete(Template):
        def requires(self):
            return [[A()]]

    assert Concrete().deps() == [A(), B()]


def test_flatten_output_looks_through_wrappers(tmp_path):
    class Out(trun.ExternalStep):
        n = trun.IntParameter()

        def output(self):
            return trun.LocalTarget(str(tmp_path / str(self.n)))

    class Inner(trun.WrapperStep):
        def requires(self):
            return [Out(n=2), Out(n=3)]

    class Outer(trun.WrapperStep):
        def requires(self):
            return [Out(n=1), Inner()]

    assert path_of(flatten_output(Outer())) == [str(tmp_path / n) for n in ("1", "2", "3")]


# -- completion -----------------------------------------------------------------

def test_complete_without_outputs_warns_and_is_false():
    class NoOutput(trun.Step):
        pass

    with pytest.warns(UserWarning, match="without outputs has no custom complete"):
        assert NoOutput().complete() is False


def test_complete_is_true_when_all_outputs_exist(tmp_path):
    class TwoFiles(trun.Step):
        def output(self):
            return [trun.LocalTarget(str(tmp_path / "one")), trun.LocalTarget(str(tmp_path / "two"))]

    (tmp_path / "one").write_text("1")
    assert TwoFiles().complete() is False
    (tmp_path / "two").write_text("2")
    assert TwoFiles().complete() is True


def test_wrapper_step_is_complete_when_requirements_are(tmp_path):
    class Part(trun.Step):
        n = trun.IntParameter()

        def output(self):
            return trun.LocalTarget(str(tmp_path / f"part{self.n}"))

    class All(trun.WrapperStep):
        def requires(self):
            return [Part(n=1), Part(n=2)]

    (tmp_path / "part1").write_text("")
    assert All().complete() is False
    (tmp_path / "part2").write_text("")
    assert All().complete() is True


def test_bulk_complete_is_not_implemented_by_default():
    Pair = make_pair_class()
    with pytest.raises(BulkCompleteNotImplementedError):
        Pair.bulk_complete([(1,)])
    assert issubclass(BulkCompleteNotImplementedError, NotImplementedError)


def test_naive_bulk_complete_checks_each_parameter_form(tmp_path):
    class Day(MixinNaiveBulkComplete, trun.Step):
        n = trun.IntParameter()

        def output(self):
            return trun.LocalTarget(str(tmp_path / str(self.n)))

    (tmp_path / "1").write_text("")
    (tmp_path / "3").write_text("")
    assert Day.bulk_complete([1, (2,), {"n": 3}]) == [1, {"n": 3}]


# -- external steps and requirement validation ----------------------------------

def test_external_step_has_no_run():
    assert trun.ExternalStep.run is None


def test_externalize_class_returns_hidden_copy_with_same_family():
    class Producer(trun.Step):
        a = trun.IntParameter()

        def run(self):
            pass

    External = externalize(Producer)
    assert External.run is None and Producer.run is not None
    assert External.get_step_family() == "Producer"
    assert External(a=1).step_id == Producer(a=1).step_id
    assert Register.get_step_cls("Producer") is Producer


def test_externalize_instance_leaves_original_untouched():
    class Maker(trun.Step):
        def run(self):
            pass

    original = Maker()
    external = externalize(original)
    assert external.run is None
    assert original.run is not None and Maker().run is not None


def test_validate_requirement_rejects_target_with_hint_to_external_step(tmp_path):
    class Needy(trun.Step):
        pass

    with pytest.raises(InvalidRequirementError, match=r"Needy\(\).*Target.*ExternalStep"):
        validate_requirement(Needy(), trun.LocalTarget(str(tmp_path / "f")))


def test_validate_requirement_rejects_other_objects_and_accepts_steps():
    class Needy(trun.Step):
        pass

    with pytest.raises(InvalidRequirementError, match="must return Step objects.*is a str"):
        validate_requirement(Needy(), "not a step")
    validate_requirement(Needy(), Needy())


# -- dynamic requirements -------------------------------------------------------

def test_dynamic_requirements_flatten_paths_and_complete(tmp_path):
    class File(trun.ExternalStep):
        n = trun.IntParameter()

        def output(self):
            return trun.LocalTarget(str(tmp_path / str(self.n)))

    dynamic = DynamicRequirements({"a": File(n=1), "b": [File(n=2)]})
    assert dynamic.flat_requirements == [File(n=1), File(n=2)]
    assert path_of(dynamic.paths) == {"a": str(tmp_path / "1"), "b": [str(tmp_path / "2")]}
    (tmp_path / "1").write_text("")
    assert dynamic.complete() is False
    (tmp_path / "2").write_text("")
    assert dynamic.complete() is True


def test_dynamic_requirements_custom_complete_receives_complete_function():
    class Thing(trun.ExternalStep):
        pass

    calls = []
    dynamic = DynamicRequirements([Thing()], custom_complete=lambda fn: calls.append(fn) or True)
    checker = lambda step: False  # noqa: E731
    assert dynamic.complete(checker) is True
    assert calls == [checker]


# -- policy attributes ----------------------------------------------------------

def test_policy_attributes_have_luigi_defaults():
    Pair = make_pair_class()
    step = Pair(a=1)
    assert step.priority == 0 and step.disabled is False and step.resources == {}
    assert step.process_resources() == {}
    assert step.worker_timeout is None and step.max_batch_size == float("inf")
    assert (step.retry_count, step.disable_hard_timeout, step.disable_window) == (None, None, None)
    assert step.owner_email is None and step._owner_list() == []
    assert step.accepts_messages is False
    assert step.batchable is False and step.batch_param_names() == []
    assert step.set_tracking_url is None and step.set_status_message is None
    assert step.set_progress_percentage is None and step.use_cmdline_section is True


def test_owner_email_string_is_split_on_commas():
    class Owned(trun.Step):
        owner_email = "a@example.com,b@example.com"

    assert Owned()._owner_list() == ["a@example.com", "b@example.com"]


def test_batchable_when_a_parameter_has_batch_method():
    class Batchy(trun.Step):
        n = trun.IntParameter(batch_method=max)
        other = trun.Parameter(default="o")

    assert Batchy(n=1).batchable is True
    assert Batchy.batch_param_names() == ["n"]


def test_deprecated_disable_window_seconds_override_still_counts():
    class OldStyle(trun.Step):
        disable_window_seconds = 60

    assert OldStyle().disable_window == 60


def test_on_failure_returns_runtime_error_with_traceback():
    Pair = make_pair_class()
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        text = Pair(a=1).on_failure(exc)
    assert text.startswith("Runtime error:\n") and "boom" in text


def test_on_success_returns_none():
    Pair = make_pair_class()
    assert Pair(a=1).on_success() is None


def test_no_unpicklable_properties_strips_and_restores_worker_callbacks():
    step = PicklableStep(a=99)
    step.set_status_message = lambda message: None
    callback = step.set_status_message
    with step.no_unpicklable_properties():
        assert step.set_status_message == "placeholder_during_pickling"
        assert pickle.loads(pickle.dumps(step)) == step
    assert step.set_status_message is callback


def test_config_class_reads_its_section():
    class mysection(trun.Config):
        option = trun.IntParameter(default=1)

    assert mysection().option == 1
    with with_config({"mysection": {"option": "5"}}):
        assert mysection().option == 5


def test_unpickled_step_hashes_like_a_fresh_one_in_another_process(tmp_path):
    dumped = tmp_path / "step.pickle"
    dumped.write_bytes(pickle.dumps(PicklableStep(a=3)))
    script = (
        "import pickle, sys; sys.path.insert(0, sys.argv[1]);"
        "step = pickle.loads(open(sys.argv[2], 'rb').read());"
        "fresh = type(step)(a=3);"
        "print(hash(step) == hash(fresh), step == fresh, {step: 1}.get(fresh))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(Path(__file__).parent), str(dumped)],
        capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "12345"}, check=True)
    assert result.stdout.split() == ["True", "True", "1"]
