"""trun.parameter: parsing, serializing and normalizing each parameter type, and value lookup."""
from __future__ import annotations

import datetime
import enum
import operator
import pickle
import uuid
import warnings
from pathlib import Path

import pytest

import trun
from trun import date_interval
from trun.cmdline_parser import CmdlineParser
from trun.configuration import add_config_path, get_config
from trun.freezing import FrozenOrderedDict
from trun.parameter import (
    DuplicateParameterException,
    MissingParameterException,
    OptionalParameterTypeWarning,
    ParameterException,
    ParameterParseError,
    UnknownParameterException,
)


def unique(prefix: str) -> str:
    """A step family nobody else registers."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def make_step(prefix: str = "P", **params):
    """A fresh step class with ``params`` and a unique family; its family is ``cls.family``."""
    family = unique(prefix)
    return type(family, (trun.Step,), dict(params))


class Color(enum.Enum):
    RED = 1
    GREEN = 2
    BLUE = 3


# --------------------------------------------------------------------------- Parameter


def test_parameter_parse_is_identity():
    assert trun.Parameter().parse("x y") == "x y"


def test_parameter_serialize_uses_str():
    assert trun.Parameter().serialize(5) == "5"


def test_parameter_counter_follows_creation_order():
    first, second = trun.Parameter(), trun.Parameter()
    assert first._counter < second._counter


def test_parameter_on_class_is_the_parameter_object_and_on_instance_the_value():
    step_cls = make_step(name=trun.Parameter())
    assert isinstance(step_cls.name, trun.Parameter)
    assert step_cls(name="abc").name == "abc"


def test_parameter_with_non_string_value_warns():
    step_cls = make_step(name=trun.Parameter())
    with pytest.warns(UserWarning, match='Parameter "name" with value "5" is not of type string'):
        step_cls(name=5)


def test_parameter_rejects_config_path_without_section_and_name():
    with pytest.raises(ParameterException, match="config_path must be a dict with the keys 'section' and 'name'"):
        trun.Parameter(config_path={"section": "s"})


def test_parameter_rejects_non_callable_batch_method():
    with pytest.raises(ParameterException, match="batch_method must be a callable"):
        trun.Parameter(batch_method="max")


def test_parameter_is_global_warns_and_makes_it_keyword_only():
    with pytest.warns(DeprecationWarning, match="is_global"):
        param = trun.Parameter(is_global=True)
    assert param.positional is False


def test_parameter_visibility_defaults_to_public_and_invalid_values_fall_back():
    assert trun.Parameter().visibility == trun.ParameterVisibility.PUBLIC
    assert trun.Parameter(visibility=1).visibility == trun.ParameterVisibility.HIDDEN
    assert trun.Parameter(visibility=99).visibility == trun.ParameterVisibility.PUBLIC


def test_parameter_visibility_serializes_to_its_number():
    assert trun.ParameterVisibility.PRIVATE.serialize() == 2
    assert trun.ParameterVisibility.has_value(1)
    assert not trun.ParameterVisibility.has_value(5)


def test_parse_list_combines_values_with_batch_method():
    assert trun.IntParameter(batch_method=max)._parse_list(["1", "7", "3"]) == 7


def test_parse_list_without_batch_method_raises():
    with pytest.raises(NotImplementedError):
        trun.IntParameter()._parse_list(["1"])


def test_parse_list_of_nothing_raises():
    with pytest.raises(ValueError, match="Empty parameter list"):
        trun.IntParameter(batch_method=max)._parse_list([])


def test_is_batchable_follows_batch_method():
    assert trun.Parameter(batch_method=max)._is_batchable()
    assert not trun.Parameter()._is_batchable()


def test_next_in_enumeration_is_none_for_plain_parameters():
    assert trun.Parameter().next_in_enumeration("a") is None


def test_parameter_repr_shows_the_default():
    assert repr(trun.IntParameter(default=3)) == "IntParameter(default=3)"
    assert repr(trun.IntParameter()) == "IntParameter()"


def test_str_parameter_converts_to_str():
    assert trun.StrParameter().parse(5) == "5"


# --------------------------------------------------------------------------- errors


def test_parse_error_without_context_names_value_and_expected_form():
    with pytest.raises(ParameterParseError) as info:
        trun.IntParameter().parse("abc")
    assert str(info.value) == "expected an integer, got 'abc'"


def test_parse_error_is_a_value_error_and_parameter_exception():
    with pytest.raises(ValueError):
        trun.IntParameter().parse("abc")
    with pytest.raises(ParameterException):
        trun.IntParameter().parse("abc")


def test_parse_error_attach_names_step_and_flag():
    error = ParameterParseError(None, None, "abc", "an integer").attach("AggregationStep", "window")
    assert str(error) == "AggregationStep: --window expects an integer, got 'abc'"
    assert error.exit_code == 2


def test_parse_error_survives_pickling():
    error = ParameterParseError("window", "Agg", "abc", "an integer", source="--Agg-window", hint="Try 3.")
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) == "Agg: --Agg-window expects an integer, got 'abc'. Try 3."


# --------------------------------------------------------------------------- numbers and booleans


def test_int_parameter_parses_decimal_string():
    assert trun.IntParameter().parse("-42") == -42


def test_int_parameter_accepts_typed_values():
    assert trun.IntParameter().parse(7) == 7
    assert trun.IntParameter().parse(7.0) == 7


def test_int_parameter_rejects_non_integer_string():
    with pytest.raises(ParameterParseError, match="expected an integer, got '1.5'"):
        trun.IntParameter().parse("1.5")


def test_int_parameter_next_in_enumeration_adds_one():
    assert trun.IntParameter().next_in_enumeration(4) == 5


def test_float_parameter_parses_float_string():
    assert trun.FloatParameter().parse("1.25") == 1.25
    assert trun.FloatParameter().parse(2) == 2.0


def test_float_parameter_rejects_text():
    with pytest.raises(ParameterParseError, match="a number, got 'fast'"):
        trun.FloatParameter().parse("fast")


@pytest.mark.parametrize("text, expected", [("true", True), ("TRUE", True), ("False", False), (True, True)])
def test_bool_parameter_parses_true_and_false_in_any_case(text, expected):
    assert trun.BoolParameter().parse(text) is expected


def test_bool_parameter_rejects_other_words():
    with pytest.raises(ValueError, match="true or false, got 'yes'"):
        trun.BoolParameter().parse("yes")


def test_bool_parameter_defaults_to_false():
    step_cls = make_step(flag=trun.BoolParameter())
    assert step_cls().flag is False


def test_bool_parameter_normalize_turns_unreadable_value_into_none():
    assert trun.BoolParameter().normalize("maybe") is None
    assert trun.BoolParameter().normalize("true") is True


def test_bool_parameter_implicit_parsing_is_a_switch():
    kwargs = trun.BoolParameter()._parser_kwargs("flag", "Fam")
    assert kwargs == {"action": "store_true", "dest": "Fam_flag"}


def test_bool_parameter_explicit_parsing_takes_an_optional_value():
    kwargs = trun.BoolParameter(parsing=trun.BoolParameter.EXPLICIT_PARSING)._parser_kwargs("flag")
    assert kwargs == {"action": "store", "dest": "flag", "nargs": "?", "const": True}


def test_bool_parameter_class_level_parsing_switches_the_default(monkeypatch):
    monkeypatch.setattr(trun.BoolParameter, "parsing", trun.BoolParameter.EXPLICIT_PARSING)
    assert trun.BoolParameter().parsing == "explicit"


def test_bool_parameter_rejects_unknown_parsing_mode():
    with pytest.raises(ParameterException, match="parsing must be 'implicit' or 'explicit', got 'loose'"):
        trun.BoolParameter(parsing="loose")


def test_numerical_parameter_accepts_value_in_half_open_range():
    param = trun.NumericalParameter(var_type=int, min_value=0, max_value=10)
    assert param.parse("0") == 0
    assert param.parse("9") == 9


def test_numerical_parameter_rejects_value_at_excluded_end():
    param = trun.NumericalParameter(var_type=int, min_value=0, max_value=10)
    with pytest.raises(ValueError, match=r"an int in \[0, 10\), got '10'"):
        param.parse("10")


def test_numerical_parameter_with_closed_range_accepts_max():
    param = trun.NumericalParameter(var_type=float, min_value=0.0, max_value=1.0,
                                    left_op=operator.lt, right_op=operator.le)
    assert param.parse("1.0") == 1.0
    with pytest.raises(ValueError, match=r"\(0.0, 1.0\]"):
        param.parse("0")


def test_numerical_parameter_appends_permitted_values_to_description():
    param = trun.NumericalParameter(var_type=int, min_value=1, max_value=5, description="Retries.")
    assert param.description == "Retries. permitted values: int in [1, 5)"


@pytest.mark.parametrize("missing", ["var_type", "min_value", "max_value"])
def test_numerical_parameter_requires_type_and_bounds(missing):
    kwargs = {"var_type": int, "min_value": 0, "max_value": 1}
    del kwargs[missing]
    with pytest.raises(ParameterException, match=f"requires {missing}="):
        trun.NumericalParameter(**kwargs)


def test_numerical_parameter_checks_constructor_values_too():
    step_cls = make_step(n=trun.NumericalParameter(var_type=int, min_value=0, max_value=3))
    with pytest.raises(ValueError, match=r"int in \[0, 3\)"):
        step_cls(n=5)


# --------------------------------------------------------------------------- optional parameters


@pytest.mark.parametrize("cls, text, value", [
    (trun.OptionalParameter, "abc", "abc"),
    (trun.OptionalStrParameter, "abc", "abc"),
    (trun.OptionalIntParameter, "3", 3),
    (trun.OptionalFloatParameter, "1.5", 1.5),
    (trun.OptionalBoolParameter, "true", True),
    (trun.OptionalDateParameter, "2024-02-13", datetime.date(2024, 2, 13)),
    (trun.OptionalListParameter, "[1, 2]", (1, 2)),
    (trun.OptionalTupleParameter, "[[1, 2]]", ((1, 2),)),
    (trun.OptionalDictParameter, '{"a": 1}', {"a": 1}),
    (trun.OptionalPathParameter, "some/path", Path("some/path")),
])
def test_optional_parameters_read_empty_string_as_none_and_round_trip(cls, text, value):
    param = cls()
    assert param.parse("") is None
    assert param.serialize(None) == ""
    assert param.normalize(param.parse(text)) == value
    assert param.normalize(None) is None


def test_optional_choice_and_numerical_parameters_accept_none():
    choice = trun.OptionalChoiceParameter(choices=["a", "b"])
    number = trun.OptionalNumericalParameter(var_type=int, min_value=0, max_value=5)
    assert choice.parse("") is None and choice.parse("a") == "a"
    assert number.parse("") is None and number.parse("4") == 4


def test_optional_parameter_defaults_to_none():
    step_cls = make_step(limit=trun.OptionalIntParameter())
    assert step_cls().limit is None


def test_optional_parameter_keeps_explicit_default():
    assert make_step(limit=trun.OptionalIntParameter(default=3))().limit == 3


def test_optional_parameter_warns_on_value_of_wrong_type():
    step_cls = make_step(limit=trun.OptionalIntParameter())
    with pytest.warns(OptionalParameterTypeWarning, match='"limit" with value "x" is not of type "int" or None'):
        step_cls(limit="x")


def test_optional_parameter_does_not_warn_on_none():
    step_cls = make_step(limit=trun.OptionalIntParameter())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        step_cls(limit=None)


def test_optional_parameter_error_mentions_empty_string():
    with pytest.raises(ValueError, match=r"an integer \(or an empty string for None\), got 'x'"):
        trun.OptionalIntParameter().parse("x")


def test_optional_int_parameter_has_no_enumeration():
    assert trun.OptionalIntParameter().next_in_enumeration(1) is None


# --------------------------------------------------------------------------- dates and times


def test_date_parameter_parses_iso_date():
    assert trun.DateParameter().parse("2024-02-13") == datetime.date(2024, 2, 13)


def test_date_parameter_serializes_iso_date():
    assert trun.DateParameter().serialize(datetime.date(2024, 2, 3)) == "2024-02-03"


def test_date_parameter_rejects_other_forms():
    with pytest.raises(ParameterParseError, match="a date YYYY-MM-DD, got '13/02/2024'"):
        trun.DateParameter().parse("13/02/2024")


def test_date_parameter_normalize_turns_datetime_into_date():
    assert trun.DateParameter().normalize(datetime.datetime(2024, 2, 13, 5)) == datetime.date(2024, 2, 13)


def test_date_parameter_parses_a_string_given_to_the_constructor():
    step_cls = make_step(day=trun.DateParameter())
    assert step_cls(day="2024-02-13").day == datetime.date(2024, 2, 13)


def test_date_parameter_rejects_a_malformed_string_given_to_the_constructor():
    step_cls = make_step(day=trun.DateParameter())
    with pytest.raises(ParameterParseError, match="a date YYYY-MM-DD, got '13.02.2024'"):
        step_cls(day="13.02.2024")


def test_date_parameter_interval_snaps_down_from_start():
    param = trun.DateParameter(interval=7, start=datetime.date(2024, 1, 1))
    assert param.normalize(datetime.date(2024, 1, 10)) == datetime.date(2024, 1, 8)
    assert param.next_in_enumeration(datetime.date(2024, 1, 8)) == datetime.date(2024, 1, 15)


def test_date_parameter_rejects_a_date_given_as_interval():
    with pytest.raises(ParameterException, match="did you mean default="):
        trun.DateParameter(datetime.date(2024, 1, 1))


def test_month_parameter_parses_and_serializes_year_month():
    param = trun.MonthParameter()
    assert param.parse("2024-02") == datetime.date(2024, 2, 1)
    assert param.serialize(datetime.date(2024, 2, 1)) == "2024-02"


def test_month_parameter_normalizes_to_first_of_month_and_interval():
    param = trun.MonthParameter(interval=3)
    assert param.normalize(datetime.date(2024, 5, 17)) == datetime.date(2024, 4, 1)
    assert param.next_in_enumeration(datetime.date(2024, 11, 1)) == datetime.date(2025, 2, 1)


def test_month_parameter_accepts_a_month_interval():
    assert trun.MonthParameter().normalize(date_interval.Month(2024, 3)) == datetime.date(2024, 3, 1)


def test_year_parameter_parses_year_and_snaps_to_january_first():
    param = trun.YearParameter()
    assert param.parse("2024") == datetime.date(2024, 1, 1)
    assert param.normalize(datetime.date(2024, 7, 4)) == datetime.date(2024, 1, 1)
    assert param.serialize(datetime.date(2024, 1, 1)) == "2024"
    assert param.next_in_enumeration(datetime.date(2024, 1, 1)) == datetime.date(2025, 1, 1)


def test_year_parameter_accepts_a_year_interval():
    assert trun.YearParameter().normalize(date_interval.Year(2023)) == datetime.date(2023, 1, 1)


def test_date_hour_parameter_round_trips():
    param = trun.DateHourParameter()
    value = param.parse("2024-02-13T19")
    assert value == datetime.datetime(2024, 2, 13, 19)
    assert param.serialize(value) == "2024-02-13T19"


def test_date_hour_parameter_normalize_drops_minutes_and_applies_interval():
    param = trun.DateHourParameter(interval=6)
    assert param.normalize(datetime.datetime(2024, 2, 13, 19, 45, 12, 999)) == datetime.datetime(2024, 2, 13, 18)
    assert param.next_in_enumeration(datetime.datetime(2024, 2, 13, 18)) == datetime.datetime(2024, 2, 14, 0)


def test_date_hour_parameter_normalize_keeps_timezone():
    tz = datetime.timezone(datetime.timedelta(hours=2))
    value = datetime.datetime(2024, 2, 13, 19, 30, tzinfo=tz)
    assert trun.DateHourParameter().normalize(value) == datetime.datetime(2024, 2, 13, 19, tzinfo=tz)


def test_date_hour_parameter_parses_a_string_given_to_the_constructor():
    assert trun.DateHourParameter().normalize("2024-02-13T07") == datetime.datetime(2024, 2, 13, 7)


def test_date_minute_parameter_round_trips():
    param = trun.DateMinuteParameter()
    assert param.parse("2024-02-13T1930") == datetime.datetime(2024, 2, 13, 19, 30)
    assert param.serialize(datetime.datetime(2024, 2, 13, 19, 30)) == "2024-02-13T1930"


def test_date_minute_parameter_reads_deprecated_h_form_with_warning():
    with pytest.warns(DeprecationWarning, match='"H" between hours and minutes'):
        value = trun.DateMinuteParameter().parse("2024-02-13T19H30")
    assert value == datetime.datetime(2024, 2, 13, 19, 30)


def test_date_minute_parameter_interval_counts_minutes():
    param = trun.DateMinuteParameter(interval=15)
    assert param.normalize(datetime.datetime(2024, 2, 13, 19, 44)) == datetime.datetime(2024, 2, 13, 19, 30)


def test_date_second_parameter_round_trips():
    param = trun.DateSecondParameter()
    assert param.parse("2024-02-13T193005") == datetime.datetime(2024, 2, 13, 19, 30, 5)
    assert param.serialize(datetime.datetime(2024, 2, 13, 19, 30, 5)) == "2024-02-13T193005"


def test_date_second_parameter_rejects_hour_only_form():
    with pytest.raises(ParameterParseError, match="YYYY-MM-DDTHHMMSS"):
        trun.DateSecondParameter().parse("2024-02-13T19")


@pytest.mark.parametrize("text, expected", [
    ("2024", date_interval.Year(2024)),
    ("2024-02", date_interval.Month(2024, 2)),
    ("2024-W07", date_interval.Week(2024, 7)),
    ("2024-02-13", date_interval.Date(2024, 2, 13)),
    ("2024-02-01-2024-02-15", date_interval.Custom(datetime.date(2024, 2, 1), datetime.date(2024, 2, 15))),
])
def test_date_interval_parameter_parses_every_interval_form(text, expected):
    param = trun.DateIntervalParameter()
    assert param.parse(text) == expected
    assert param.serialize(expected) == text


def test_date_interval_parameter_rejects_unknown_form():
    with pytest.raises(ParameterParseError, match="a date interval"):
        trun.DateIntervalParameter().parse("last week")


def test_date_interval_parameter_rejects_impossible_date():
    with pytest.raises(ParameterParseError, match="2024-02-30"):
        trun.DateIntervalParameter().parse("2024-02-30")


@pytest.mark.parametrize("text, expected", [
    ("90", datetime.timedelta(seconds=90)),
    ("1.5", datetime.timedelta(seconds=1.5)),
    ("P2W", datetime.timedelta(weeks=2)),
    ("P1DT2H30M", datetime.timedelta(days=1, hours=2, minutes=30)),
    ("PT45S", datetime.timedelta(seconds=45)),
    ("1 w 2 d 3 h 4 m 5 s", datetime.timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
    ("2 days 3 hours", datetime.timedelta(days=2, hours=3)),
    ("1 week", datetime.timedelta(weeks=1)),
    ("10 minutes", datetime.timedelta(minutes=10)),
])
def test_time_delta_parameter_parses_each_form(text, expected):
    assert trun.TimeDeltaParameter().parse(text) == expected


def test_time_delta_parameter_serializes_in_unit_form_that_parses_back():
    param = trun.TimeDeltaParameter()
    value = datetime.timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)
    assert param.serialize(value) == "1 w 2 d 3 h 4 m 5 s"
    assert param.parse(param.serialize(value)) == value


@pytest.mark.parametrize("text", ["soon", "3 h 2 d", "P", "", "1 w garbage"])
def test_time_delta_parameter_rejects_unreadable_text(text):
    with pytest.raises(ParameterParseError, match="a time delta"):
        trun.TimeDeltaParameter().parse(text)


def test_time_delta_parameter_reads_a_number_given_to_the_constructor_as_seconds():
    step_cls = make_step(wait=trun.TimeDeltaParameter())
    assert step_cls(wait=90).wait == datetime.timedelta(seconds=90)


def test_time_delta_parameter_parses_a_string_given_to_the_constructor():
    assert trun.TimeDeltaParameter().normalize("P1D") == datetime.timedelta(days=1)


# --------------------------------------------------------------------------- steps, enums, choices


def test_step_parameter_parses_family_to_class_and_serializes_back():
    target_cls = make_step("Target")
    param = trun.StepParameter()
    assert param.parse(target_cls.get_step_family()) is target_cls
    assert param.serialize(target_cls) == target_cls.get_step_family()


def test_step_parameter_rejects_unknown_family():
    with pytest.raises(ParameterParseError, match="the family name of a registered step, got 'NoSuchStepZz'"):
        trun.StepParameter().parse("NoSuchStepZz")


def test_step_parameter_value_can_be_instantiated_by_the_step():
    target_cls = make_step("Upstream")
    holder = make_step(upstream=trun.StepParameter())
    with CmdlineParser.global_instance([holder.get_step_family(), "--upstream", target_cls.get_step_family()]) as cp:
        assert isinstance(cp.get_step_obj().upstream(), target_cls)


def test_enum_parameter_parses_member_name():
    assert trun.EnumParameter(enum=Color).parse("GREEN") is Color.GREEN
    assert trun.EnumParameter(enum=Color).serialize(Color.BLUE) == "BLUE"


def test_enum_parameter_suggests_member_for_wrong_case():
    with pytest.raises(ParameterParseError, match="one of RED, GREEN, BLUE, got 'green'. Did you mean 'GREEN'"):
        trun.EnumParameter(enum=Color).parse("green")


def test_enum_parameter_requires_enum():
    with pytest.raises(ParameterException, match="An enum class must be specified"):
        trun.EnumParameter()


def test_enum_list_parameter_parses_comma_separated_names():
    param = trun.EnumListParameter(enum=Color)
    assert param.parse("RED,BLUE") == (Color.RED, Color.BLUE)
    assert param.serialize((Color.RED, Color.BLUE)) == "RED,BLUE"


def test_enum_list_parameter_reads_empty_string_as_empty_tuple():
    assert trun.EnumListParameter(enum=Color).parse("") == ()


def test_enum_list_parameter_rejects_unknown_name():
    with pytest.raises(ParameterParseError, match="Did you mean 'BLUE'"):
        trun.EnumListParameter(enum=Color).parse("RED,BLEU")


def test_choice_parameter_accepts_a_choice_and_converts_var_type():
    assert trun.ChoiceParameter(choices=["a", "b"]).parse("b") == "b"
    assert trun.ChoiceParameter(var_type=int, choices=[1, 2]).parse("2") == 2


def test_choice_parameter_rejects_other_value_with_suggestion():
    with pytest.raises(ParameterParseError, match="one of daily, weekly, got 'dayly'. Did you mean 'daily'"):
        trun.ChoiceParameter(choices=["daily", "weekly"]).parse("dayly")


def test_choice_parameter_appends_choices_to_description():
    assert trun.ChoiceParameter(choices=["x", "y"], description="Mode.").description == "Mode. Choices: {x, y}"


def test_choice_parameter_requires_choices():
    with pytest.raises(ParameterException, match="requires choices="):
        trun.ChoiceParameter()


def test_choice_parameter_requires_choices_of_var_type():
    with pytest.raises(ParameterException, match="must all be of var_type int; '2' is a str"):
        trun.ChoiceParameter(var_type=int, choices=[1, "2"])


def test_choice_parameter_checks_constructor_values():
    step_cls = make_step(mode=trun.ChoiceParameter(choices=["a", "b"]))
    with pytest.raises(ValueError, match="one of a, b, got 'c'"):
        step_cls(mode="c")


def test_choice_list_parameter_parses_and_serializes_comma_separated_choices():
    param = trun.ChoiceListParameter(choices=["a", "b", "c"])
    assert param.parse("a,c") == ("a", "c")
    assert param.parse("") == ()
    assert param.serialize(("a", "c")) == "a,c"


def test_choice_list_parameter_rejects_unknown_choice():
    with pytest.raises(ParameterParseError, match="got 'd'"):
        trun.ChoiceListParameter(choices=["a", "b"]).parse("a,d")


def test_choice_list_parameter_normalizes_list_to_tuple():
    assert trun.ChoiceListParameter(choices=["a", "b"]).normalize(["b", "a"]) == ("b", "a")


# --------------------------------------------------------------------------- JSON structures and paths


def test_dict_parameter_parses_json_object_into_frozen_ordered_dict():
    value = trun.DictParameter().parse('{"b": 1, "a": [1, {"c": 2}]}')
    assert isinstance(value, FrozenOrderedDict)
    assert list(value) == ["b", "a"]
    assert value["a"] == (1, {"c": 2})
    hash(value)


def test_dict_parameter_serializes_to_json_in_order():
    param = trun.DictParameter()
    assert param.serialize(param.normalize({"b": 1, "a": [1, 2]})) == '{"b": 1, "a": [1, 2]}'


def test_dict_parameter_normalize_freezes_plain_dict():
    value = trun.DictParameter().normalize({"a": [1, 2]})
    assert value == {"a": (1, 2)}
    hash(value)


def test_dict_parameter_passes_non_string_through():
    assert trun.DictParameter().parse({"a": 1}) == {"a": 1}


def test_dict_parameter_rejects_invalid_json():
    with pytest.raises(ParameterParseError, match="a JSON object, got '{a: 1}' \\(invalid JSON"):
        trun.DictParameter().parse("{a: 1}")


def test_dict_parameter_rejects_json_that_is_not_an_object():
    with pytest.raises(ParameterParseError, match="JSON list is not an object"):
        trun.DictParameter().parse("[1, 2]")


SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def test_dict_parameter_schema_accepts_valid_value():
    pytest.importorskip("jsonschema")
    assert trun.DictParameter(schema=SCHEMA).normalize({"n": 1}) == {"n": 1}


def test_dict_parameter_schema_rejects_invalid_value():
    jsonschema = pytest.importorskip("jsonschema")
    with pytest.raises(jsonschema.ValidationError):
        trun.DictParameter(schema=SCHEMA).normalize({"n": "one"})


def test_dict_parameter_schema_error_from_config_names_step_and_parameter():
    pytest.importorskip("jsonschema")
    step_cls = make_step(opts=trun.DictParameter(schema=SCHEMA))
    get_config().set(step_cls.get_step_family(), "opts", '{"n": "one"}')
    family = step_cls.get_step_family()
    with pytest.raises(ParameterParseError,
                       match=rf"^{family}: configuration \[{family}\] opts expects a JSON object, got .*"
                             r"\('one' is not of type 'integer'\)"):
        step_cls()


def test_dict_parameter_schema_can_be_a_validator_object():
    class MustHaveKey:
        def validate(self, instance):
            if "key" not in instance:
                raise ValueError("missing key")

    param = trun.DictParameter(schema=MustHaveKey())
    assert param.normalize({"key": 1}) == {"key": 1}
    with pytest.raises(ValueError, match="missing key"):
        param.normalize({})


def test_dict_parameter_rejects_schema_of_wrong_type():
    with pytest.raises(ParameterException, match="schema must be a JSON-schema dict or a validator object"):
        trun.DictParameter(schema="object")


def test_list_parameter_parses_json_list_into_tuple():
    assert trun.ListParameter().parse("[1, [2, 3]]") == (1, (2, 3))


def test_list_parameter_serializes_to_json():
    assert trun.ListParameter().serialize((1, (2, "x"))) == '[1, [2, "x"]]'


def test_list_parameter_normalize_freezes_lists():
    assert trun.ListParameter().normalize([1, [2]]) == (1, (2,))


def test_list_parameter_rejects_json_object():
    with pytest.raises(ParameterParseError, match="a JSON list, got '{}'"):
        trun.ListParameter().parse("{}")


def test_list_parameter_schema_rejects_invalid_item():
    jsonschema = pytest.importorskip("jsonschema")
    param = trun.ListParameter(schema={"type": "array", "items": {"type": "integer"}})
    assert param.normalize([1, 2]) == (1, 2)
    with pytest.raises(jsonschema.ValidationError):
        param.normalize([1, "x"])


def test_tuple_parameter_parses_json_list_of_lists():
    assert trun.TupleParameter().parse("[[1, 2], [3, 4]]") == ((1, 2), (3, 4))


def test_tuple_parameter_parses_python_tuple_literal():
    assert trun.TupleParameter().parse("((1, 2), (3, 4))") == ((1, 2), (3, 4))
    assert trun.TupleParameter().parse("('a', 'b')") == ("a", "b")


def test_tuple_parameter_rejects_a_bare_string():
    with pytest.raises(ParameterParseError, match="a str is not a tuple"):
        trun.TupleParameter().parse('"abcd"')


def test_tuple_parameter_serializes_to_json():
    assert trun.TupleParameter().serialize(((1, 2), (3, 4))) == "[[1, 2], [3, 4]]"


def test_path_parameter_normalizes_to_path():
    assert trun.PathParameter().normalize("a/b") == Path("a/b")
    assert trun.PathParameter().serialize(Path("a/b")) == "a/b"


def test_path_parameter_absolute_resolves_against_working_directory(tmp_path):
    assert trun.PathParameter(absolute=True).normalize("x.txt") == tmp_path / "x.txt"


def test_path_parameter_exists_rejects_missing_path(tmp_path):
    (tmp_path / "there.txt").write_text("x")
    param = trun.PathParameter(exists=True)
    assert param.normalize(tmp_path / "there.txt") == tmp_path / "there.txt"
    with pytest.raises(ValueError, match="does not exist"):
        param.normalize(tmp_path / "missing.txt")


# --------------------------------------------------------------------------- value lookup


def test_constructor_value_wins_over_everything():
    step_cls = make_step(n=trun.IntParameter(default=1))
    family = step_cls.get_step_family()
    get_config().set(family, "n", "2")
    with CmdlineParser.global_instance([family, f"--{family}-n", "3"]):
        assert step_cls(n=4).n == 4


def test_class_flag_wins_over_config_and_default():
    step_cls = make_step(n=trun.IntParameter(default=1))
    family = step_cls.get_step_family()
    get_config().set(family, "n", "2")
    with CmdlineParser.global_instance([family, f"--{family}-n", "3"]):
        assert step_cls().n == 3


def test_class_flag_applies_only_while_the_parser_is_active():
    step_cls = make_step(n=trun.IntParameter(default=1))
    family = step_cls.get_step_family()
    with CmdlineParser.global_instance([family, f"--{family}-n", "3"]):
        pass
    assert step_cls().n == 1


def test_config_wins_over_default():
    step_cls = make_step(n=trun.IntParameter(default=1))
    get_config().set(step_cls.get_step_family(), "n", "2")
    assert step_cls().n == 2


def test_config_option_with_dashes_is_found(tmp_path):
    step_cls = make_step(max_rows=trun.IntParameter(default=1))
    config_file = tmp_path / "dashes.cfg"
    config_file.write_text(f"[{step_cls.get_step_family()}]\nmax-rows = 5\n")
    add_config_path(str(config_file))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert step_cls().max_rows == 5


def test_config_path_is_used_after_family_section_with_deprecation_warning():
    step_cls = make_step(n=trun.IntParameter(default=1, config_path={"section": "legacy", "name": "count"}))
    get_config().set("legacy", "count", "9")
    with pytest.warns(DeprecationWarning, match=r"\[legacy\] count is deprecated"):
        assert step_cls().n == 9
    get_config().set(step_cls.get_step_family(), "n", "2")
    assert step_cls().n == 2


def test_default_is_used_when_nothing_else_is_set():
    assert make_step(n=trun.IntParameter(default=1))().n == 1


def test_missing_value_raises_missing_parameter_exception():
    step_cls = make_step(n=trun.IntParameter())
    with pytest.raises(MissingParameterException, match="requires the 'n' parameter"):
        step_cls()


def test_step_value_raises_missing_parameter_exception_naming_the_ways_to_set_it():
    with pytest.raises(MissingParameterException, match=r"Fam: requires the 'n' parameter.*\[Fam\] n"):
        trun.IntParameter().step_value("Fam", "n")


def test_has_step_value_reports_whether_a_value_is_found():
    step_cls = make_step()
    family = step_cls.get_step_family()
    assert not trun.IntParameter().has_step_value(family, "n")
    assert trun.IntParameter(default=0).has_step_value(family, "n")
    get_config().set(family, "n", "5")
    assert trun.IntParameter().has_step_value(family, "n")


def test_step_value_normalizes_config_values():
    get_config().set("Weekly", "day", "2024-01-10")
    param = trun.DateParameter(interval=7, start=datetime.date(2024, 1, 1))
    assert param.step_value("Weekly", "day") == datetime.date(2024, 1, 8)


def test_step_value_normalizes_the_default():
    assert trun.ListParameter(default=[1, 2]).step_value("Fam", "ids") == (1, 2)


def test_bad_config_value_names_step_parameter_and_expected_form():
    step_cls = make_step("AggregationStep", window=trun.IntParameter())
    family = step_cls.get_step_family()
    get_config().set(family, "window", "abc")
    with pytest.raises(ParameterParseError) as info:
        step_cls()
    assert str(info.value) == f"{family}: configuration [{family}] window expects an integer, got 'abc'"


def test_bad_class_flag_value_names_step_flag_and_expected_form():
    step_cls = make_step(window=trun.IntParameter(default=1))
    family = step_cls.get_step_family()
    with pytest.raises(SystemExit) as info:
        CmdlineParser([family, f"--{family}-window", "abc"])
    assert str(info.value) == f"{family}: --{family}-window expects an integer, got 'abc'"


def test_error_raised_by_custom_parse_is_wrapped_with_step_and_parameter():
    class EvenParameter(trun.Parameter):
        expected_form = "an even number"

        def parse(self, x):
            if int(x) % 2:
                raise ValueError("odd")
            return int(x)

    step_cls = make_step(n=EvenParameter())
    get_config().set(step_cls.get_step_family(), "n", "3")
    with pytest.raises(ParameterParseError, match=r"n expects an even number, got '3' \(odd\)"):
        step_cls()


def test_unknown_constructor_argument_raises_unknown_parameter_exception():
    with pytest.raises(UnknownParameterException):
        make_step(n=trun.IntParameter(default=1))(m=2)


def test_parameter_given_twice_raises_duplicate_parameter_exception():
    with pytest.raises(DuplicateParameterException):
        make_step(n=trun.IntParameter())(1, n=2)


def test_positional_arguments_follow_declaration_order():
    family = unique("Ordered")
    step_cls = type(family, (trun.Step,), {"b": trun.IntParameter(), "a": trun.IntParameter()})
    instance = step_cls(1, 2)
    assert (instance.b, instance.a) == (1, 2)


def test_insignificant_parameter_is_left_out_of_step_id():
    step_cls = make_step(n=trun.IntParameter(), secret=trun.Parameter(significant=False))
    assert step_cls(n=1, secret="a").step_id == step_cls(n=1, secret="b").step_id


def test_typed_values_from_toml_configuration_are_accepted(tmp_path, monkeypatch):
    from trun.configuration import reset_config

    step_cls = make_step(n=trun.IntParameter(), ids=trun.ListParameter(), day=trun.DateParameter(),
                         opts=trun.DictParameter(), wait=trun.TimeDeltaParameter())
    family = step_cls.get_step_family()
    (tmp_path / "typed.toml").write_text(
        f'[{family}]\nn = 5\nids = [1, [2, 3]]\nday = 2024-02-13\nopts = {{a = 1}}\nwait = 90\n')
    monkeypatch.setenv("TRUN_CONFIG_PARSER", "toml")
    reset_config()
    add_config_path(str(tmp_path / "typed.toml"))
    instance = step_cls()
    assert instance.n == 5
    assert instance.ids == (1, (2, 3))
    assert instance.day == datetime.date(2024, 2, 13)
    assert instance.opts == {"a": 1}
    assert instance.wait == datetime.timedelta(seconds=90)
