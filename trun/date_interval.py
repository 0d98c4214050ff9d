"""Calendar intervals — a day, an ISO week, a month, a year or a custom range — as step parameters.

A :class:`DateInterval` is the half-open range ``[date_a, date_b)``: it holds
``date_a`` and every following day up to, but excluding, ``date_b``. Subclasses
name the usual calendar units and know their string form, which is what
:class:`~trun.parameter.DateIntervalParameter` reads on the command line:

==========  =========================  ==============================
Class       String form                Example
==========  =========================  ==============================
``Year``    ``YYYY``                   ``2024``
``Month``   ``YYYY-MM``                ``2024-02``
``Week``    ``YYYY-Www`` (ISO week)    ``2024-W07``
``Date``    ``YYYY-MM-DD``             ``2024-02-13``
``Custom``  ``YYYY-MM-DD-YYYY-MM-DD``  ``2024-02-01-2024-02-15``
==========  =========================  ==============================

Hazards:

* ``Custom``'s second date is *excluded*: ``2024-02-01-2024-02-15`` ends on
  the 14th.
* Intervals compare only with intervals of the same class; ``<`` between a
  ``Month`` and a ``Week`` raises ``TypeError`` (``==`` is simply ``False``).
* ``dates()`` builds a list; a ``Custom`` spanning centuries is a long list.
"""
from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["DateInterval", "Date", "Week", "Month", "Year", "Custom"]

_ONE_DAY = datetime.timedelta(days=1)


class DateInterval:
    """The half-open range of days ``[date_a, date_b)``; base class of the calendar intervals.

    Subclasses implement :meth:`to_string`, :meth:`from_date` and :meth:`parse`.
    """

    def __init__(self, date_a: datetime.date, date_b: datetime.date) -> None:
        self.date_a = date_a
        self.date_b = date_b

    def dates(self) -> list[datetime.date]:
        """Every day of the interval, in order."""
        days = (self.date_b - self.date_a).days
        return [self.date_a + datetime.timedelta(days=offset) for offset in range(days)]

    def hours(self) -> Iterator[datetime.datetime]:
        """Every hour of every day of the interval, as naive datetimes."""
        for date in self.dates():
            for hour in range(24):
                yield datetime.datetime.combine(date, datetime.time(hour))

    def prev(self) -> DateInterval:
        """The interval of the same kind just before this one."""
        return self.from_date(self.date_a - _ONE_DAY)

    def next(self) -> DateInterval:
        """The interval of the same kind just after this one."""
        return self.from_date(self.date_b)

    def to_string(self) -> str:
        """The string form, which :meth:`parse` reads back."""
        raise NotImplementedError(f"{type(self).__name__} does not define to_string()")

    @classmethod
    def from_date(cls, date: datetime.date) -> DateInterval:
        """The interval of this kind that contains ``date``."""
        raise NotImplementedError(f"{cls.__name__} cannot be built from a single date")

    @classmethod
    def parse(cls, text: str) -> DateInterval | None:
        """The interval written as ``text``, or ``None`` if ``text`` is not in this class's form."""
        raise NotImplementedError(f"{cls.__name__} does not define parse()")

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return self.to_string()

    def __contains__(self, date: object) -> bool:
        if isinstance(date, datetime.datetime):
            date = date.date()
        if not isinstance(date, datetime.date):
            return False
        return self.date_a <= date < self.date_b

    def __iter__(self) -> Iterator[datetime.date]:
        return iter(self.dates())

    def __hash__(self) -> int:
        return hash(repr(self))

    def _key_against(self, other: Any) -> tuple[tuple[datetime.date, datetime.date], tuple[datetime.date, datetime.date]]:
        if not isinstance(self, type(other)):
            raise TypeError(
                f"cannot compare {type(self).__name__} {self} with {type(other).__name__} {other}: "
                "date intervals only compare with intervals of the same kind")
        return (self.date_a, self.date_b), (other.date_a, other.date_b)

    def __eq__(self, other: object) -> bool:
        if not isinstance(self, type(other)):
            return False
        return (self.date_a, self.date_b) == (other.date_a, other.date_b)  # type: ignore[attr-defined]

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __lt__(self, other: DateInterval) -> bool:
        mine, theirs = self._key_against(other)
        return mine < theirs

    def __le__(self, other: DateInterval) -> bool:
        mine, theirs = self._key_against(other)
        return mine <= theirs

    def __gt__(self, other: DateInterval) -> bool:
        mine, theirs = self._key_against(other)
        return mine > theirs

    def __ge__(self, other: DateInterval) -> bool:
        mine, theirs = self._key_against(other)
        return mine >= theirs


class Date(DateInterval):
    """One day, written ``YYYY-MM-DD``."""

    _FORM = re.compile(r"(\d{4})-(\d{2})-(\d{2})")

    def __init__(self, y: int, m: int, d: int) -> None:
        day = datetime.date(y, m, d)
        super().__init__(day, day + _ONE_DAY)

    def to_string(self) -> str:
        return self.date_a.strftime("%Y-%m-%d")

    @classmethod
    def from_date(cls, date: datetime.date) -> Date:
        return cls(date.year, date.month, date.day)

    @classmethod
    def parse(cls, text: str) -> Date | None:
        match = cls._FORM.fullmatch(text)
        return cls(*map(int, match.groups())) if match else None


class Week(DateInterval):
    """One ISO-8601 week, Monday to Sunday, written ``YYYY-Www`` (e.g. ``2024-W07``).

    ``y`` is the ISO year, which differs from the calendar year around New Year.
    """

    _FORM = re.compile(r"(\d{4})-W(\d{2})")

    def __init__(self, y: int, w: int) -> None:
        try:
            monday = datetime.date.fromisocalendar(y, w, 1)
        except ValueError:
            raise ValueError(f"Invalid week: ISO year {y} has no week {w}") from None
        super().__init__(monday, monday + datetime.timedelta(days=7))

    def to_string(self) -> str:
        year, week, _ = self.date_a.isocalendar()
        return "%d-W%02d" % (year, week)

    @classmethod
    def from_date(cls, date: datetime.date) -> Week:
        year, week, _ = date.isocalendar()
        return cls(year, week)

    @classmethod
    def parse(cls, text: str) -> Week | None:
        match = cls._FORM.fullmatch(text)
        return cls(*map(int, match.groups())) if match else None


class Month(DateInterval):
    """One calendar month, written ``YYYY-MM``."""

    _FORM = re.compile(r"(\d{4})-(\d{2})")

    def __init__(self, y: int, m: int) -> None:
        first = datetime.date(y, m, 1)
        following = datetime.date(y + m // 12, m % 12 + 1, 1)
        super().__init__(first, following)

    def to_string(self) -> str:
        return self.date_a.strftime("%Y-%m")

    @classmethod
    def from_date(cls, date: datetime.date) -> Month:
        return cls(date.year, date.month)

    @classmethod
    def parse(cls, text: str) -> Month | None:
        match = cls._FORM.fullmatch(text)
        return cls(*map(int, match.groups())) if match else None


class Year(DateInterval):
    """One calendar year, written ``YYYY``."""

    _FORM = re.compile(r"(\d{4})")

    def __init__(self, y: int) -> None:
        super().__init__(datetime.date(y, 1, 1), datetime.date(y + 1, 1, 1))

    def to_string(self) -> str:
        return self.date_a.strftime("%Y")

    @classmethod
    def from_date(cls, date: datetime.date) -> Year:
        return cls(date.year)

    @classmethod
    def parse(cls, text: str) -> Year | None:
        match = cls._FORM.fullmatch(text)
        return cls(int(match.group(1))) if match else None


class Custom(DateInterval):
    """Any range of days, written ``YYYY-MM-DD-YYYY-MM-DD``; the second date is excluded.

    It has no natural neighbours, so :meth:`prev` and :meth:`next` raise
    ``NotImplementedError``.
    """

    _FORM = re.compile(r"(\d{4})-(\d{2})-(\d{2})-(\d{4})-(\d{2})-(\d{2})")

    def to_string(self) -> str:
        return f"{self.date_a:%Y-%m-%d}-{self.date_b:%Y-%m-%d}"

    @classmethod
    def parse(cls, text: str) -> Custom | None:
        match = cls._FORM.fullmatch(text)
        if not match:
            return None
        numbers = list(map(int, match.groups()))
        return cls(datetime.date(*numbers[:3]), datetime.date(*numbers[3:]))
