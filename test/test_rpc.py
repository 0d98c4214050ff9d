"""trun.rpc.RemoteScheduler: generated methods, transport, retries and errors, against real trund processes."""
from __future__ import annotations

import base64
import http.server
import inspect
import json
import multiprocessing
import socket
import subprocess
import sys
import threading
import time

import pytest

import trun
from trun.testing import with_config

FAST_RETRIES = {"core": {"rpc_retry_attempts": "3", "rpc_retry_wait": "0.05", "rpc_connect_timeout": "2"}}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    """Answers every POST with {"response": "ok"} and records what it received."""

    seen: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        length = int(self.headers.get("Content-Length", 0))
        RecordingHandler.seen.append({"path": self.path, "headers": dict(self.headers),
                                      "body": self.rfile.read(length).decode()})
        payload = json.dumps({"response": "ok"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def recording_server():
    RecordingHandler.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_remote_scheduler_has_every_rpc_method_with_its_signature():
    from trun.scheduler import RPC_METHODS

    for name, signature in RPC_METHODS.items():
        method = getattr(trun.RemoteScheduler, name)
        expected = [p for p in signature.parameters if p not in ("self",)]
        assert [p for p in inspect.signature(method).parameters if p != "self"] == expected, name


def test_remote_scheduler_has_bulk_add_steps():
    assert callable(trun.RemoteScheduler.add_steps)


def test_import_of_trun_rpc_does_not_import_tornado():
    code = "import sys, trun.rpc; print('tornado' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "False", result.stderr


def test_round_trip_through_a_real_trund(trund):
    scheduler = trun.RemoteScheduler(trund.url)
    scheduler.add_step(worker="w", step_id="A", status="DONE")
    assert "A" in scheduler.step_list(status="DONE")


def test_positional_arguments_bind_like_the_scheduler_method(trund):
    scheduler = trun.RemoteScheduler(trund.url)
    scheduler.add_step("w", "Pos", "DONE")
    assert "Pos" in scheduler.step_list(status="DONE")


def test_wrong_call_raises_type_error_before_any_request():
    scheduler = trun.RemoteScheduler(f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(TypeError, match="fetch_error"):
        scheduler.fetch_error()


def test_unknown_keyword_raises_type_error_before_any_request():
    scheduler = trun.RemoteScheduler(f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(TypeError, match="fetch_error"):
        scheduler.fetch_error(stepid="S")


def test_a_request_carries_only_the_headers_trund_needs(recording_server):
    # Tornado parses each header line in Python: every line costs trund time per step.
    port = recording_server.server_address[1]
    trun.RemoteScheduler(f"http://127.0.0.1:{port}").ping(worker="w")
    headers = {name.lower(): value for name, value in RecordingHandler.seen[-1]["headers"].items()}
    assert set(headers) == {"host", "content-type", "content-length"}
    assert headers["host"] == f"127.0.0.1:{port}"


def test_keyword_call_sends_only_the_arguments_given(recording_server):
    port = recording_server.server_address[1]
    trun.RemoteScheduler(f"http://127.0.0.1:{port}").add_step(worker="w", step_id="S(a=1)", status="DONE")
    from urllib.parse import parse_qs

    body = parse_qs(RecordingHandler.seen[-1]["body"])
    assert json.loads(body["data"][0]) == {"worker": "w", "step_id": "S(a=1)", "status": "DONE"}


def test_unreachable_scheduler_retries_then_raises_rpc_error_naming_the_url():
    port = closed_port()
    with with_config(FAST_RETRIES):
        scheduler = trun.RemoteScheduler(f"http://127.0.0.1:{port}/")
        started = time.monotonic()
        with pytest.raises(trun.RPCError) as info:
            scheduler.fetch_error(step_id="x")
    message = str(info.value)
    assert f"http://127.0.0.1:{port}" in message
    assert "attempt(s)" in message and "Connection refused" in message
    assert time.monotonic() - started < 5


def test_ping_is_tried_only_once():
    with with_config(FAST_RETRIES):
        scheduler = trun.RemoteScheduler(f"http://127.0.0.1:{closed_port()}/")
        with pytest.raises(trun.RPCError):
            scheduler.ping(worker="w")


def test_retry_attempts_are_logged(caplog):
    with with_config(FAST_RETRIES):
        scheduler = trun.RemoteScheduler(f"http://127.0.0.1:{closed_port()}/")
        with caplog.at_level("WARNING", logger="trun-interface"), pytest.raises(trun.RPCError):
            scheduler.fetch_error(step_id="x")
    # At least rpc_retry_attempts tries, each failed one but the last logged.
    assert sum("Failed connecting to remote scheduler" in r.getMessage() for r in caplog.records) >= 2


def test_retries_can_be_silenced(caplog):
    config = {"core": dict(FAST_RETRIES["core"], rpc_log_retries="false")}
    with with_config(config):
        scheduler = trun.RemoteScheduler(f"http://127.0.0.1:{closed_port()}/")
        with caplog.at_level("WARNING", logger="trun-interface"), pytest.raises(trun.RPCError):
            scheduler.fetch_error(step_id="x")
    assert not [r for r in caplog.records if "Failed connecting" in r.getMessage()]


def test_bad_request_is_not_retried_and_carries_the_server_message(trund):
    with with_config({"core": {"rpc_retry_attempts": "5", "rpc_retry_wait": "10"}}):
        scheduler = trun.RemoteScheduler(trund.url)
        started = time.monotonic()
        with pytest.raises(trun.RPCError, match="unknown RPC method 'add_task'"):
            scheduler._request("/api/add_task", {"worker": "w"})
    assert time.monotonic() - started < 8  # a retry would have waited 10 s


def test_worker_carries_on_when_the_scheduler_restarts(trund):
    scheduler = trun.RemoteScheduler(trund.url)
    scheduler.add_step(worker="w", step_id="Before", status="DONE")
    trund.kill(9)
    restarter = threading.Timer(0.5, trund.start)
    with with_config({"core": {"rpc_retry_attempts": "3", "rpc_retry_wait": "5"}}):
        scheduler = trun.RemoteScheduler(trund.url)
        restarter.start()
        try:
            scheduler.add_step(worker="w", step_id="After", status="DONE")
        finally:
            restarter.join()
    assert {"Before", "After"} <= set(scheduler.step_list(status="DONE"))


def test_basic_auth_credentials_in_the_url_are_sent_and_not_in_the_path(recording_server):
    port = recording_server.server_address[1]
    scheduler = trun.RemoteScheduler(f"http://alice:s3cret@127.0.0.1:{port}/")
    assert scheduler.fetch_error(step_id="x") == "ok"
    request = RecordingHandler.seen[-1]
    expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert request["headers"]["Authorization"] == expected
    assert request["path"] == "/api/fetch_error"


def test_basic_auth_url_works_against_trund(trund):
    url = trund.url.replace("http://", "http://user:pass@")
    scheduler = trun.RemoteScheduler(url)
    scheduler.add_step(worker="w", step_id="Auth", status="DONE")
    assert "Auth" in scheduler.step_list(status="DONE")


def test_password_is_redacted_in_errors():
    with with_config(FAST_RETRIES):
        scheduler = trun.RemoteScheduler(f"http://alice:s3cret@127.0.0.1:{closed_port()}/")
        with pytest.raises(trun.RPCError) as info:
            scheduler.fetch_error(step_id="x")
    assert "s3cret" not in str(info.value) and "alice:***@" in str(info.value)


def test_path_prefix_of_the_url_is_kept(recording_server):
    port = recording_server.server_address[1]
    trun.RemoteScheduler(f"http://127.0.0.1:{port}/scheduler/").ping(worker="w")
    assert RecordingHandler.seen[-1]["path"] == "/scheduler/api/ping"


def test_arguments_travel_as_json_in_form_field_data(recording_server):
    port = recording_server.server_address[1]
    trun.RemoteScheduler(f"http://127.0.0.1:{port}").fetch_error(step_id="S(a=1)")
    from urllib.parse import parse_qs

    body = parse_qs(RecordingHandler.seen[-1]["body"])
    assert json.loads(body["data"][0]) == {"step_id": "S(a=1)"}


def test_unsupported_url_scheme_is_rejected_with_the_expected_forms():
    with pytest.raises(ValueError, match="http://host:port/"):
        trun.RemoteScheduler("ftp://example.com/")


def _use_after_fork(scheduler, queue) -> None:
    queue.put(sorted(scheduler.step_list(status="DONE")))


def test_client_is_safe_to_use_after_fork(trund):
    scheduler = trun.RemoteScheduler(trund.url)
    scheduler.add_step(worker="w", step_id="Forked", status="DONE")  # opens a kept-alive connection
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_use_after_fork, args=(scheduler, queue))
    child.start()
    assert queue.get(timeout=20) == ["Forked"]
    child.join(timeout=20)
    assert child.exitcode == 0
    # The parent's connection still works.
    assert "Forked" in scheduler.step_list(status="DONE")


def test_client_is_safe_to_share_between_threads(trund):
    scheduler = trun.RemoteScheduler(trund.url)
    errors: list[BaseException] = []

    def hammer(n: int) -> None:
        try:
            for i in range(20):
                scheduler.add_step(worker=f"w{n}", step_id=f"T{n}-{i}", status="DONE")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len([s for s in scheduler.step_list(status="DONE") if s.startswith("T")]) == 80


def test_server_closing_an_idle_connection_is_handled(trund):
    scheduler = trun.RemoteScheduler(trund.url)
    scheduler.add_step(worker="w", step_id="A", status="DONE")
    trund.restart()  # the kept-alive connection now points at a dead socket
    with with_config({"core": {"rpc_retry_attempts": "1"}}):
        assert "A" in trun.RemoteScheduler(trund.url).step_list(status="DONE")
    assert "A" in scheduler.step_list(status="DONE")


def test_build_runs_a_workflow_through_a_real_trund(trund, tmp_path):
    class RpcEndToEndStep(trun.Step):
        n = trun.IntParameter()

        def requires(self):
            return [RpcEndToEndStep(n=self.n - 1)] if self.n > 0 else []

        def output(self):
            return trun.LocalTarget(str(tmp_path / f"out-{self.n}"))

        def run(self):
            with self.output().open("w") as f:
                f.write("done")

    assert trun.build([RpcEndToEndStep(n=2)], scheduler_host="127.0.0.1", scheduler_port=trund.port)
    done = trun.RemoteScheduler(trund.url).step_list(status="DONE")
    assert len([step_id for step_id in done if step_id.startswith("RpcEndToEndStep")]) == 3


def test_client_survives_pickling_for_spawned_processes(trund):
    import pickle

    scheduler = trun.RemoteScheduler(trund.url)
    scheduler.add_step(worker="w", step_id="Pickled", status="DONE")
    copy = pickle.loads(pickle.dumps(scheduler))
    assert "Pickled" in copy.step_list(status="DONE")
