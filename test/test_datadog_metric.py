"""The Datadog collector: what reaches a DogStatsD agent (a real UDP socket here) for each step event."""
from __future__ import annotations

import logging
import socket
import time

import pytest

pytest.importorskip("datadog", reason="the datadog extra is not installed")

from trun.contrib.datadog_metric import DOGSTATSD_LOGGER, DatadogMetricsCollector, DroppedPacketWarnings  # noqa: E402
from trun.metrics import MetricsCollectors  # noqa: E402
from trun.scheduler import Scheduler  # noqa: E402


class Agent:
    """A DogStatsD agent stand-in: a UDP socket on a free loopback port that keeps every datagram."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []

    def receive(self, count: int, timeout: float = 10.0) -> list[str]:
        """Wait until ``count`` lines have arrived in all; return every line so far."""
        deadline = time.monotonic() + timeout
        while len(self.lines) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"expected {count} DogStatsD lines, got {len(self.lines)}: {self.lines}")
            self.sock.settimeout(left)
            try:
                datagram = self.sock.recv(65536)
            except TimeoutError:
                continue
            self.lines += datagram.decode().splitlines()
        return self.lines

    def metrics(self) -> dict[str, tuple[str, str, list[str]]]:
        """``{name: (value, type, tags)}`` of the metric lines received."""
        out = {}
        for line in self.lines:
            if line.startswith("_e{"):
                continue
            name, _, rest = line.partition(":")
            value, kind, *fields = rest.split("|")
            tags = next((f[1:].split(",") for f in fields if f.startswith("#")), [])
            out[name] = (value, kind, tags)
        return out

    def events(self) -> list[tuple[str, str, dict[str, str], list[str]]]:
        """``(title, text, {field: value}, tags)`` of the event lines received."""
        out = []
        for line in self.lines:
            if not line.startswith("_e{"):
                continue
            sizes, _, rest = line[3:].partition("}:")
            title_len, text_len = (int(n) for n in sizes.split(","))
            title, text = rest[:title_len], rest[title_len + 1:title_len + 1 + text_len]
            fields = rest[title_len + 1 + text_len:].split("|")[1:]
            tags = next((f[1:].split(",") for f in fields if f.startswith("#")), [])
            out.append((title, text, {f[:1]: f[2:] for f in fields if not f.startswith("#")}, tags))
        return out

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def agent():
    a = Agent()
    yield a
    a.close()


def scheduler_sending_to(agent: Agent, **kwargs) -> Scheduler:
    from trun.configuration import get_config

    get_config().set("datadog", "statsd_host", "127.0.0.1")
    get_config().set("datadog", "statsd_port", str(agent.port))
    return Scheduler(metrics_collector="datadog", **kwargs)


def run_one(s: Scheduler, step_id: str, family: str, status: str, params: dict | None = None) -> None:
    s.add_step(worker="w", step_id=step_id, family=family, params=params or {})
    assert s.get_work(worker="w", host="h")["step_id"] == step_id
    s.add_step(worker="w", step_id=step_id, status=status, expl="boom" if status == "FAILED" else None)


def test_datadog_name_gives_the_datadog_collector(agent):
    assert isinstance(scheduler_sending_to(agent).metrics_collector, DatadogMetricsCollector)
    assert isinstance(MetricsCollectors.get("datadog"), DatadogMetricsCollector)


def test_started_and_done_steps_are_counted_timed_and_announced(agent):
    clock = [1000.0]
    s = scheduler_sending_to(agent, clock=lambda: clock[0])
    s.add_step(worker="w", step_id="Load_eu", family="Load", params={"region": "eu"})
    s.get_work(worker="w", host="h")
    clock[0] += 42.5
    s.add_step(worker="w", step_id="Load_eu", status="DONE")
    agent.receive(5)  # started: counter + event; done: gauge + counter + event
    tags = ["step_name:Load", "region:eu", "environment:development", "application:trun"]
    metrics = agent.metrics()
    assert metrics["trun.step.started"] == ("1", "c", tags)
    assert metrics["trun.step.done"] == ("1", "c", tags)
    assert metrics["trun.step.execution_time"] == ("42.5", "g", tags)
    assert [(title, fields["p"], fields["t"], event_tags) for title, _, fields, event_tags in agent.events()] == [
        ("Trun: A step has been started!", "low", "info", [*tags, "step_state:STARTED"]),
        ("Trun: A step has been completed!", "low", "info", [*tags, "step_state:DONE"]),
    ]


def test_failed_step_is_counted_and_announced_as_an_error(agent):
    s = scheduler_sending_to(agent)
    run_one(s, "Load_1", "Load", "FAILED")
    agent.receive(4)
    assert agent.metrics()["trun.step.failed"][:2] == ("1", "c")
    title, text, fields, tags = agent.events()[-1]
    assert (title, fields["t"], fields["p"]) == ("Trun: A step has failed!", "error", "normal")
    assert text == "A step has failed in the pipeline named: Load"
    assert "step_state:FAILED" in tags


def test_disabled_step_is_counted_and_the_event_says_for_how_long(agent):
    s = scheduler_sending_to(agent, retry_count=1, disable_window=3600, disable_persist=86400)
    run_one(s, "Load_1", "Load", "FAILED")
    agent.receive(4)  # started and disabled, each a counter and an event
    assert agent.metrics()["trun.step.disabled"][:2] == ("1", "c")
    title, text, fields, tags = agent.events()[-1]
    assert title == "Trun: A step has been disabled!" and fields["t"] == "error"
    assert text == ("A step has been disabled in the pipeline named: Load. The step has failed 1 times in the "
                    "last 3600 seconds, so it is being disabled for 86400 seconds.")
    assert "step_state:DISABLED" in tags


def test_step_done_without_having_run_sends_nothing(agent):
    s = scheduler_sending_to(agent)
    s.add_step(worker="w", step_id="Done_1", family="Done", status="DONE")
    run_one(s, "Marker_1", "Marker", "FAILED")  # something that does arrive, to know the first did not
    lines = agent.receive(4)
    assert not any("Done" in line for line in lines)


def test_namespace_and_default_tags_come_from_the_datadog_section(agent):
    from trun.configuration import get_config

    get_config().set("datadog", "metric_namespace", "pipelines")
    get_config().set("datadog", "default_tags", "team:data, tier:gold")
    get_config().set("datadog", "environment", "production")
    s = scheduler_sending_to(agent)
    s.add_step(worker="w", step_id="A_1", family="A")
    s.get_work(worker="w", host="h")
    agent.receive(2)
    assert agent.metrics()["pipelines.step.started"][2] == [
        "step_name:A", "environment:production", "team:data", "tier:gold"]


def test_trund_sends_step_metrics_to_the_configured_agent(agent, trund_factory, tmp_path):
    cfg = tmp_path / "trun.cfg"
    cfg.write_text(f"[scheduler]\nmetrics_collector = datadog\n\n"
                   f"[datadog]\nstatsd_host = 127.0.0.1\nstatsd_port = {agent.port}\n")
    trund = trund_factory(env={"TRUN_CONFIG_PATH": str(cfg)})
    from trun.rpc import RemoteScheduler

    remote = RemoteScheduler(trund.url)
    remote.add_step(worker="w", step_id="A_1", family="A", params={})
    assert remote.get_work(worker="w", host="h")["step_id"] == "A_1"
    remote.add_step(worker="w", step_id="A_1", status="DONE")
    agent.receive(5)
    assert {"trun.step.started", "trun.step.done", "trun.step.execution_time"} <= set(agent.metrics())


def test_unresolvable_agent_host_is_an_error_naming_the_setting():
    with pytest.raises(ValueError, match=r"\[datadog\] statsd_host = no-such-host\.invalid: cannot resolve"):
        DatadogMetricsCollector(statsd_host="no-such-host.invalid")


def scheduler_without_agent() -> Scheduler:
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: every packet is refused
    from trun.configuration import get_config

    get_config().set("datadog", "statsd_host", "127.0.0.1")
    get_config().set("datadog", "statsd_port", str(port))
    return Scheduler(metrics_collector="datadog")


def test_steps_are_scheduled_as_usual_when_no_agent_listens():
    s = scheduler_without_agent()
    for i in range(3):
        run_one(s, f"A_{i}", "A", "DONE")
    assert len(s.step_list("DONE", "")) == 3  # every report was taken; the packets were dropped


def test_packets_dropped_for_want_of_an_agent_are_not_a_warning_each(caplog):
    s = scheduler_without_agent()
    with caplog.at_level(logging.WARNING, logger=DOGSTATSD_LOGGER):
        for i in range(20):
            run_one(s, f"A_{i}", "A", "DONE")
    dropped = [r for r in caplog.records if r.name == DOGSTATSD_LOGGER]
    # At most one a minute (none when an earlier test of this process just had its one).
    assert len(dropped) <= 1, [r.getMessage() for r in dropped]


def test_a_dropped_packet_warning_passes_again_after_the_interval_with_the_count_held_back():
    now = [0.0]
    dropped = DroppedPacketWarnings(interval=60, clock=lambda: now[0])

    def warning(msg: str = "Error submitting packet: %s, dropping the packet") -> logging.LogRecord:
        return logging.LogRecord(DOGSTATSD_LOGGER, logging.WARNING, __file__, 1, msg, ("refused",), None)

    assert dropped.filter(warning())
    assert not dropped.filter(warning()) and not dropped.filter(warning())
    assert dropped.filter(warning("Something else"))  # other records pass untouched
    now[0] = 61.0
    record = warning()
    assert dropped.filter(record)
    assert record.getMessage() == ("Error submitting packet: refused, dropping the packet "
                                   "(2 more such warnings in the last 60 s were not logged)")
