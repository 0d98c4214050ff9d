"""Tests of trun.step_register: finding step classes by family name, and load_step."""
from __future__ import annotations

import sys

import pytest

import trun
from trun.step_register import Register, StepClassAmbigiousException, StepClassNotFoundException, load_step


def test_get_step_cls_finds_class_by_family():
    class RegFindMe(trun.Step):
        pass

    assert Register.get_step_cls("RegFindMe") is RegFindMe


def test_get_step_cls_finds_namespaced_family():
    class RegSpaced(trun.Step):
        step_namespace = "reg_ns"

    assert Register.get_step_cls("reg_ns.RegSpaced") is RegSpaced


def test_step_names_lists_registered_families_sorted():
    class RegListedB(trun.Step):
        pass

    class RegListedA(trun.Step):
        pass

    names = Register.step_names()
    assert names == sorted(names)
    assert {"RegListedA", "RegListedB", "Step", "Config", "ExternalStep", "WrapperStep"} <= set(names)


def test_unknown_family_suggests_close_names():
    class RegSpellingTarget(trun.Step):
        pass

    with pytest.raises(StepClassNotFoundException, match=r"No step RegSpelingTarget\. Did you mean:\nRegSpellingTarget"):
        Register.get_step_cls("RegSpelingTarget")


def test_unknown_family_suggests_case_insensitive_match():
    class RegCaseTarget(trun.Step):
        pass

    with pytest.raises(StepClassNotFoundException, match="RegCaseTarget"):
        Register.get_step_cls("regcasetarget")


def test_unknown_family_without_close_match_lists_candidates_and_module_hint():
    with pytest.raises(StepClassNotFoundException, match=r"(?s)Candidates are: .*--module"):
        Register.get_step_cls("Zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz")


def test_two_unrelated_classes_with_one_family_are_ambiguous():
    type("RegTwin", (trun.Step,), {"__module__": "reg_twin_one"})
    type("RegTwin", (trun.Step,), {"__module__": "reg_twin_two"})
    with pytest.raises(StepClassAmbigiousException, match=r"RegTwin.*reg_twin_one\.RegTwin.*reg_twin_two\.RegTwin"):
        Register.get_step_cls("RegTwin")


def test_subclass_with_same_family_resolves_to_most_derived():
    base = type("RegDerived", (trun.Step,), {"__module__": "reg_derived"})
    derived = type("RegDerived", (base,), {"__module__": "reg_derived"})
    assert Register.get_step_cls("RegDerived") is derived


def test_invisible_classes_are_not_registered():
    class RegHidden(trun.Step):
        _visible_in_registry = False

    with pytest.raises(StepClassNotFoundException):
        Register.get_step_cls("RegHidden")


def test_renamed_class_is_found_under_its_new_family():
    class RegBeforeRename(trun.Step):
        pass

    Register.get_step_cls("RegBeforeRename")
    RegBeforeRename.step_namespace = "renamed"
    assert Register.get_step_cls("renamed.RegBeforeRename") is RegBeforeRename


def test_get_all_params_yields_family_section_flag_and_parameter():
    class RegWithParams(trun.Step):
        size = trun.IntParameter(default=1)

    class RegBare(trun.Config):
        use_cmdline_section = False
        bare = trun.Parameter(default="b")

    rows = {(family, name): without_section for family, without_section, name, _ in Register.get_all_params()}
    assert rows[("RegWithParams", "size")] is False
    assert rows[("RegBare", "bare")] is True


def test_load_step_imports_module_and_parses_string_parameters(tmp_path, monkeypatch):
    (tmp_path / "reg_loadable_mod.py").write_text(
        "import trun\n"
        "class RegLoadable(trun.Step):\n"
        "    n = trun.IntParameter()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        step = load_step("reg_loadable_mod", "RegLoadable", {"n": "42"})
        assert step.n == 42 and step.step_family == "RegLoadable"
    finally:
        sys.modules.pop("reg_loadable_mod", None)


def test_load_step_unknown_family_raises_not_found():
    with pytest.raises(StepClassNotFoundException):
        load_step(None, "RegDoesNotExistAnywhere", {})


def test_set_reg_replaces_registry_contents():
    saved = list(Register._reg)  # the full list, so ambiguous and hidden classes come back too
    try:
        class RegOnlyOne(trun.Step):
            pass

        Register._set_reg({"RegOnlyOne": RegOnlyOne})
        assert Register.step_names() == ["RegOnlyOne"]
    finally:
        Register._reg = saved
        Register._reg_generation += 1
    assert "Step" in Register.step_names()


def test_step_family_is_readable_on_the_class_through_the_metaclass():
    class RegFamilyProp(trun.Step):
        step_namespace = "p"

    assert RegFamilyProp.step_family == "p.RegFamilyProp"


def test_editdistance_counts_single_character_edits():
    assert Register._editdistance("kitten", "sitting") == 3
    assert Register._editdistance("", "abc") == 3
    assert Register._editdistance("same", "same") == 0
