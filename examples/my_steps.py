"""The seed example: aggregate daily data dumps once they arrive.

``DataDump`` is data that some other system drops into ``$TRUN_EXAMPLE_DIR/dump``
(default ``./data/dump``), one file a day.  ``AggregationStep`` sums the last
``window`` dumps; ``RunAll`` asks for 3-, 7- and 14-day aggregations of the
last 10 days.  Run it every minute from cron; it only does work once the
dumps are there, and never twice::

    * * * * * cd /srv/etl && trun --module my_steps RunAll

Make some dumps to play with: ``python my_steps.py make-dumps``.
"""
from __future__ import annotations

import datetime
import os
import sys

import trun


def data_dir() -> str:
    return os.environ.get("TRUN_EXAMPLE_DIR", "data")


class DataDump(trun.ExternalStep):
    """A daily dump written by another system; trun only checks that it exists."""

    date = trun.DateParameter()

    def output(self):
        return trun.LocalTarget(os.path.join(data_dir(), "dump", self.date.strftime("%Y-%m-%d.txt")))


class AggregationStep(trun.Step):
    """Sum of the numbers in the ``window`` dumps ending on ``date``."""

    date = trun.DateParameter()
    window = trun.IntParameter()

    def requires(self):
        return [DataDump(self.date - datetime.timedelta(i)) for i in range(self.window)]

    def run(self):
        total = 0
        for dump in self.input():
            with dump.open("r") as f:
                total += sum(int(line) for line in f if line.strip())
        with self.output().open("w") as out:
            out.write(f"{total}\n")

    def output(self):
        return trun.LocalTarget(os.path.join(data_dir(), "aggregated", f"{self.date}-{self.window}.txt"))


class RunAll(trun.WrapperStep):
    """Dummy step that triggers the aggregations of the last 10 days."""

    date = trun.DateParameter(default=datetime.date.today())

    def requires(self):
        for window in [3, 7, 14]:
            for d in range(10):  # aggregations for the past 10 days
                yield AggregationStep(self.date - datetime.timedelta(d), window)


def make_dumps(today: datetime.date, days: int = 23) -> None:
    """Write the dumps RunAll needs (23 days back covers a 14-day window 10 days ago)."""
    for i in range(days):
        day = today - datetime.timedelta(i)
        with DataDump(day).output().open("w") as f:
            f.write(f"{day.day}\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["make-dumps"]:
        make_dumps(datetime.date.today())
    else:
        print(__doc__)
