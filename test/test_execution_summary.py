"""The execution summary text and status code, from real runs of ``trun.build``."""
from __future__ import annotations

import datetime
import threading

import pytest

import trun
from trun.execution_summary import TrunRunResult, summary
from trun.interface import _WorkerSchedulerFactory
from trun.scheduler import Scheduler
from trun.testing import with_config
from trun.worker import Worker

RULE = "===== Trun Execution Summary ====="


def run(steps, factory=None, **kwargs) -> TrunRunResult:
    kwargs.setdefault("local_scheduler", True)
    kwargs.setdefault("no_progress", True)
    return trun.build(steps, worker_scheduler_factory=factory, detailed_summary=True, **kwargs)


def body(result: TrunRunResult) -> str:
    """The summary without the surrounding rules."""
    text = result.summary_text
    assert text.startswith(f"\n{RULE}\n\n") and text.endswith(f"\n\n{RULE}\n")
    return text[len(RULE) + 3: -len(RULE) - 3]


class Done(trun.Step):
    """A step that is complete before the run."""

    def complete(self):
        return True


def make_done_family(name: str, **params):
    """A complete-before-the-run step class named ``name`` with the given parameters."""
    return type(name, (Done,), dict(params))


class Factory(_WorkerSchedulerFactory):
    """Every run on one shared in-process scheduler, optionally with worker overrides."""

    def __init__(self, scheduler=None, **worker_kwargs):
        self.scheduler = scheduler or Scheduler(prune_on_get_work=True)
        self.worker_kwargs = worker_kwargs

    def create_local_scheduler(self):
        return self.scheduler

    def create_worker(self, scheduler, worker_processes, assistant=False):
        return Worker(scheduler=scheduler, worker_processes=worker_processes, assistant=assistant,
                      **self.worker_kwargs)


# -- whole texts --------------------------------------------------------------------

def test_success_text_lists_complete_and_run_steps_with_a_happy_smiley(tmp_path):
    class Source(trun.Step):
        def complete(self):
            return True

    class Sink(trun.Step):
        def requires(self):
            return Source()

        def output(self):
            return trun.LocalTarget(str(tmp_path / "sink"))

        def run(self):
            self.output().open("w").close()

    result = run([Sink()])
    assert body(result) == (
        "Scheduled 2 steps of which:\n"
        "* 1 complete ones were encountered:\n"
        "    - 1 Source()\n"
        "* 1 ran successfully:\n"
        "    - 1 Sink()\n"
        "\n"
        "This progress looks :) because there were no failed steps or missing dependencies")
    assert result.status == trun.TrunStatusCode.SUCCESS
    assert result.scheduling_succeeded is True


def test_nothing_to_run_says_did_not_run_any_steps():
    Only = make_done_family("OnlyDone")
    assert body(run([Only()])) == (
        "Scheduled 1 steps of which:\n"
        "* 1 complete ones were encountered:\n"
        "    - 1 OnlyDone()\n"
        "\n"
        "Did not run any steps\n"
        "This progress looks :) because there were no failed steps or missing dependencies")


def test_empty_build_says_did_not_schedule_any_steps():
    result = run([])
    assert body(result) == "Did not schedule any steps"
    assert result.status == trun.TrunStatusCode.SUCCESS


def test_failed_step_is_listed_with_a_sad_smiley():
    class Boom(trun.Step):
        def run(self):
            raise RuntimeError("boom")

    result = run([Boom()])
    assert body(result) == (
        "Scheduled 1 steps of which:\n"
        "* 1 failed:\n"
        "    - 1 Boom()\n"
        "\n"
        "This progress looks :( because there were failed steps")
    assert result.status == trun.TrunStatusCode.FAILED
    assert result.scheduling_succeeded is False


def test_missing_external_data_and_its_dependents_are_left_pending():
    class Missing(trun.ExternalStep):
        def complete(self):
            return False

    class NeedsMissing(trun.Step):
        def requires(self):
            return Missing()

    result = run([NeedsMissing()])
    assert body(result) == (
        "Scheduled 2 steps of which:\n"
        "* 2 were left pending, among these:\n"
        "    * 1 were missing external dependencies:\n"
        "        - 1 Missing()\n"
        "    * 1 had missing dependencies:\n"
        "        - 1 NeedsMissing()\n"
        "\n"
        "Did not run any steps\n"
        "This progress looks :| because there were missing external dependencies")
    assert result.status == trun.TrunStatusCode.MISSING_EXT


def test_dependents_of_a_failed_step_had_failed_dependencies():
    class Broken(trun.Step):
        def run(self):
            raise RuntimeError("broken")

    class AfterBroken(trun.Step):
        def requires(self):
            return Broken()

    text = body(run([AfterBroken()]))
    assert (
        "* 1 failed:\n"
        "    - 1 Broken()\n"
        "* 1 were left pending, among these:\n"
        "    * 1 had failed dependencies:\n"
        "        - 1 AfterBroken()\n") in text


def test_complete_raising_is_a_scheduling_error():
    class CannotTell(trun.Step):
        def complete(self):
            raise OSError("storage unreachable")

    class AfterCannotTell(trun.Step):
        def requires(self):
            return CannotTell()

    result = run([AfterCannotTell()])
    text = body(result)
    assert "* 1 failed scheduling:\n    - 1 CannotTell()\n" in text
    assert "    * 1 had dependencies whose scheduling failed:\n        - 1 AfterCannotTell()\n" in text
    assert text.endswith("This progress looks :( because there were steps whose scheduling failed")
    assert result.status == trun.TrunStatusCode.SCHEDULING_FAILED


def test_failure_and_scheduling_error_together_have_their_own_status():
    class Fails(trun.Step):
        def run(self):
            raise RuntimeError("x")

    class Unknowable(trun.Step):
        def complete(self):
            raise OSError("x")

    result = run([Fails(), Unknowable()])
    assert result.status == trun.TrunStatusCode.FAILED_AND_SCHEDULING_FAILED
    assert result.one_line_summary == (
        "This progress looks :( because there were failed steps and steps whose scheduling failed")


def test_step_denied_its_resources_was_not_granted_run_permission():
    class Greedy(trun.Step):
        resources = {"gpu": 1}

    result = run([Greedy()], Factory(Scheduler(resources={"gpu": 0}, prune_on_get_work=True)))
    assert (
        "* 1 were left pending, among these:\n"
        "    * 1 was not granted run permission by the scheduler:\n"
        "        - 1 Greedy()\n") in body(result)
    assert result.status == trun.TrunStatusCode.NOT_RUN


def test_step_failing_once_then_succeeding_is_success_with_retry(tmp_path):
    attempts = tmp_path / "attempts"

    class Flaky(trun.Step):
        def output(self):
            return trun.LocalTarget(str(tmp_path / "flaky-done"))

        def run(self):
            with attempts.open("a") as f:
                f.write("x")
            if len(attempts.read_text()) == 1:
                raise RuntimeError("first attempt fails")
            self.output().open("w").close()

    factory = Factory(Scheduler(retry_delay=0.01, prune_on_get_work=True),
                      keep_alive=True, wait_interval=0.01, wait_jitter=0.0)
    result = run([Flaky()], factory)
    assert result.status == trun.TrunStatusCode.SUCCESS_WITH_RETRY
    assert result.one_line_summary == (
        "This progress looks :) because there were failed steps but they all succeeded in a retry")
    assert "* 1 ran successfully:\n    - 1 Flaky()\n" in body(result)


def test_steps_run_by_another_worker_are_reported_with_that_worker(tmp_path):
    started, release = threading.Event(), threading.Event()

    class Slow(trun.Step):
        def output(self):
            return trun.LocalTarget(str(tmp_path / "slow"))

        def run(self):
            started.set()
            release.wait(30)
            self.output().open("w").close()

    class NeedsSlow(trun.Step):
        def requires(self):
            return Slow()

    scheduler = Scheduler(prune_on_get_work=True)

    def other_worker():
        with Worker(scheduler=scheduler, worker_id="other-worker") as worker:
            worker.add(Slow())
            worker.run()

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        assert started.wait(30)
        result = run([NeedsSlow()], Factory(scheduler))
    finally:
        release.set()
        thread.join(30)
    text = body(result)
    assert (
        "* 2 were left pending, among these:\n"
        "    * 1 were being run by another worker:\n"
        "        - 1 Slow()\n"
        "    * 1 had dependencies that were being run by other worker:\n"
        "        - 1 NeedsSlow()\n"
        "\n"
        "The other workers were:\n"
        "    - other-worker ran 1 steps\n") in text


# -- one line per family ----------------------------------------------------------

def test_contiguous_int_values_are_shown_as_a_range():
    Ranged = make_done_family("Ranged", n=trun.IntParameter())
    text = body(run([Ranged(n=i) for i in range(1, 6)]))
    assert "    - 5 Ranged(n=1...5)\n" in text


def test_three_contiguous_values_are_listed_not_ranged():
    Few = make_done_family("Few", n=trun.IntParameter())
    assert "    - 3 Few(n=1,2,3)\n" in body(run([Few(n=i) for i in (1, 2, 3)]))


def test_gaps_in_values_list_them_with_commas():
    Gappy = make_done_family("Gappy", n=trun.IntParameter())
    assert "    - 4 Gappy(n=1,3,5,7)\n" in body(run([Gappy(n=i) for i in (1, 3, 5, 7)]))


def test_long_value_lists_are_cut_with_dots():
    Many = make_done_family("Many", word=trun.Parameter())
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    text = body(run([Many(word=w) for w in words]))
    assert "    - 8 Many(word=alpha,bravo,charlie,delta,echo,...)\n" in text


def test_contiguous_dates_are_shown_as_a_range():
    Daily = make_done_family("Daily", date=trun.DateParameter())
    days = [datetime.date(2026, 1, 1) + datetime.timedelta(i) for i in range(10)]
    assert "    - 10 Daily(date=2026-01-01...2026-01-10)\n" in body(run([Daily(date=d) for d in days]))


def test_one_varying_parameter_among_several_is_ranged():
    Windowed = make_done_family("Windowed", kind=trun.Parameter(), n=trun.IntParameter())
    text = body(run([Windowed(kind="sum", n=i) for i in range(3)]))
    assert "    - 3 Windowed(kind=sum, n=0...2)\n" in text


def test_two_steps_with_several_parameters_are_both_named():
    Pair = make_done_family("Pair", a=trun.IntParameter(), b=trun.IntParameter())
    text = body(run([Pair(a=1, b=1), Pair(a=2, b=5)]))
    assert "    - 2 Pair(a=1, b=1) and Pair(a=2, b=5)\n" in text


def test_many_steps_with_several_varying_parameters_show_the_first_and_dots():
    Grid = make_done_family("Grid", a=trun.IntParameter(), b=trun.IntParameter())
    text = body(run([Grid(a=a, b=b) for a in (1, 2) for b in (1, 2)]))
    assert "    - 4 Grid(a=1, b=1) ...\n" in text


def test_very_long_parameter_names_are_elided():
    name = "a_parameter_name_so_long_that_listing_it_would_flood_the_summary"
    assert len(name) > 60
    Wordy = make_done_family("Wordy", **{name: trun.IntParameter()})
    text = body(run([Wordy(**{name: 1})]))
    assert "    - 1 Wordy(...)\n" in text


def test_families_are_sorted_and_cut_at_summary_length():
    families = [make_done_family(f"Family{letter}") for letter in "EDCBA"]
    with with_config({"execution_summary": {"summary_length": "3"}}):
        text = body(run([cls() for cls in families]))
    assert (
        "* 5 complete ones were encountered:\n"
        "    - 1 FamilyA()\n"
        "    - 1 FamilyB()\n"
        "    - 1 FamilyC()\n"
        "    ...\n") in text


def test_summary_length_zero_lists_every_family():
    families = [make_done_family(f"Unlimited{i}") for i in range(8)]
    with with_config({"execution_summary": {"summary_length": "0"}}):
        text = body(run([cls() for cls in families]))
    assert "    ...\n" not in text
    assert "    - 1 Unlimited7()\n" in text


# -- API -------------------------------------------------------------------------

def test_summary_of_a_worker_equals_the_run_result_text():
    Plain = make_done_family("PlainSummary")
    result = run([Plain()])
    assert summary(result.worker) == result.summary_text


def test_run_result_describes_itself():
    result = run([make_done_family("Described")()])
    assert str(result) == "TrunRunResult with status TrunStatusCode.SUCCESS"
    assert repr(result).startswith("TrunRunResult(status=<TrunStatusCode.SUCCESS:")


@pytest.mark.parametrize("code, smiley", [
    (trun.TrunStatusCode.SUCCESS, ":)"),
    (trun.TrunStatusCode.SUCCESS_WITH_RETRY, ":)"),
    (trun.TrunStatusCode.FAILED, ":("),
    (trun.TrunStatusCode.FAILED_AND_SCHEDULING_FAILED, ":("),
    (trun.TrunStatusCode.SCHEDULING_FAILED, ":("),
    (trun.TrunStatusCode.NOT_RUN, ":|"),
    (trun.TrunStatusCode.MISSING_EXT, ":|"),
])
def test_status_codes_carry_their_smiley(code, smiley):
    assert code.value[0] == smiley


def test_the_result_of_a_large_run_sets_off_no_full_garbage_collection():
    # Copying 200,000 reports as triples would make as many objects at once,
    # and the collector would then walk everything the run still holds.
    import gc

    from trun.worker import ReportHistory

    class SumLargeLeaf(trun.Step):
        i = trun.IntParameter()

    leaves = [SumLargeLeaf(i) for i in range(100_000)]
    history = ReportHistory()
    for leaf in leaves:
        history.record(leaf, "PENDING", True)
    for leaf in leaves:
        history.record(leaf, "DONE", None)

    class FinishedWorker:
        _id = "w"
        _add_step_history = history
        _get_work_response_history: list = []

    full_collections = []

    def count(phase, info):
        if phase == "start" and info["generation"] == 2:
            full_collections.append(info)

    gc.collect()
    gc.callbacks.append(count)
    try:
        result = TrunRunResult(FinishedWorker())
    finally:
        gc.callbacks.remove(count)
    assert result.status == trun.execution_summary.TrunStatusCode.SUCCESS
    assert full_collections == []
