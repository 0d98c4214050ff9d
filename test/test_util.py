"""Tests of trun.util: parameter inheritance decorators and walking back in time."""
from __future__ import annotations

import datetime

import pytest

import trun
from trun.util import common_params, copies, delegates, get_previous_completed, inherits, previous, requires


def make_parent():
    class Parent(trun.Step):
        date = trun.DateParameter()
        size = trun.IntParameter(default=1)

    return Parent


DAY = datetime.date(2024, 3, 1)


# -- inherits -------------------------------------------------------------------

def test_inherits_copies_parameters_of_the_parent():
    Parent = make_parent()

    @inherits(Parent)
    class Child(trun.Step):
        extra = trun.Parameter(default="e")

    assert Child.get_param_names() == ["date", "size", "extra"]
    assert Child(date=DAY).size == 1


def test_inherits_keeps_parameters_the_child_already_defines():
    Parent = make_parent()

    @inherits(Parent)
    class Child(trun.Step):
        size = trun.IntParameter(default=9)

    assert Child(date=DAY).size == 9


def test_clone_parent_builds_the_parent_with_shared_values():
    Parent = make_parent()

    @inherits(Parent)
    class Child(trun.Step):
        pass

    child = Child(date=DAY, size=4)
    assert child.clone_parent() is Parent(date=DAY, size=4)
    assert child.clone_parent(size=5) is Parent(date=DAY, size=5)


def test_clone_parents_of_several_positional_parents_is_a_list():
    Parent = make_parent()

    class Other(trun.Step):
        size = trun.IntParameter()

    @inherits(Parent, Other)
    class Child(trun.Step):
        pass

    assert Child(date=DAY).clone_parents() == [Parent(date=DAY), Other(size=1)]


def test_named_parents_give_clone_parents_as_dict():
    Parent = make_parent()

    @inherits(src=Parent)
    class Child(trun.Step):
        pass

    assert Child(date=DAY).clone_parents() == {"src": Parent(date=DAY)}
    assert not hasattr(Child, "clone_parent")


def test_inherits_without_steps_is_an_error():
    with pytest.raises(TypeError, match="at least one step class"):
        inherits()


def test_inherits_mixing_positional_and_named_is_an_error():
    Parent = make_parent()
    with pytest.raises(TypeError, match="not both"):
        inherits(Parent, other=Parent)


def test_inherits_rejects_an_instance_instead_of_a_class():
    Parent = make_parent()
    with pytest.raises(TypeError, match="not an instance"):
        inherits(Parent(date=DAY))


# -- requires -------------------------------------------------------------------

def test_requires_single_parent_returns_the_parent_step():
    Parent = make_parent()

    @requires(Parent)
    class Child(trun.Step):
        pass

    assert Child(date=DAY, size=2).requires() is Parent(date=DAY, size=2)


def test_requires_several_parents_returns_a_list():
    Parent = make_parent()

    class Second(trun.Step):
        date = trun.DateParameter()

    @requires(Parent, Second)
    class Child(trun.Step):
        pass

    assert Child(date=DAY).requires() == [Parent(date=DAY), Second(date=DAY)]


def test_requires_named_parents_returns_a_dict():
    Parent = make_parent()

    @requires(first=Parent)
    class Child(trun.Step):
        pass

    assert Child(date=DAY).requires() == {"first": Parent(date=DAY)}


# -- copies ---------------------------------------------------------------------

def test_copies_runs_by_copying_input_lines_to_output(tmp_path):
    class Source(trun.ExternalStep):
        def output(self):
            return trun.LocalTarget(str(tmp_path / "in.txt"))

    @copies(Source)
    class Copy(trun.Step):
        def output(self):
            return trun.LocalTarget(str(tmp_path / "out.txt"))

    (tmp_path / "in.txt").write_text("one\ntwo\n")
    Copy().run()
    assert (tmp_path / "out.txt").read_text() == "one\ntwo\n"
    assert Copy.__name__ == "Copy" and Copy().requires() is Source()


# -- delegates ------------------------------------------------------------------

def test_delegates_runs_substeps_then_own_run_and_adds_their_deps():
    log = []

    class Dep(trun.Step):
        pass

    class Sub(trun.Step):
        def requires(self):
            return Dep()

        def run(self):
            log.append("sub")

    @delegates
    class Boss(trun.Step):
        def substeps(self):
            return [Sub()]

        def run(self):
            log.append("boss")

    assert Boss().deps() == [Dep()]
    Boss().run()
    assert log == ["sub", "boss"]


def test_delegates_without_substeps_names_the_missing_method():
    class Lazy(trun.Step):
        pass

    with pytest.raises(AttributeError, match="substeps"):
        delegates(Lazy)


# -- common_params --------------------------------------------------------------

def test_common_params_returns_values_of_shared_parameters():
    Parent = make_parent()

    class Narrow(trun.Step):
        size = trun.IntParameter()
        other = trun.Parameter(default="o")

    assert common_params(Parent(date=DAY, size=3), Narrow) == {"size": 3}


def test_common_params_rejects_an_instance_as_class():
    Parent = make_parent()
    with pytest.raises(TypeError, match="step class"):
        common_params(Parent(date=DAY), Parent(date=DAY))


# -- previous -------------------------------------------------------------------

def test_previous_of_daily_step_is_one_day_earlier():
    Parent = make_parent()
    assert previous(Parent(date=DAY, size=2)) is Parent(date=datetime.date(2024, 2, 29), size=2)


def test_previous_of_hourly_step_is_one_hour_earlier():
    class Hourly(trun.Step):
        hour = trun.DateHourParameter()

    assert previous(Hourly(hour=datetime.datetime(2024, 1, 1, 0))).hour == datetime.datetime(2023, 12, 31, 23)


def test_previous_of_minute_and_second_steps():
    class Minutely(trun.Step):
        when = trun.DateMinuteParameter()

    class Secondly(trun.Step):
        when = trun.DateSecondParameter()

    start = datetime.datetime(2024, 1, 1, 10, 0, 0)
    assert previous(Minutely(when=start)).when == datetime.datetime(2024, 1, 1, 9, 59)
    assert previous(Secondly(when=start)).when == datetime.datetime(2024, 1, 1, 9, 59, 59)


def test_previous_of_monthly_step_is_previous_month():
    class Monthly(trun.Step):
        month = trun.MonthParameter()

    assert previous(Monthly(month=datetime.date(2024, 3, 1))).month == datetime.date(2024, 2, 1)


def test_previous_of_interval_step_is_previous_interval():
    from trun.date_interval import Week

    class Weekly(trun.Step):
        week = trun.DateIntervalParameter()

    week = Week(2024, 10)
    assert previous(Weekly(week=week)).week == week.prev()


def test_previous_without_date_parameter_is_not_implemented():
    class Plain(trun.Step):
        n = trun.IntParameter()

    with pytest.raises(NotImplementedError, match="no date-like parameter"):
        previous(Plain(n=1))


def test_previous_with_two_date_parameters_is_not_implemented():
    class TwoDates(trun.Step):
        start = trun.DateParameter()
        end = trun.DateParameter()

    with pytest.raises(NotImplementedError, match="several date-like parameters"):
        previous(TwoDates(start=DAY, end=DAY))


def test_get_previous_completed_finds_nearest_complete_earlier_step(tmp_path):
    class Daily(trun.Step):
        date = trun.DateParameter()

        def output(self):
            return trun.LocalTarget(str(tmp_path / f"{self.date}.txt"))

    (tmp_path / "2024-02-27.txt").write_text("")
    found = get_previous_completed(Daily(date=DAY), max_steps=5)
    assert found is Daily(date=datetime.date(2024, 2, 27))


def test_get_previous_completed_gives_none_beyond_max_steps(tmp_path):
    class Daily(trun.Step):
        date = trun.DateParameter()

        def output(self):
            return trun.LocalTarget(str(tmp_path / f"{self.date}.txt"))

    (tmp_path / "2024-02-20.txt").write_text("")
    assert get_previous_completed(Daily(date=DAY), max_steps=3) is None
