"""trun-grep: search a running trund's steps by id prefix or status."""
from __future__ import annotations

import socket

import pytest

import trun
from trun.testing import with_config
from trun.tools import trun_grep


@pytest.fixture
def populated(trund):
    scheduler = trun.RemoteScheduler(trund.url)
    # Like a real worker, name the family: the graph shows family-less steps as UNKNOWN (as Luigi does).
    scheduler.add_step(worker="w", step_id="Load_2026", status="PENDING", family="Load",
                       deps=["Extract_2026", "Missing_1"])
    scheduler.add_step(worker="w", step_id="Extract_2026", status="DONE", family="Extract")
    scheduler.add_step(worker="w", step_id="Report_2026", status="FAILED", family="Report", expl="boom")
    return trund


def test_prefix_search_prints_status_and_dependencies_grouped_by_status(populated, capsys):
    assert trun_grep.main(["--scheduler-url", populated.url, "--prefix", "Load"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Load_2026: PENDING, Dependencies:"
    assert "  status=DONE" in out and "    Extract_2026" in out
    assert "  status=UNKNOWN" in out and "    Missing_1" in out
    assert not any(line.startswith("Report_2026") for line in out)


def test_status_search_is_case_insensitive(populated, capsys):
    assert trun_grep.main(["--scheduler-url", populated.url, "--status", "failed"]) == 0
    out = capsys.readouterr().out
    assert "Report_2026: FAILED, Dependencies:" in out
    assert "Load_2026" not in out


def test_host_and_port_flags_reach_the_scheduler(populated, capsys):
    assert trun_grep.main(["--scheduler-host", "127.0.0.1", "--scheduler-port", str(populated.port),
                           "--prefix", "Extract"]) == 0
    assert "Extract_2026: DONE" in capsys.readouterr().out


def test_grep_api_yields_result_dicts(populated):
    results = list(trun_grep.TrunGrep(url=populated.url).prefix_search("Load"))
    assert results[0]["name"] == "Load_2026"
    assert results[0]["deps_by_status"]["DONE"] == ["Extract_2026"]


def test_no_search_given_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        trun_grep.main([])
    assert info.value.code == 2
    assert "--prefix" in capsys.readouterr().err


def test_unreachable_scheduler_exits_1_naming_the_url(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with with_config({"core": {"rpc_retry_attempts": "1", "rpc_retry_wait": "0"}}):
        assert trun_grep.main(["--scheduler-port", str(port), "--scheduler-host", "127.0.0.1",
                               "--status", "DONE"]) == 1
    assert f"127.0.0.1:{port}" in capsys.readouterr().err
