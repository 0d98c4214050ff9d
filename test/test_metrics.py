"""Metrics collectors: the enum, custom collectors, Prometheus counters, and /metrics on a real trund."""
from __future__ import annotations

import sys
import textwrap
import urllib.request

import pytest

from trun.metrics import MetricsCollector, MetricsCollectors, NoMetricsCollector
from trun.scheduler import Scheduler

prometheus_client = pytest.importorskip("prometheus_client", reason="the prometheus extra is not installed")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from trun.contrib.prometheus_metric import PrometheusMetricsCollector  # noqa: E402


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse Prometheus text into {(sample name, sorted labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def run_one(s: Scheduler, step_id: str, family: str, status: str, params: dict | None = None) -> None:
    s.add_step(worker="w", step_id=step_id, family=family, params=params or {})
    assert s.get_work(worker="w", host="h")["step_id"] == step_id
    s.add_step(worker="w", step_id=step_id, status=status, expl="boom" if status == "FAILED" else None)


# ---------------------------------------------------------------- the enum
def test_collector_names_and_values_follow_luigi():
    assert {m.name: m.value for m in MetricsCollectors} == {"custom": -1, "default": 1, "datadog": 2, "prometheus": 3}
    assert MetricsCollectors["none"] is MetricsCollectors.default


def test_default_and_none_collect_nothing():
    for name in ("default", "none"):
        collector = MetricsCollectors.get(MetricsCollectors[name])
        assert isinstance(collector, NoMetricsCollector)
        assert not collector.generate_latest()


def test_unknown_collector_name_lists_the_accepted_ones():
    with pytest.raises(ValueError, match=r"metrics_collector must be one of custom, default, none, datadog, prometheus"):
        MetricsCollectors["prometheus2"]


def test_prometheus_name_gives_the_prometheus_collector():
    assert isinstance(MetricsCollectors.get("prometheus"), PrometheusMetricsCollector)


def test_metrics_collector_is_abstract():
    with pytest.raises(TypeError):
        MetricsCollector()  # type: ignore[abstract]


# ---------------------------------------------------------------- custom collectors
@pytest.fixture
def custom_module(tmp_path, monkeypatch):
    (tmp_path / "my_metrics.py").write_text(textwrap.dedent("""
        from trun.metrics import MetricsCollector

        class Recording(MetricsCollector):
            def __init__(self):
                self.events = []
            def handle_step_started(self, step):
                self.events.append(("started", step.id))
            def handle_step_failed(self, step):
                self.events.append(("failed", step.id))
            def handle_step_disabled(self, step, config):
                self.events.append(("disabled", step.id))
            def handle_step_done(self, step):
                self.events.append(("done", step.id))
            def handle_step_statistics(self, step, statistics):
                self.events.append(("statistics", step.id, statistics))

        class NotACollector:
            pass
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_metrics"
    sys.modules.pop("my_metrics", None)


def test_custom_collector_receives_the_scheduler_events(custom_module):
    s = Scheduler(metrics_collector="custom", metrics_custom_import=f"{custom_module}.Recording", retry_count=1)
    run_one(s, "A_1", "A", "DONE")
    run_one(s, "B_1", "B", "FAILED")
    s.add_step(worker="w", step_id="C_1", family="C")
    s.get_work(worker="w", host="h")
    s.report_step_statistics("C_1", {"rows": 10})
    assert s.metrics_collector.events == [
        ("started", "A_1"), ("done", "A_1"), ("started", "B_1"), ("disabled", "B_1"),
        ("started", "C_1"), ("statistics", "C_1", {"rows": 10}),
    ]


def test_custom_collector_that_is_not_a_subclass_is_rejected(custom_module):
    with pytest.raises(ValueError, match="not a subclass of trun.metrics.MetricsCollector"):
        MetricsCollectors.get(MetricsCollectors.custom, f"{custom_module}.NotACollector")


def test_custom_collector_needs_an_import_path():
    with pytest.raises(ValueError, match="metrics_custom_import = package.module.ClassName"):
        MetricsCollectors.get(MetricsCollectors.custom, None)


def test_custom_collector_missing_class_is_named(custom_module):
    with pytest.raises(ValueError, match="has no 'Nope'"):
        MetricsCollectors.get(MetricsCollectors.custom, f"{custom_module}.Nope")


def test_custom_collector_missing_module_is_named():
    with pytest.raises(ImportError, match="cannot import module 'no_such_metrics_module'"):
        MetricsCollectors.get(MetricsCollectors.custom, "no_such_metrics_module.Collector")


# ---------------------------------------------------------------- Prometheus
def test_prometheus_counts_started_done_and_failed_per_family():
    s = Scheduler(metrics_collector="prometheus")
    run_one(s, "A_1", "A", "DONE")
    run_one(s, "A_2", "A", "DONE")
    run_one(s, "B_1", "B", "FAILED")
    got = samples(s.metrics_collector.generate_latest().decode())
    assert got[("trun_step_started_total", (("family", "A"),))] == 2
    assert got[("trun_step_done_total", (("family", "A"),))] == 2
    assert got[("trun_step_failed_total", (("family", "B"),))] == 1
    assert got[("trun_step_started_total", (("family", "B"),))] == 1


def test_prometheus_counts_disabled_steps():
    s = Scheduler(metrics_collector="prometheus", retry_count=1)
    run_one(s, "A_1", "A", "FAILED")
    got = samples(s.metrics_collector.generate_latest().decode())
    assert got[("trun_step_disabled_total", (("family", "A"),))] == 1


def test_prometheus_execution_time_is_the_running_time():
    clock = [1000.0]
    s = Scheduler(metrics_collector="prometheus", clock=lambda: clock[0])
    s.add_step(worker="w", step_id="A_1", family="A")
    s.get_work(worker="w", host="h")
    clock[0] += 42.5
    s.add_step(worker="w", step_id="A_1", status="DONE")
    got = samples(s.metrics_collector.generate_latest().decode())
    assert got[("trun_step_execution_time_seconds", (("family", "A"),))] == pytest.approx(42.5)


def test_prometheus_labels_from_configured_parameters():
    from trun.configuration import get_config

    get_config().set("prometheus", "step_parameters_to_use_in_labels", '["region"]')
    get_config().set("prometheus", "use_step_family_in_labels", "false")
    s = Scheduler(metrics_collector="prometheus")
    run_one(s, "A_1", "A", "DONE", params={"region": "eu", "date": "2024-01-01"})
    got = samples(s.metrics_collector.generate_latest().decode())
    assert got[("trun_step_done_total", (("region", "eu"),))] == 1


def test_prometheus_without_any_label_is_rejected():
    with pytest.raises(ValueError, match="labels cannot be empty"):
        PrometheusMetricsCollector(use_step_family_in_labels=False)


def test_two_prometheus_collectors_do_not_share_counts():
    first, second = Scheduler(metrics_collector="prometheus"), Scheduler(metrics_collector="prometheus")
    run_one(first, "A_1", "A", "DONE")
    assert ("trun_step_done_total", (("family", "A"),)) not in samples(second.metrics_collector.generate_latest().decode())


# ---------------------------------------------------------------- /metrics on a real trund
def _scrape(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        return response.headers.get("Content-Type", ""), response.read().decode()


def test_metrics_endpoint_is_scraped_with_the_prometheus_parser(trund_factory, tmp_path):
    cfg = tmp_path / "trun.cfg"
    cfg.write_text("[scheduler]\nmetrics_collector = prometheus\n")
    trund = trund_factory(env={"TRUN_CONFIG_PATH": str(cfg)})
    from trun.rpc import RemoteScheduler

    remote = RemoteScheduler(trund.url)
    remote.add_step(worker="w", step_id="A_1", family="A", params={})
    assert remote.get_work(worker="w", host="h")["step_id"] == "A_1"
    remote.add_step(worker="w", step_id="A_1", status="DONE")
    content_type, body = _scrape(trund.url)
    assert content_type.startswith("text/plain") and "version=" in content_type
    got = samples(body)
    assert got[("trun_step_started_total", (("family", "A"),))] == 1
    assert got[("trun_step_done_total", (("family", "A"),))] == 1


def test_metrics_endpoint_is_empty_with_the_default_collector(trund):
    content_type, body = _scrape(trund.url)
    assert body == ""
    assert list(text_string_to_metric_families(body)) == []
