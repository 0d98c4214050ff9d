"""Tests of trun.tools.range: the Range* steps, their windows, events and completeness checks."""
from __future__ import annotations

import calendar
import datetime
import fnmatch
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import trun
from trun.mock import MockFileSystem, MockTarget
from trun.parameter import ParameterException
from trun.step import MixinNaiveBulkComplete
from trun.target import FileSystem, FileSystemTarget
from trun.tools.range import (
    RangeByMinutes,
    RangeByMinutesBase,
    RangeDaily,
    RangeDailyBase,
    RangeEvent,
    RangeHourly,
    RangeHourlyBase,
    RangeMonthly,
    infer_bulk_complete_from_fs,
    most_common,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def epoch(*args: int) -> int:
    """Seconds since the epoch of the UTC datetime ``datetime(*args)``."""
    return calendar.timegm(datetime.datetime(*args).timetuple())


def make_daily_file_step(directory: str = "daily"):
    """A daily step writing ``<directory>/YYYY-MM-DD.txt``."""

    class DailyFile(trun.Step):
        date = trun.DateParameter()

        def output(self):
            return trun.LocalTarget(os.path.join(directory, self.date.strftime("%Y-%m-%d.txt")))

        def run(self):
            with self.output().open("w") as out:
                out.write("done")

    return DailyFile


def touch(*paths: str) -> None:
    for path in paths:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        Path(path).write_text("x")


def days(*day_numbers: int, month: int = 3) -> list[datetime.date]:
    return [datetime.date(2026, month, day) for day in day_numbers]


@pytest.fixture
def range_events():
    """Records the RangeEvent events fired by any range step: ``{event: [(family, value), ...]}``."""
    recorded: dict[str, list[tuple]] = {}
    handlers = []
    for event in (RangeEvent.DELAY, RangeEvent.COMPLETE_COUNT, RangeEvent.COMPLETE_FRACTION):
        def handler(*args, _event=event):
            recorded.setdefault(_event, []).append(args)
        trun.Step.event_handler(event)(handler)
        handlers.append((event, handler))
    yield recorded
    for event, handler in handlers:
        trun.Step.remove_event_handler(event, handler)


# -- running ranges end to end ----------------------------------------------------

def test_range_daily_build_creates_only_the_missing_days():
    DailyFile = make_daily_file_step()
    touch("daily/2026-03-02.txt")
    before = os.path.getmtime("daily/2026-03-02.txt")

    ok = trun.build([RangeDaily(of=DailyFile, start=datetime.date(2026, 3, 1), stop=datetime.date(2026, 3, 5),
                                now=epoch(2026, 3, 10))], local_scheduler=True, no_progress=True)

    assert ok is True
    assert sorted(os.listdir("daily")) == ["2026-03-01.txt", "2026-03-02.txt", "2026-03-03.txt", "2026-03-04.txt"]
    assert Path("daily/2026-03-01.txt").read_text() == "done"
    assert os.path.getmtime("daily/2026-03-02.txt") == before


def test_range_is_complete_once_every_day_exists():
    DailyFile = make_daily_file_step()
    touch(*(f"daily/2026-03-0{day}.txt" for day in range(1, 5)))

    step = RangeDaily(of=DailyFile, start=datetime.date(2026, 3, 1), stop=datetime.date(2026, 3, 5),
                      now=epoch(2026, 3, 10))

    assert step.requires() == []
    assert step.complete() is True


def test_range_daily_from_the_command_line_runs_the_missing_days(tmp_path):
    (tmp_path / "cli_daily_steps.py").write_text(textwrap.dedent("""
        import trun

        class CliDailyReport(trun.Step):
            date = trun.DateParameter()
            region = trun.Parameter(default="eu")

            def output(self):
                return trun.LocalTarget(self.date.strftime("reports/%Y-%m-%d-") + self.region + ".txt")

            def run(self):
                with self.output().open("w") as out:
                    out.write(self.region)
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO_ROOT)]))
    command = [sys.executable, "-m", "trun", "--module", "cli_daily_steps", "RangeDaily",
               "--of", "CliDailyReport", "--of-params", '{"region": "us"}',
               "--start", "2026-01-01", "--stop", "2026-01-05", "--now", str(epoch(2026, 1, 20)),
               "--local-scheduler", "--no-progress", "--no-lock"]

    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "reports")) == [f"2026-01-0{day}-us.txt" for day in range(1, 5)]


def _run_range_daily_of_nothing(tmp_path, config: str, *modules: str) -> subprocess.CompletedProcess:
    (tmp_path / "trun.cfg").write_text(config)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TRUN_CONFIG_PATH=str(tmp_path / "trun.cfg"))
    module_flags = [flag for module in modules for flag in ("--module", module)]
    command = [sys.executable, "-m", "trun", *module_flags, "RangeDaily", "--of", "RangeDaily",
               "--start", "2026-01-01", "--stop", "2026-01-01", "--local-scheduler", "--no-progress", "--no-lock"]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_autoload_range_false_leaves_range_daily_unknown_to_the_command_line(tmp_path):
    result = _run_range_daily_of_nothing(tmp_path, "[core]\nautoload_range = false\n")
    assert result.returncode != 0
    assert "RangeDaily" in result.stderr
    assert "Traceback" not in result.stderr


def test_autoload_range_false_with_the_range_module_named_runs_range_daily(tmp_path):
    result = _run_range_daily_of_nothing(tmp_path, "[core]\nautoload_range = false\n", "trun.tools.range")
    assert result.returncode == 0, result.stderr


def test_range_daily_is_known_to_the_command_line_by_default(tmp_path):
    result = _run_range_daily_of_nothing(tmp_path, "[core]\n")
    assert result.returncode == 0, result.stderr


# -- which instances are required --------------------------------------------------

def test_missing_days_are_required_oldest_first():
    DailyFile = make_daily_file_step()
    touch("daily/2026-03-02.txt", "daily/2026-03-04.txt")

    step = RangeDaily(of=DailyFile, start=datetime.date(2026, 3, 1), stop=datetime.date(2026, 3, 6),
                      now=epoch(2026, 3, 10))

    assert [s.date for s in step.requires()] == days(1, 3, 5)


def test_reverse_requires_the_newest_missing_days_first():
    DailyFile = make_daily_file_step()

    step = RangeDaily(of=DailyFile, start=datetime.date(2026, 3, 1), stop=datetime.date(2026, 3, 6),
                      reverse=True, step_limit=2, now=epoch(2026, 3, 10))

    assert [s.date for s in step.requires()] == days(5, 4)


def test_step_limit_caps_how_many_instances_are_required():
    DailyFile = make_daily_file_step()

    step = RangeDaily(of=DailyFile, start=datetime.date(2026, 3, 1), stop=datetime.date(2026, 3, 9),
                      step_limit=3, now=epoch(2026, 3, 10))

    assert [s.date for s in step.requires()] == days(1, 2, 3)


def test_step_limit_zero_requires_nothing():
    DailyFile = make_daily_file_step()

    step = RangeDaily(of=DailyFile, start=datetime.date(2026, 3, 1), stop=datetime.date(2026, 3, 9),
                      step_limit=0, now=epoch(2026, 3, 10))

    assert step.requires() == []


def test_negative_step_limit_is_rejected():
    step = RangeDaily(of=make_daily_file_step(), start=datetime.date(2026, 3, 1), step_limit=-1)

    with pytest.raises(ParameterException, match="step_limit"):
        step.requires()


def test_without_stop_the_range_ends_now():
    DailyFile = make_daily_file_step()

    step = RangeDaily(of=DailyFile, start=datetime.date(2026, 3, 7), now=epoch(2026, 3, 10, 12))

    assert [s.date for s in step.requires()] == days(7, 8, 9, 10)


def test_days_back_limits_how_far_back_the_range_reaches():
    DailyFile = make_daily_file_step()

    step = RangeDaily(of=DailyFile, start=datetime.date(2020, 1, 1), days_back=2, now=epoch(2026, 3, 10, 12))

    assert [s.date for s in step.requires()] == days(9, 10)


def test_days_forward_extends_the_range_into_the_future():
    DailyFile = make_daily_file_step()

    step = RangeDaily(of=DailyFile, start=datetime.date(2026, 3, 10), days_forward=2, now=epoch(2026, 3, 10, 12))

    assert [s.date for s in step.requires()] == days(10, 11, 12)


def test_stop_without_start_works_backward_with_reverse():
    DailyFile = make_daily_file_step()

    step = RangeDaily(of=DailyFile, stop=datetime.date(2026, 3, 5), reverse=True, step_limit=3,
                      now=epoch(2026, 3, 10))

    assert [s.date for s in step.requires()] == days(4, 3, 2)


def test_range_entirely_before_the_window_requires_nothing():
    DailyFile = make_daily_file_step()

    step = RangeDaily(of=DailyFile, start=datetime.date(2024, 1, 1), stop=datetime.date(2024, 1, 5),
                      now=epoch(2026, 3, 10))

    assert step.requires() == []
    assert step.complete() is True


def test_range_without_start_and_stop_is_rejected():
    step = RangeDaily(of=make_daily_file_step())

    with pytest.raises(ParameterException, match="at least one of start and stop"):
        step.requires()


def test_range_without_start_needs_reverse():
    step = RangeDaily(of=make_daily_file_step(), stop=datetime.date(2026, 3, 5))

    with pytest.raises(ParameterException, match="reverse"):
        step.requires()


def test_start_after_stop_is_rejected():
    step = RangeDaily(of=make_daily_file_step(), start=datetime.date(2026, 3, 5), stop=datetime.date(2026, 3, 1))

    with pytest.raises(ParameterException, match="start .* is after stop"):
        step.requires()


def test_requires_is_computed_once_per_instance():
    calls = []

    class CountingRange(RangeDailyBase):
        def missing_datetimes(self, finite_datetimes):
            calls.append(list(finite_datetimes))
            return finite_datetimes[:2]

    step = CountingRange(of=make_daily_file_step(), start=datetime.date(2026, 3, 1),
                         stop=datetime.date(2026, 3, 4), now=epoch(2026, 3, 10))

    first = step.requires()
    second = step.requires()

    assert second is first
    assert len(calls) == 1
    assert calls[0] == [datetime.datetime(2026, 3, day) for day in (1, 2, 3)]


def test_old_style_missing_datetimes_with_of_cls_argument_still_works():
    class OldStyleRange(RangeDailyBase):
        def missing_datetimes(self, of_cls, finite_datetimes):
            assert of_cls is DailyFile
            return finite_datetimes[-1:]

    DailyFile = make_daily_file_step()
    step = OldStyleRange(of=DailyFile, start=datetime.date(2026, 3, 1), stop=datetime.date(2026, 3, 4),
                         now=epoch(2026, 3, 10))

    with pytest.warns(DeprecationWarning, match="missing_datetimes"):
        required = step.requires()

    assert [s.date for s in required] == days(3)


# -- the 'of' step and its parameters ---------------------------------------------

def test_of_params_are_given_to_every_instance():
    class RegionalDaily(trun.Step):
        date = trun.DateParameter()
        region = trun.Parameter()

        def complete(self):
            return False

    step = RangeDailyBase(of=RegionalDaily, of_params={"region": "eu"}, start=datetime.date(2026, 3, 1),
                          stop=datetime.date(2026, 3, 3), now=epoch(2026, 3, 10))

    assert [str(s) for s in step.requires()] == ["RegionalDaily(date=2026-03-01, region=eu)",
                                                 "RegionalDaily(date=2026-03-02, region=eu)"]


def test_of_params_make_a_different_range_step():
    DailyFile = make_daily_file_step()
    plain = RangeDaily(of=DailyFile, start=datetime.date(2026, 3, 1))
    with_params = RangeDaily(of=DailyFile, of_params={"x": 1}, start=datetime.date(2026, 3, 1))

    assert plain.step_id != with_params.step_id


def test_param_name_chooses_which_parameter_receives_the_date():
    class LateDate(trun.Step):
        label = trun.Parameter(default="woo")
        day = trun.DateParameter()

        def complete(self):
            return False

    step = RangeDailyBase(of=LateDate, param_name="day", start=datetime.date(2026, 3, 1),
                          stop=datetime.date(2026, 3, 2), now=epoch(2026, 3, 10))

    assert step.requires() == [LateDate("woo", datetime.date(2026, 3, 1))]


def test_unknown_param_name_is_rejected_listing_the_parameters():
    step = RangeDaily(of=make_daily_file_step(), param_name="dat", start=datetime.date(2026, 3, 1),
                      now=epoch(2026, 3, 10))

    with pytest.raises(ParameterException, match="'dat' is not a parameter of DailyFile.*date"):
        step.requires()


def test_of_without_positional_parameter_needs_param_name():
    class KeywordOnly(trun.Step):
        date = trun.DateParameter(positional=False)

    step = RangeDailyBase(of=KeywordOnly, start=datetime.date(2026, 3, 1), now=epoch(2026, 3, 10))

    with pytest.raises(ParameterException, match="no positional parameter.*param_name"):
        step.requires()


def test_of_given_as_family_name_is_looked_up():
    class NamedDailyForRangeTest(trun.Step):
        date = trun.DateParameter()

    step = RangeDaily(of="NamedDailyForRangeTest", start=datetime.date(2026, 3, 1))

    assert step.of is NamedDailyForRangeTest
    assert step.of_cls is NamedDailyForRangeTest


def test_of_unknown_family_is_rejected_with_a_suggestion():
    class SuggestedDailyForRangeTest(trun.Step):
        date = trun.DateParameter()

    with pytest.raises(ParameterException, match="SuggestedDailyForRangeTest"):
        RangeDaily(of="SuggestedDailyForRangeTst", start=datetime.date(2026, 3, 1))


# -- bulk_complete ----------------------------------------------------------------

def test_bulk_complete_decides_what_is_missing_without_touching_outputs():
    class BulkDaily(trun.Step):
        date = trun.DateParameter()

        @classmethod
        def bulk_complete(cls, parameter_tuples):
            return [d for d in parameter_tuples if d.day % 2 == 0]

        def output(self):
            raise AssertionError("bulk_complete should have made output() unnecessary")

    step = RangeDaily(of=BulkDaily, start=datetime.date(2026, 3, 1), stop=datetime.date(2026, 3, 6),
                      now=epoch(2026, 3, 10))

    assert [s.date for s in step.requires()] == days(1, 3, 5)


def test_bulk_complete_gets_a_class_that_builds_instances_with_of_params():
    seen = []

    class BulkRegional(trun.Step):
        date = trun.DateParameter()
        region = trun.Parameter()

        @classmethod
        def bulk_complete(cls, parameter_tuples):
            seen.extend(cls(d) for d in parameter_tuples)
            return list(parameter_tuples)[:-1]

    step = RangeDaily(of=BulkRegional, of_params={"region": "eu"}, start=datetime.date(2026, 3, 1),
                      stop=datetime.date(2026, 3, 4), now=epoch(2026, 3, 10))

    assert [str(s) for s in step.requires()] == ["BulkRegional(date=2026-03-03, region=eu)"]
    assert {s.region for s in seen} == {"eu"}


def test_mixin_naive_bulk_complete_honours_param_name():
    class NaiveBulk(MixinNaiveBulkComplete, trun.Step):
        label = trun.Parameter(default="x")
        day = trun.DateParameter()

        def output(self):
            return trun.LocalTarget(self.day.strftime("naive/%Y-%m-%d"))

    touch("naive/2026-03-02")

    step = RangeDaily(of=NaiveBulk, param_name="day", start=datetime.date(2026, 3, 1),
                      stop=datetime.date(2026, 3, 4), now=epoch(2026, 3, 10))

    assert [s.day for s in step.requires()] == days(1, 3)


def test_range_monthly_uses_bulk_complete_when_available():
    class BulkMonthly(trun.Step):
        month = trun.MonthParameter()

        @classmethod
        def bulk_complete(cls, parameter_tuples):
            return [m for m in parameter_tuples if m.month != 2]

        def complete(self):
            raise AssertionError("bulk_complete should have been used")

    step = RangeMonthly(of=BulkMonthly, start=datetime.date(2026, 1, 1), stop=datetime.date(2026, 5, 1),
                        now=epoch(2026, 6, 15))

    assert [s.month for s in step.requires()] == [datetime.date(2026, 2, 1)]


# -- completeness inferred from the file system -------------------------------------

def test_range_hourly_lists_nested_directories_to_find_missing_hours():
    class HourlyFile(trun.Step):
        hour = trun.DateHourParameter()

        def output(self):
            return trun.LocalTarget(self.hour.strftime("hourly/%Y/%m/%d/%H.csv"))

    touch("hourly/2026/03/01/22.csv", "hourly/2026/03/02/00.csv", "hourly/2026/03/02/01.csv")

    step = RangeHourly(of=HourlyFile, start=datetime.datetime(2026, 3, 1, 21),
                       stop=datetime.datetime(2026, 3, 2, 3), now=epoch(2026, 3, 10))

    assert [s.hour.hour for s in step.requires()] == [21, 23, 2]


def test_directory_outputs_count_as_existing_only_as_directories():
    class DirectoryOutput(trun.Step):
        date = trun.DateParameter()

        def output(self):
            return trun.LocalTarget(self.date.strftime("dirs/%Y-%m-%d/"))

    os.makedirs("dirs/2026-03-01")
    touch("dirs/2026-03-02")  # a file where a directory is expected

    step = RangeDaily(of=DirectoryOutput, start=datetime.date(2026, 3, 1), stop=datetime.date(2026, 3, 3),
                      now=epoch(2026, 3, 10))

    assert [s.date for s in step.requires()] == days(2)


def test_wrapper_step_counts_the_outputs_of_its_requirements():
    DailyFile = make_daily_file_step("a")
    OtherDailyFile = make_daily_file_step("b")

    class BothDaily(trun.WrapperStep):
        date = trun.DateParameter()

        def requires(self):
            return [DailyFile(self.date), OtherDailyFile(self.date)]

    touch("a/2026-03-01.txt", "b/2026-03-01.txt", "a/2026-03-02.txt")

    step = RangeDaily(of=BothDaily, start=datetime.date(2026, 3, 1), stop=datetime.date(2026, 3, 3),
                      now=epoch(2026, 3, 10))

    assert [s.date for s in step.requires()] == days(2)


def test_custom_complete_is_respected_instead_of_listing_outputs():
    class Flagged(trun.Step):
        date = trun.DateParameter()

        def output(self):
            return trun.LocalTarget(self.date.strftime("flagged/%Y-%m-%d"))

        def complete(self):
            return self.date.day == 2  # the outputs exist for none of them

    step = RangeDaily(of=Flagged, start=datetime.date(2026, 3, 1), stop=datetime.date(2026, 3, 4),
                      now=epoch(2026, 3, 10))

    assert [s.date for s in step.requires()] == days(1, 3)


def test_outputs_that_are_not_files_fall_back_to_checking_each_instance():
    class FlagTarget(trun.Target):
        def __init__(self, present):
            self.present = present

        def exists(self):
            return self.present

    class NotOnDisk(trun.Step):
        date = trun.DateParameter()

        def output(self):
            return FlagTarget(self.date.day == 1)

    step = RangeDaily(of=NotOnDisk, start=datetime.date(2026, 3, 1), stop=datetime.date(2026, 3, 3),
                      now=epoch(2026, 3, 10))

    assert [s.date for s in step.requires()] == days(2)


def test_infer_bulk_complete_from_fs_reads_the_mock_file_system():
    MockFileSystem().clear()

    class MockDaily(trun.Step):
        date = trun.DateParameter()

        def output(self):
            return MockTarget(self.date.strftime("/mock/%Y%m%d/part-0"))

    MockTarget("/mock/20260302/part-0").open("w").close()
    datetimes = [datetime.datetime(2026, 3, day) for day in (1, 2, 3)]

    missing = infer_bulk_complete_from_fs(datetimes, lambda d: MockDaily(d.date()),
                                          lambda d: d.strftime("(%Y).*(%m).*(%d)"))

    assert missing == [datetime.datetime(2026, 3, 1), datetime.datetime(2026, 3, 3)]
    MockFileSystem().clear()


def test_infer_bulk_complete_from_fs_rejects_outputs_that_are_not_files():
    class NoFiles(trun.Step):
        date = trun.DateParameter()

        def output(self):
            return []

    with pytest.raises(NotImplementedError, match="no outputs"):
        infer_bulk_complete_from_fs([datetime.datetime(2026, 3, 1)], lambda d: NoFiles(d.date()),
                                    lambda d: d.strftime("(%Y).*(%m).*(%d)"))


class ListedFileSystem(FileSystem):
    """A file system over a fixed list of paths whose ``exists``/``listdir`` understand globs, like HDFS."""

    def __init__(self, paths):
        self.paths = list(paths)
        self.listed_globs: list[str] = []

    def exists(self, path):
        return any(fnmatch.fnmatchcase(p, path) or fnmatch.fnmatchcase(p, path + "/*") for p in self.paths)

    def listdir(self, path):
        self.listed_globs.append(path)
        return [p for p in self.paths if fnmatch.fnmatchcase(p, path + "/*")]

    def remove(self, path, recursive=True, skip_trash=True):
        self.paths = [p for p in self.paths if not fnmatch.fnmatchcase(p, path)]


def make_listed_target_class(filesystem):
    class ListedTarget(FileSystemTarget):
        fs = filesystem

        def open(self, mode="r"):
            raise NotImplementedError

    return ListedTarget


def test_other_file_systems_are_listed_through_narrowed_globs():
    filesystem = ListedFileSystem(["/data/2026/03/01/part", "/data/2026/03/03/part"])
    ListedTarget = make_listed_target_class(filesystem)

    class OnListedFs(trun.Step):
        date = trun.DateParameter()

        def output(self):
            return ListedTarget(self.date.strftime("/data/%Y/%m/%d/part"))

    datetimes = [datetime.datetime(2026, 3, day) for day in (1, 2, 3)]

    missing = infer_bulk_complete_from_fs(datetimes, lambda d: OnListedFs(d.date()),
                                          lambda d: d.strftime("(%Y).*(%m).*(%d)"))

    assert missing == [datetime.datetime(2026, 3, 2)]
    # Narrowed to the digits of the paths asked for: one directory per day, the absent one not listed.
    assert filesystem.listed_globs == ["/data/2026/03/01", "/data/2026/03/03"]


def test_long_histories_are_listed_through_digit_set_globs():
    asked = [datetime.datetime(2026, 3, 1) + datetime.timedelta(days=n) for n in range(45)]
    filesystem = ListedFileSystem([d.strftime("/data/%Y/%m/%d/part") for d in asked if d.day != 10])
    ListedTarget = make_listed_target_class(filesystem)

    class OnListedFsLong(trun.Step):
        date = trun.DateParameter()

        def output(self):
            return ListedTarget(self.date.strftime("/data/%Y/%m/%d/part"))

    missing = infer_bulk_complete_from_fs(asked, lambda d: OnListedFsLong(d.date()),
                                          lambda d: d.strftime("(%Y).*(%m).*(%d)"))

    assert missing == [datetime.datetime(2026, 3, 10), datetime.datetime(2026, 4, 10)]
    # Splitting per day would make too many listings: the day digits become sets instead.
    assert filesystem.listed_globs == ["/data/2026/03/[0-3][0-9]", "/data/2026/04/[0-1][0-9]"]


def test_glob_inference_rejects_paths_without_the_date():
    filesystem = ListedFileSystem([])
    ListedTarget = make_listed_target_class(filesystem)

    class Undated(trun.Step):
        date = trun.DateParameter()

        def output(self):
            return ListedTarget("/data/latest/part")

    with pytest.raises(NotImplementedError, match="Couldn't deduce"):
        infer_bulk_complete_from_fs([datetime.datetime(2026, 3, 1)], lambda d: Undated(d.date()),
                                    lambda d: d.strftime("(%Y).*(%m).*(%d)"))


def test_most_common_returns_the_most_frequent_item_and_its_count():
    assert most_common([1, 2, 2, 3, 3, 3]) == (3, 3)


def test_most_common_prefers_the_first_seen_on_a_tie():
    assert most_common(["b", "a", "a", "b"]) == ("b", 2)


def test_most_common_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="at least one"):
        most_common([])


# -- hourly, by-minutes and monthly windows ---------------------------------------

def test_range_hourly_base_requires_each_hour_in_the_window():
    class HourlyStep(trun.Step):
        hour = trun.DateHourParameter()

        def complete(self):
            return False

    step = RangeHourlyBase(of=HourlyStep, start=datetime.datetime(2026, 3, 1, 22), hours_back=10,
                           now=epoch(2026, 3, 2, 1, 30))

    assert [s.hour for s in step.requires()] == [datetime.datetime(2026, 3, 1, 22), datetime.datetime(2026, 3, 1, 23),
                                                 datetime.datetime(2026, 3, 2, 0), datetime.datetime(2026, 3, 2, 1)]


def test_range_by_minutes_steps_by_the_interval():
    class EveryFewMinutes(trun.Step):
        moment = trun.DateMinuteParameter()

        def complete(self):
            return False

    step = RangeByMinutesBase(of=EveryFewMinutes, start=datetime.datetime(2026, 3, 1, 10, 7),
                              stop=datetime.datetime(2026, 3, 1, 11, 0), minutes_interval=15,
                              now=epoch(2026, 3, 2))

    assert [s.moment.strftime("%H%M") for s in step.requires()] == ["1015", "1030", "1045"]


@pytest.mark.parametrize("interval", [-1, 0, 60, 7])
def test_range_by_minutes_rejects_an_interval_that_does_not_divide_an_hour(interval):
    class EveryFewMinutesChecked(trun.Step):
        moment = trun.DateMinuteParameter()

    step = RangeByMinutes(of=EveryFewMinutesChecked, start=datetime.datetime(2026, 3, 1, 10),
                          minutes_interval=interval, now=epoch(2026, 3, 2))

    with pytest.raises(ParameterException, match="minutes_interval"):
        step.requires()


def test_range_by_minutes_lists_files_to_find_missing_moments():
    class MinuteFile(trun.Step):
        moment = trun.DateMinuteParameter()

        def output(self):
            return trun.LocalTarget(self.moment.strftime("minutes/%Y-%m-%d/%H%M.log"))

    touch("minutes/2026-03-01/1000.log", "minutes/2026-03-01/1010.log")

    step = RangeByMinutes(of=MinuteFile, start=datetime.datetime(2026, 3, 1, 10, 0),
                          stop=datetime.datetime(2026, 3, 1, 10, 20), minutes_interval=5, now=epoch(2026, 3, 2))

    assert [s.moment.strftime("%H%M") for s in step.requires()] == ["1005", "1015"]


def test_range_monthly_requires_missing_months_up_to_the_current_one():
    class MonthlyFile(trun.Step):
        month = trun.MonthParameter()

        def output(self):
            return trun.LocalTarget(self.month.strftime("monthly/%Y-%m"))

    touch("monthly/2026-02")

    step = RangeMonthly(of=MonthlyFile, start=datetime.date(2026, 1, 1), now=epoch(2026, 4, 15))

    assert [s.month for s in step.requires()] == [datetime.date(2026, 1, 1), datetime.date(2026, 3, 1)]


def test_range_monthly_months_back_limits_the_window():
    class MonthlyAlwaysMissing(trun.Step):
        month = trun.MonthParameter()

        def complete(self):
            return False

    step = RangeMonthly(of=MonthlyAlwaysMissing, start=datetime.date(2020, 1, 1), months_back=2,
                        now=epoch(2026, 4, 15))

    assert [s.month for s in step.requires()] == [datetime.date(2026, 2, 1), datetime.date(2026, 3, 1)]


# -- events -------------------------------------------------------------------------

def test_events_report_delay_count_and_fraction(range_events):
    DailyFile = make_daily_file_step()
    touch(*(f"daily/2026-03-0{day}.txt" for day in (1, 2, 3, 4, 6)))

    RangeDaily(of=DailyFile, start=datetime.date(2026, 3, 1), now=epoch(2026, 3, 10, 12)).requires()

    # The window holds March 1..10; 5, 7, 8, 9 and 10 are missing.
    assert range_events == {
        RangeEvent.DELAY: [("DailyFile", 6)],
        RangeEvent.COMPLETE_COUNT: [("DailyFile", 5)],
        RangeEvent.COMPLETE_FRACTION: [("DailyFile", 0.5)],
    }


def test_events_of_an_empty_window_report_nothing_missing(range_events):
    step = RangeDaily(of=make_daily_file_step(), stop=datetime.date(2020, 1, 1), reverse=True, days_back=4,
                      now=epoch(2026, 3, 10))

    assert step.requires() == []
    assert range_events == {
        RangeEvent.DELAY: [("DailyFile", 0)],
        RangeEvent.COMPLETE_COUNT: [("DailyFile", 0)],
        RangeEvent.COMPLETE_FRACTION: [("DailyFile", 1.0)],
    }


def test_event_counts_cover_a_start_far_before_the_window(range_events):
    class FirstSevenMissing(RangeHourlyBase):
        def missing_datetimes(self, finite_datetimes):
            return finite_datetimes[:7]

    class OldHourly(trun.Step):
        hour = trun.DateHourParameter()

    start = datetime.datetime(1960, 3, 2, 1)
    FirstSevenMissing(of=OldHourly, start=start, hours_back=5, hours_forward=20,
                      now=epoch(2000, 1, 1, 4)).requires()

    # The window is 1999-12-31T23 .. 2000-01-01T23 (25 hours); the counts reach back to start.
    expected = int((datetime.datetime(2000, 1, 2) - start) / datetime.timedelta(hours=1))
    assert range_events == {
        RangeEvent.DELAY: [("OldHourly", 25)],
        RangeEvent.COMPLETE_COUNT: [("OldHourly", expected - 7)],
        RangeEvent.COMPLETE_FRACTION: [("OldHourly", (expected - 7) / expected)],
    }


def test_event_counts_by_minutes_follow_the_interval(range_events):
    class FirstThreeMissing(RangeByMinutesBase):
        def missing_datetimes(self, finite_datetimes):
            return finite_datetimes[:3]

    class QuarterHourly(trun.Step):
        moment = trun.DateMinuteParameter()

    FirstThreeMissing(of=QuarterHourly, start=datetime.datetime(2026, 3, 1, 10, 0), minutes_interval=15,
                      now=epoch(2026, 3, 1, 12, 0)).requires()

    # 10:00 .. 11:45 is eight quarter hours.
    assert range_events[RangeEvent.DELAY] == [("QuarterHourly", 8)]
    assert range_events[RangeEvent.COMPLETE_COUNT] == [("QuarterHourly", 5)]
