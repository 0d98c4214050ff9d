"""trun.cmdline_parser: the command line read against every registered step's parameters."""
from __future__ import annotations

import datetime
import uuid

import pytest

import trun
from trun.cmdline_parser import CmdlineParser, CommandLineError
from trun.step_register import StepClassNotFoundException


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def make_step(prefix: str = "C", base: type = trun.Step, **attrs):
    return type(unique(prefix), (base,), dict(attrs))


def parse(*args: str) -> CmdlineParser:
    return CmdlineParser(list(args))


# --------------------------------------------------------------------------- root step and flags


def test_root_step_flags_become_constructor_arguments():
    step_cls = make_step(n=trun.IntParameter(), the_date=trun.DateParameter())
    obj = parse(step_cls.get_step_family(), "--n", "3", "--the-date", "2024-02-13").get_step_obj()
    assert isinstance(obj, step_cls)
    assert (obj.n, obj.the_date) == (3, datetime.date(2024, 2, 13))


def test_root_step_flags_not_given_are_left_to_lookup():
    step_cls = make_step(n=trun.IntParameter(default=5), m=trun.IntParameter(default=6))
    parser = parse(step_cls.get_step_family(), "--m", "1")
    assert parser._get_step_kwargs() == {"m": 1}
    assert parser.get_step_obj().n == 5


def test_flag_value_may_follow_an_equals_sign():
    step_cls = make_step(n=trun.IntParameter())
    assert parse(step_cls.get_step_family(), "--n=4").get_step_obj().n == 4


def test_class_flag_sets_parameter_of_another_step_while_active():
    root = make_step()
    other = make_step(n=trun.IntParameter(default=1))
    with CmdlineParser.global_instance([root.get_step_family(), f"--{other.get_step_family()}-n", "7"]):
        assert other().n == 7
    assert other().n == 1


def test_class_flag_turns_every_underscore_into_a_dash_and_keeps_namespace_dots():
    namespace = unique("my_ns")
    family_name = unique("Load_Data")
    step_cls = type(family_name, (trun.Step,), {"step_namespace": namespace, "the_date": trun.DateParameter()})
    family = step_cls.get_step_family()
    assert family == f"{namespace}.{family_name}"
    flag = "--" + f"{family}_the_date".replace("_", "-")
    assert "." in flag
    with CmdlineParser.global_instance([family, flag, "2024-02-13"]):
        assert step_cls().the_date == datetime.date(2024, 2, 13)


def test_inherited_parameters_have_class_flags_under_each_subclass_family():
    base = make_step("Base", n=trun.IntParameter(default=0))
    child = make_step("Child", base=base)
    with CmdlineParser.global_instance([child.get_step_family(), f"--{child.get_step_family()}-n", "2"]):
        assert child().n == 2
        assert base().n == 0


def test_empty_class_flag_value_counts_as_not_given():
    step_cls = make_step(n=trun.IntParameter(default=1))
    family = step_cls.get_step_family()
    with CmdlineParser.global_instance([family, f"--{family}-n", ""]):
        assert step_cls().n == 1


def test_parameters_of_sectionless_classes_are_bare_flags():
    param_name = unique("knob_")
    config_cls = make_step("Knobs", base=trun.Config, use_cmdline_section=False,
                           **{param_name: trun.IntParameter(default=0)})
    root = make_step()
    with CmdlineParser.global_instance([root.get_step_family(), "--" + param_name.replace("_", "-"), "4"]):
        assert getattr(config_cls(), param_name) == 4


def test_bare_flag_wins_over_root_parameter_of_the_same_name_which_keeps_its_class_flag():
    param_name = unique("shared_")
    make_step("Knobs", base=trun.Config, use_cmdline_section=False, **{param_name: trun.IntParameter(default=0)})
    root = make_step(**{param_name: trun.IntParameter(default=1)})
    family = root.get_step_family()
    dashed = param_name.replace("_", "-")
    with CmdlineParser.global_instance([family, f"--{dashed}", "5", f"--{family}-{dashed}", "6"]) as parser:
        assert getattr(parser.get_step_obj(), param_name) == 6


# --------------------------------------------------------------------------- booleans


def test_implicit_bool_flag_is_a_switch():
    step_cls = make_step(flag=trun.BoolParameter())
    family = step_cls.get_step_family()
    assert parse(family, "--flag").get_step_obj().flag is True
    assert parse(family).get_step_obj().flag is False


def test_explicit_bool_flag_takes_an_optional_value():
    step_cls = make_step(flag=trun.BoolParameter(default=True, parsing="explicit"))
    family = step_cls.get_step_family()
    assert parse(family, "--flag", "false").get_step_obj().flag is False
    assert parse(family, "--flag").get_step_obj().flag is True
    assert parse(family).get_step_obj().flag is True


def test_explicit_bool_class_flag_can_set_false():
    step_cls = make_step(flag=trun.BoolParameter(default=True, parsing="explicit"))
    family = step_cls.get_step_family()
    with CmdlineParser.global_instance([family, f"--{family}-flag", "false"]):
        assert step_cls().flag is False


# --------------------------------------------------------------------------- --module and --help


def test_module_flag_imports_the_module_before_finding_the_root_step(tmp_path, monkeypatch):
    module_name = unique("user_steps_")
    family = unique("FromModule")
    (tmp_path / f"{module_name}.py").write_text(
        "import trun\n"
        f"class {family}(trun.Step):\n"
        "    n = trun.IntParameter()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    obj = parse("--module", module_name, family, "--n", "2").get_step_obj()
    assert type(obj).__name__ == family
    assert obj.n == 2


def test_module_that_cannot_be_found_is_a_command_line_error():
    with pytest.raises(CommandLineError, match="--module no_such_module_xyz: no module named 'no_such_module_xyz'"):
        parse("--module", "no_such_module_xyz", "Anything")


def test_module_failing_inside_keeps_its_own_error(tmp_path, monkeypatch):
    module_name = unique("broken_steps_")
    (tmp_path / f"{module_name}.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        parse("--module", module_name, "Anything")


def test_help_shows_root_step_parameters_and_exits_zero(capsys):
    root = make_step(window=trun.IntParameter(default=1, description="Days to aggregate"))
    other = make_step(hidden_knob=trun.IntParameter(default=1))
    with pytest.raises(SystemExit) as info:
        parse(root.get_step_family(), "--help")
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--window" in out
    assert "Days to aggregate" in out
    assert f"--{other.get_step_family()}-hidden-knob" not in out


def test_help_all_shows_every_class_flag(capsys):
    other = make_step(hidden_knob=trun.IntParameter(default=1))
    with pytest.raises(SystemExit) as info:
        parse("--help-all")
    assert info.value.code == 0
    assert f"--{other.get_step_family()}-hidden-knob" in capsys.readouterr().out


def test_always_in_help_parameter_shows_in_plain_help(capsys):
    other = make_step(visible_knob=trun.IntParameter(default=1, always_in_help=True, description="Always here"))
    with pytest.raises(SystemExit):
        parse("--help")
    out = capsys.readouterr().out
    assert f"--{other.get_step_family()}-visible-knob" in out
    assert "Always here" in out


# --------------------------------------------------------------------------- errors


def test_no_step_is_a_command_line_error_with_exit_code_two():
    with pytest.raises(CommandLineError, match="No step specified") as info:
        parse()
    assert info.value.exit_code == 2
    assert isinstance(info.value, SystemExit)
    assert info.value.usage.startswith("usage: trun")


def test_unknown_step_family_raises_step_class_not_found():
    with pytest.raises(StepClassNotFoundException):
        parse("NoSuchStepAnywhereZz")


def test_unknown_flag_is_a_command_line_error_with_suggestion():
    step_cls = make_step(window=trun.IntParameter(default=1))
    with pytest.raises(CommandLineError, match="unrecognized arguments: --windw 3. Did you mean --window?"):
        parse(step_cls.get_step_family(), "--windw", "3")


def test_underscore_spelling_of_a_flag_suggests_the_dashed_one():
    step_cls = make_step(max_rows=trun.IntParameter(default=1))
    with pytest.raises(CommandLineError, match="Did you mean --max-rows?"):
        parse(step_cls.get_step_family(), "--max_rows", "3")


def test_stray_positional_argument_is_a_command_line_error():
    step_cls = make_step()
    with pytest.raises(CommandLineError, match=r"unrecognized arguments: extra \(step parameters are given as"):
        parse(step_cls.get_step_family(), "extra")


def test_flag_without_its_value_is_a_command_line_error():
    step_cls = make_step(n=trun.IntParameter(default=1))
    with pytest.raises(CommandLineError, match="argument --n: expected one argument"):
        parse(step_cls.get_step_family(), "--n")


def test_bad_root_flag_value_names_step_flag_and_expected_form():
    step_cls = make_step("AggregationStep", window=trun.IntParameter())
    family = step_cls.get_step_family()
    with pytest.raises(CommandLineError) as info:
        parse(family, "--window", "abc")
    assert str(info.value) == f"{family}: --window expects an integer, got 'abc'"
    assert info.value.exit_code == 2


def test_bad_class_flag_value_is_reported_when_parsing():
    root = make_step()
    other = make_step(day=trun.DateParameter(default=datetime.date(2024, 1, 1)))
    flag = f"--{other.get_step_family()}-day"
    with pytest.raises(CommandLineError, match=f"{other.get_step_family()}: {flag} expects a date YYYY-MM-DD, "
                                               "got '2024-13-01'"):
        parse(root.get_step_family(), flag, "2024-13-01")


# --------------------------------------------------------------------------- the global instance


def test_get_instance_is_none_outside_global_instance():
    assert CmdlineParser.get_instance() is None


def test_global_instance_is_active_inside_the_block_only():
    root = make_step()
    with CmdlineParser.global_instance([root.get_step_family()]) as parser:
        assert CmdlineParser.get_instance() is parser
    assert CmdlineParser.get_instance() is None


def test_global_instance_is_cleared_when_the_block_raises():
    root = make_step()
    with pytest.raises(KeyError):
        with CmdlineParser.global_instance([root.get_step_family()]):
            raise KeyError("boom")
    assert CmdlineParser.get_instance() is None


def test_nested_global_instance_needs_allow_override():
    root = make_step()
    with CmdlineParser.global_instance([root.get_step_family()]):
        with pytest.raises(RuntimeError, match="allow_override=True"):
            with CmdlineParser.global_instance([root.get_step_family()]):
                pass


def test_nested_global_instance_with_allow_override_restores_the_outer_one():
    root = make_step(n=trun.IntParameter(default=0))
    family = root.get_step_family()
    with CmdlineParser.global_instance([family]) as outer:
        with CmdlineParser.global_instance([family, f"--{family}-n", "3"], allow_override=True):
            assert root().n == 3
        assert CmdlineParser.get_instance() is outer


def test_parse_error_during_global_instance_leaves_no_instance():
    step_cls = make_step(n=trun.IntParameter())
    with pytest.raises(CommandLineError):
        with CmdlineParser.global_instance([step_cls.get_step_family(), "--n", "x"]):
            pass
    assert CmdlineParser.get_instance() is None


def test_known_args_expose_class_flags_by_family_and_parameter():
    root = make_step(n=trun.IntParameter(default=0))
    family = root.get_step_family()
    parser = parse(family, f"--{family}-n", "8", "--n", "9")
    assert getattr(parser.known_args, f"{family}_n") == "8"
    assert parser.known_args.n == "9"
    assert parser.known_args.root_step == family


def test_root_flag_that_prefixes_a_core_flag_is_not_read_as_an_abbreviation():
    step_cls = make_step(m=trun.IntParameter(default=0))
    assert parse(step_cls.get_step_family(), "--m", "1").get_step_obj().m == 1


def test_abbreviated_flag_is_not_accepted():
    step_cls = make_step(window_days=trun.IntParameter(default=0))
    with pytest.raises(CommandLineError, match="unrecognized arguments: --window 3. Did you mean --window-days?"):
        parse(step_cls.get_step_family(), "--window", "3")
