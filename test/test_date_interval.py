"""trun.date_interval: days, ISO weeks, months, years and custom ranges."""
from __future__ import annotations

import datetime

import pytest

from trun import date_interval as di


def d(y: int, m: int, day: int) -> datetime.date:
    return datetime.date(y, m, day)


def test_date_covers_one_day():
    assert di.Date(2024, 2, 13).dates() == [d(2024, 2, 13)]


def test_week_starts_on_iso_monday_and_has_seven_days():
    week = di.Week(2024, 7)
    assert week.date_a == d(2024, 2, 12)
    assert week.date_b == d(2024, 2, 19)
    assert len(week.dates()) == 7


def test_week_one_may_start_in_the_previous_calendar_year():
    assert di.Week(2020, 1).date_a == d(2019, 12, 30)


def test_week_rejects_a_week_the_year_does_not_have():
    with pytest.raises(ValueError, match="no week 54"):
        di.Week(2024, 54)


def test_month_ends_before_the_first_of_next_month():
    assert di.Month(2024, 2).dates()[-1] == d(2024, 2, 29)
    assert di.Month(2024, 12).date_b == d(2025, 1, 1)


def test_year_covers_every_day_of_the_year():
    assert len(di.Year(2024).dates()) == 366


def test_custom_excludes_its_second_date():
    custom = di.Custom(d(2024, 2, 1), d(2024, 2, 15))
    assert custom.dates()[-1] == d(2024, 2, 14)


@pytest.mark.parametrize("interval, text", [
    (di.Date(2024, 2, 3), "2024-02-03"),
    (di.Week(2024, 7), "2024-W07"),
    (di.Month(2024, 2), "2024-02"),
    (di.Year(2024), "2024"),
    (di.Custom(d(2024, 2, 1), d(2024, 3, 1)), "2024-02-01-2024-03-01"),
])
def test_to_string_and_parse_round_trip(interval, text):
    assert interval.to_string() == text
    assert str(interval) == text
    assert type(interval).parse(text) == interval


@pytest.mark.parametrize("cls, text", [
    (di.Date, "2024-02"), (di.Week, "2024-07"), (di.Month, "2024"), (di.Year, "24"),
    (di.Custom, "2024-02-01"), (di.Date, "2024-02-03x"),
])
def test_parse_returns_none_for_another_form(cls, text):
    assert cls.parse(text) is None


def test_hours_yields_24_hours_per_day():
    hours = list(di.Date(2024, 2, 13).hours())
    assert len(hours) == 24
    assert hours[0] == datetime.datetime(2024, 2, 13, 0)
    assert hours[-1] == datetime.datetime(2024, 2, 13, 23)


@pytest.mark.parametrize("interval, before, after", [
    (di.Date(2024, 3, 1), di.Date(2024, 2, 29), di.Date(2024, 3, 2)),
    (di.Week(2024, 1), di.Week(2023, 52), di.Week(2024, 2)),
    (di.Month(2024, 1), di.Month(2023, 12), di.Month(2024, 2)),
    (di.Year(2024), di.Year(2023), di.Year(2025)),
])
def test_prev_and_next_give_neighbouring_intervals_of_the_same_kind(interval, before, after):
    assert interval.prev() == before
    assert interval.next() == after


def test_custom_has_no_next():
    with pytest.raises(NotImplementedError):
        di.Custom(d(2024, 1, 1), d(2024, 1, 5)).next()


def test_from_date_finds_the_interval_containing_a_date():
    assert di.Month.from_date(d(2024, 2, 13)) == di.Month(2024, 2)
    assert di.Week.from_date(d(2024, 2, 13)) == di.Week(2024, 7)
    assert di.Year.from_date(d(2024, 2, 13)) == di.Year(2024)
    assert di.Date.from_date(d(2024, 2, 13)) == di.Date(2024, 2, 13)


def test_in_tests_whether_a_date_lies_inside():
    month = di.Month(2024, 2)
    assert d(2024, 2, 29) in month
    assert d(2024, 3, 1) not in month
    assert datetime.datetime(2024, 2, 10, 12) in month


def test_iteration_yields_the_dates():
    assert list(di.Custom(d(2024, 1, 30), d(2024, 2, 2))) == [d(2024, 1, 30), d(2024, 1, 31), d(2024, 2, 1)]


def test_intervals_of_one_kind_are_ordered():
    assert di.Month(2024, 1) < di.Month(2024, 2) <= di.Month(2024, 2)
    assert di.Month(2024, 3) > di.Month(2024, 2) >= di.Month(2024, 2)
    assert sorted([di.Year(2025), di.Year(2023)]) == [di.Year(2023), di.Year(2025)]


def test_ordering_intervals_of_different_kinds_raises_type_error():
    with pytest.raises(TypeError, match="same kind"):
        _ = di.Month(2024, 1) < di.Week(2024, 1)


def test_intervals_of_different_kinds_are_not_equal():
    assert di.Date(2024, 1, 1) != di.Custom(d(2024, 1, 1), d(2024, 1, 2))


def test_equal_intervals_hash_alike_and_work_as_dict_keys():
    counts = {di.Month(2024, 2): 1}
    assert counts[di.Month(2024, 2)] == 1
