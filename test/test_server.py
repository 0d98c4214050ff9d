"""trund's HTTP surface and its durable state, against real ``trund`` processes on loopback ports."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest


def call(url: str, method: str, *, data=None, raw: bytes | None = None, http_method: str = "POST",
         content_type: str | None = None, headers: dict | None = None, query: str | None = None):
    """One raw HTTP request to ``/api/<method>``; returns (status, decoded JSON body, response headers)."""
    target = f"{url}/api/{method}"
    if query is not None:
        target += "?" + query
    body = raw
    all_headers = dict(headers or {})
    if data is not None:
        body = urllib.parse.urlencode({"data": json.dumps(data)}).encode()
        all_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    if content_type:
        all_headers["Content-Type"] = content_type
    request = urllib.request.Request(target, data=body if http_method != "GET" else None,
                                     method=http_method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
            return response.status, (json.loads(text) if text else None), response.headers
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        return error.code, json.loads(text), error.headers


def write_config(path, text: str) -> dict:
    path.write_text(text)
    return {"TRUN_CONFIG_PATH": str(path)}


def trund_command(port: int, state_path, *extra: str) -> list[str]:
    return [sys.executable, "-c", "from trun.cmdline import trund; trund()",
            "--address", "127.0.0.1", "--port", str(port), "--state-path", str(state_path), *extra]


# ---------------------------------------------------------------- the wire protocol
def test_head_root_answers_204_for_health_checks(trund):
    request = urllib.request.Request(trund.url + "/", method="HEAD")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 204


def test_get_root_shows_step_counts_until_the_visualiser_exists(trund):
    call(trund.url, "add_step", data={"worker": "w", "step_id": "A", "status": "DONE"})
    with urllib.request.urlopen(trund.url + "/", timeout=5) as response:
        page = response.read().decode()
    assert "DONE" in page or "visualiser" in response.geturl()


def test_post_form_data_answers_response_object(trund):
    status, body, _ = call(trund.url, "add_step", data={"worker": "w", "step_id": "A", "status": "DONE"})
    assert status == 200
    assert body == {"response": None} or "response" in body
    status, body, _ = call(trund.url, "step_list", data={"status": "DONE"})
    assert status == 200 and "A" in body["response"]


def test_get_with_data_in_query_string(trund):
    call(trund.url, "add_step", data={"worker": "w", "step_id": "A", "status": "DONE"})
    query = urllib.parse.urlencode({"data": json.dumps({"status": "DONE"})})
    status, body, _ = call(trund.url, "step_list", http_method="GET", query=query)
    assert status == 200 and "A" in body["response"]


def test_json_request_body_is_accepted(trund):
    raw = json.dumps({"worker": "w", "step_id": "B", "status": "DONE"}).encode()
    status, _, _ = call(trund.url, "add_step", raw=raw, content_type="application/json")
    assert status == 200
    _, body, _ = call(trund.url, "step_list", data={"status": "DONE"})
    assert "B" in body["response"]


def test_unknown_method_is_404_and_suggests_the_renamed_luigi_name(trund):
    status, body, _ = call(trund.url, "add_task", data={"worker": "w", "task_id": "A"})
    assert status == 404
    assert "add_task" in body["error"] and "add_step" in body["error"]


def test_malformed_json_is_400_naming_data(trund):
    status, body, _ = call(trund.url, "ping", raw=b"data=%7Bnot-json", content_type="application/x-www-form-urlencoded")
    assert status == 400
    assert "not valid JSON" in body["error"]


def test_data_that_is_not_an_object_is_400(trund):
    status, body, _ = call(trund.url, "ping", data=["w"])
    assert status == 400
    assert "must be a JSON object" in body["error"]


def test_unknown_argument_is_400_naming_it_and_the_renamed_spelling(trund):
    status, body, _ = call(trund.url, "add_step", data={"worker": "w", "task_id": "A"})
    assert status == 400
    assert "'task_id'" in body["error"] and "step_id" in body["error"]


def test_missing_required_argument_is_400_naming_it(trund):
    status, body, _ = call(trund.url, "fetch_error", data={})
    assert status == 400
    assert "missing required argument 'step_id'" in body["error"]


def test_argument_of_wrong_basic_type_is_400(trund):
    status, body, _ = call(trund.url, "fetch_error", data={"step_id": ["not", "a", "string"]})
    assert status == 400
    assert "'step_id'" in body["error"] and "expected a string" in body["error"]


def test_body_over_the_configured_limit_is_413(trund_factory, tmp_path):
    env = write_config(tmp_path / "trun.cfg", "[scheduler]\nmax_body_size = 1000\n")
    server = trund_factory(env=env)
    status, body, _ = call(server.url, "ping", data={"worker": "w" * 2000})
    assert status == 413
    assert "larger than 1000 bytes" in body["error"]


def test_unknown_path_is_404_with_json_body(trund):
    try:
        urllib.request.urlopen(trund.url + "/nothing/here", timeout=5)
    except urllib.error.HTTPError as error:
        assert error.code == 404
        assert "error" in json.loads(error.read())
    else:
        pytest.fail("expected 404")


@pytest.mark.parametrize("path", ["/nothing/here", "/api", "/apiping"])
def test_a_page_path_with_a_body_is_answered_by_the_pages_and_the_connection_goes_on(trund, path):
    import http.client

    host, port = urllib.parse.urlsplit(trund.url).netloc.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", path, body=b"data=" + b"x" * 5000,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        page = connection.getresponse()
        assert page.status in (404, 405)
        assert "error" in json.loads(page.read())
        # The same keep-alive connection then carries an RPC as usual.
        connection.request("POST", "/api/ping", body=urllib.parse.urlencode({"data": json.dumps({"worker": "w"})}),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        rpc = connection.getresponse()
        assert rpc.status == 200
        assert json.loads(rpc.read()) == {"response": {"rpc_messages": []}}
    finally:
        connection.close()


def test_api_path_with_extra_segments_is_404_with_json_body(trund):
    status, body, _ = call(trund.url, "ping/extra", data={"worker": "w"})
    assert status == 404
    assert "/api/<method>" in body["error"]


def test_api_verb_other_than_get_post_options_is_405_with_json_body(trund):
    status, body, headers = call(trund.url, "ping", raw=b"{}", http_method="PUT", content_type="application/json")
    assert status == 405
    assert body == {"error": "Method Not Allowed"}
    assert "POST" in headers["Allow"]


def test_large_api_answer_is_gzipped_for_a_client_that_accepts_it(trund):
    for i in range(40):
        call(trund.url, "add_step", data={"worker": "w", "step_id": f"Step_{i:04d}_with_a_long_enough_id"})
    request = urllib.request.Request(trund.url + "/api/step_list", data=b"data=%7B%7D", method="POST",
                                     headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        import gzip
        listed = json.loads(gzip.decompress(response.read()))["response"]
    assert "Step_0039_with_a_long_enough_id" in listed


def test_one_kept_alive_connection_serves_many_rpcs(trund):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", trund.port, timeout=10)
    try:
        for i in range(3):
            connection.request("POST", "/api/ping", body=json.dumps({"worker": f"w{i}"}),
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.status == 200
            assert "rpc_messages" in json.loads(response.read())["response"]
    finally:
        connection.close()


def _trund_with_idle_timeout(trund_factory, tmp_path, seconds: float):
    return trund_factory(env=write_config(tmp_path / "idle.cfg", f"[scheduler]\nidle_connection_timeout = {seconds}\n"))


def _ping_on(sock, worker: str) -> bytes:
    body = json.dumps({"worker": worker}).encode()
    sock.sendall(b"POST /api/ping HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    return answer


def test_a_connection_idle_past_idle_connection_timeout_is_closed(trund_factory, tmp_path):
    import socket

    trund = _trund_with_idle_timeout(trund_factory, tmp_path, 1)
    with socket.create_connection(("127.0.0.1", trund.port), timeout=10) as sock:
        _ping_on(sock, "w")
        started = time.monotonic()
        assert sock.recv(1) == b""  # the server closed it
        assert 0.9 < time.monotonic() - started < 8


def test_a_connection_that_never_sends_a_request_is_closed_too(trund_factory, tmp_path):
    import socket

    trund = _trund_with_idle_timeout(trund_factory, tmp_path, 1)
    with socket.create_connection(("127.0.0.1", trund.port), timeout=10) as sock:
        sock.sendall(b"POST /api/ping HTTP/1.1\r\n")  # headers begun, never finished
        assert sock.recv(1) == b""


def test_a_connection_in_use_outlives_idle_connection_timeout(trund_factory, tmp_path):
    import socket

    # Pings 0.1 s apart for 2.5 times the timeout: a loaded machine may stall
    # a gap for a while, but not for the 1.9 s it would take to close.
    trund = _trund_with_idle_timeout(trund_factory, tmp_path, 2)
    with socket.create_connection(("127.0.0.1", trund.port), timeout=10) as sock:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            _ping_on(sock, "w")
            time.sleep(0.1)


def test_server_keeps_serving_after_every_kind_of_bad_request(trund):
    call(trund.url, "no_such_method", data={})
    call(trund.url, "ping", raw=b"data=%7B", content_type="application/x-www-form-urlencoded")
    call(trund.url, "ping", raw=b"\xff\xfe", content_type="application/json")
    call(trund.url, "add_step", data={"worker": 1})
    status, body, _ = call(trund.url, "ping", data={"worker": "w"})
    assert status == 200 and "rpc_messages" in body["response"]


def test_scheduler_exception_is_500_json_state_unchanged_and_server_keeps_serving(trund):
    # The scheduler raises ValueError for a status it does not know.
    status, body, _ = call(trund.url, "add_step", data={"worker": "w", "step_id": "Bogus", "status": "BOGUS"})
    assert status == 500
    assert "add_step" in body["error"] and "ValueError" in body["error"]
    assert "Bogus" not in call(trund.url, "step_list", data={})[1]["response"]
    status, _, _ = call(trund.url, "ping", data={"worker": "w"})
    assert status == 200
    assert "scheduler error in add_step" in (trund.state_dir / f"trund-{trund.port}.log").read_text()


def test_cors_disabled_by_default_sends_no_cors_headers(trund):
    _, _, headers = call(trund.url, "ping", data={"worker": "w"}, headers={"Origin": "http://ui.example"})
    assert headers.get("Access-Control-Allow-Origin") is None


def test_cors_allowed_origin_is_echoed(trund_factory, tmp_path):
    env = write_config(tmp_path / "trun.cfg",
                       '[cors]\nenabled = true\nallowed_origins = ["http://ui.example"]\n')
    server = trund_factory(env=env)
    _, _, headers = call(server.url, "ping", data={"worker": "w"}, headers={"Origin": "http://ui.example"})
    assert headers.get("Access-Control-Allow-Origin") == "http://ui.example"
    _, _, headers = call(server.url, "ping", data={"worker": "w"}, headers={"Origin": "http://evil.example"})
    assert headers.get("Access-Control-Allow-Origin") is None


def test_cors_preflight_answers_204_with_allowed_methods(trund_factory, tmp_path):
    env = write_config(tmp_path / "trun.cfg", "[cors]\nenabled = true\nallow_any_origin = true\n")
    server = trund_factory(env=env)
    request = urllib.request.Request(server.url + "/api/ping", method="OPTIONS",
                                     headers={"Origin": "http://ui.example"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "GET" in response.headers["Access-Control-Allow-Methods"]


# ---------------------------------------------------------------- durable state
def test_kill_9_keeps_acknowledged_done_failed_and_disabled_steps(trund):
    call(trund.url, "add_step", data={"worker": "w", "step_id": "Done1", "status": "DONE"})
    call(trund.url, "add_step", data={"worker": "w", "step_id": "Failed1", "status": "FAILED",
                                      "expl": "Traceback: it broke"})
    call(trund.url, "add_step", data={"worker": "w", "step_id": "Disabled1", "status": "DISABLED"})

    trund.kill(9)
    trund.start()

    assert "Done1" in call(trund.url, "step_list", data={"status": "DONE"})[1]["response"]
    assert "Failed1" in call(trund.url, "step_list", data={"status": "FAILED"})[1]["response"]
    assert "Disabled1" in call(trund.url, "step_list", data={"status": "DISABLED"})[1]["response"]
    assert "it broke" in call(trund.url, "fetch_error", data={"step_id": "Failed1"})[1]["response"]["error"]


def test_kill_9_keeps_disabled_workers_their_batchers_and_queued_messages(trund):
    call(trund.url, "add_worker", data={"worker": "off", "info": {"host": "h"}})
    call(trund.url, "disable_worker", data={"worker": "off"})
    call(trund.url, "add_step_batcher", data={"worker": "batching", "step_family": "Daily",
                                              "batched_args": ["date"], "max_batch_size": 5})
    call(trund.url, "set_worker_processes", data={"worker": "batching", "n": 3})

    trund.kill(9)
    trund.start()

    assert call(trund.url, "get_work", data={"worker": "off", "host": "h"})[1]["response"]["worker_state"] == "disabled"
    messages = call(trund.url, "ping", data={"worker": "batching"})[1]["response"]["rpc_messages"]
    assert messages == [{"name": "set_worker_processes", "kwargs": {"n": 3}}]
    for step in ("2026-01-01", "2026-01-02"):
        call(trund.url, "add_step", data={"worker": "batching", "step_id": f"Daily_{step}", "family": "Daily",
                                          "params": {"date": step}, "batchable": True})
    work = call(trund.url, "get_work", data={"worker": "batching", "host": "h"})[1]["response"]
    assert sorted(work["batch_step_ids"]) == ["Daily_2026-01-01", "Daily_2026-01-02"]  # still batched


@pytest.mark.slow
def test_kill_9_keeps_failure_counts_and_scheduler_disable_time(trund_factory, tmp_path):
    env = write_config(tmp_path / "trun.cfg",
                       "[scheduler]\nretry_count = 2\ndisable_window = 3600\ndisable_persist = 5\n"
                       "retry_delay = 0\n")
    server = trund_factory(env=env)
    call(server.url, "add_step", data={"worker": "w", "step_id": "Flaky", "status": "FAILED", "expl": "one"})
    server.kill(9)
    server.start()
    # The first failure was remembered: the second one reaches retry_count and disables.
    call(server.url, "add_step", data={"worker": "w", "step_id": "Flaky", "status": "FAILED", "expl": "two"})
    disabled_at = time.time()
    assert "Flaky" in call(server.url, "step_list", data={"status": "DISABLED"})[1]["response"]

    server.kill(9)
    # Restart late enough that a disable time reset at start-up would show.
    time.sleep(max(0.0, disabled_at + 1.2 - time.time()))
    server.start()
    listed = call(server.url, "step_list", data={"status": "DISABLED"})[1]["response"]
    assert "Flaky" in listed and listed["Flaky"].get("re_enable_able", True)
    # disable_persist (5 s) after the original disable time, prune re-enables it;
    # had start-up reset the disable time, it would stay disabled until 6.2 s or later.
    time.sleep(max(0.0, disabled_at + 5.3 - time.time()))
    call(server.url, "prune", data={})
    assert "Flaky" not in call(server.url, "step_list", data={"status": "DISABLED"})[1]["response"]


def test_sigterm_writes_a_final_snapshot(trund):
    call(trund.url, "add_step", data={"worker": "w", "step_id": "A", "status": "DONE"})
    trund.kill(15)
    assert trund.proc.returncode == 0
    snapshot = json.loads((trund.state_path / "snapshot.json").read_text())
    assert snapshot["format"] == "trund-state"
    assert "A" in json.dumps(snapshot["scheduler"])
    journal = (trund.state_path / "journal.jsonl").read_text().splitlines()
    assert len(journal) == 1  # only the header: everything is in the snapshot


def test_state_survives_restart_after_clean_stop(trund):
    call(trund.url, "add_step", data={"worker": "w", "step_id": "A", "status": "DONE"})
    trund.restart()
    assert "A" in call(trund.url, "step_list", data={"status": "DONE"})[1]["response"]


def test_torn_last_journal_line_is_tolerated_at_start(trund):
    call(trund.url, "add_step", data={"worker": "w", "step_id": "A", "status": "DONE"})
    trund.kill(9)
    with open(trund.state_path / "journal.jsonl", "ab") as f:
        f.write(b'{"seq": 99, "changes": {"B": {"sta')
    trund.start()
    assert "A" in call(trund.url, "step_list", data={"status": "DONE"})[1]["response"]
    assert "torn" in (trund.state_dir / f"trund-{trund.port}.log").read_text()


def _refused_start(state_path, free_port, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(trund_command(free_port, state_path, *extra), capture_output=True, text=True, timeout=30)


def test_corrupt_snapshot_refuses_to_start_with_one_line_naming_the_file(tmp_path, free_port):
    state = tmp_path / "state"
    state.mkdir()
    (state / "snapshot.json").write_text('{"format": "trund-state", "version": 1, "sch')
    result = _refused_start(state, free_port)
    assert result.returncode == 1
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("trund:")]
    assert len(error_lines) == 1
    assert "snapshot.json" in error_lines[0] and "--ignore-bad-state" in error_lines[0]
    assert "Traceback" not in result.stderr


def test_future_state_version_refuses_to_start(tmp_path, free_port):
    state = tmp_path / "state"
    state.mkdir()
    (state / "snapshot.json").write_text(json.dumps(
        {"format": "trund-state", "version": 999, "seq": 0, "scheduler": {}}))
    result = _refused_start(state, free_port)
    assert result.returncode == 1
    assert "newer trun" in result.stderr


def test_corrupt_journal_middle_line_refuses_to_start(trund, free_port):
    for name in ("A", "B", "C"):
        call(trund.url, "add_step", data={"worker": "w", "step_id": name, "status": "DONE"})
    trund.kill(9)
    journal = trund.state_path / "journal.jsonl"
    lines = journal.read_bytes().split(b"\n")
    lines[2] = b"#### not json ####"
    journal.write_bytes(b"\n".join(lines))
    result = _refused_start(trund.state_path, free_port)
    assert result.returncode == 1
    assert "journal.jsonl" in result.stderr and "line 3" in result.stderr


def test_ignore_bad_state_starts_and_moves_the_bad_file_aside(trund_factory, tmp_path):
    state_dir = tmp_path / "srv"
    (state_dir / "trund-state").mkdir(parents=True)
    (state_dir / "trund-state" / "snapshot.json").write_text("garbage")
    server = trund_factory(extra_args=["--ignore-bad-state"], state_dir=state_dir)
    status, _, _ = call(server.url, "ping", data={"worker": "w"})
    assert status == 200
    assert any(p.name.startswith("snapshot.json.bad-") for p in (state_dir / "trund-state").iterdir())


def test_second_trund_on_the_same_state_path_is_refused(trund, free_port):
    result = _refused_start(trund.state_path, free_port)
    assert result.returncode == 1
    assert "already in use" in result.stderr


def test_port_already_in_use_is_one_clear_line(trund, tmp_path):
    result = subprocess.run(trund_command(trund.port, tmp_path / "other"), capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{trund.port}" in result.stderr


def test_unix_socket_serves_the_api(tmp_path):
    sock = tmp_path / "trund.sock"
    command = [sys.executable, "-c", "from trun.cmdline import trund; trund()",
               "--unix-socket", str(sock), "--state-path", str(tmp_path / "state")]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from trun.rpc import RemoteScheduler

        deadline = time.monotonic() + 15
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        url = "http+unix://" + urllib.parse.quote(str(sock), safe="") + "/"
        scheduler = RemoteScheduler(url)
        scheduler.add_step(worker="w", step_id="A", status="DONE")
        assert "A" in scheduler.step_list(status="DONE")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert not sock.exists()  # removed on clean shutdown


def test_journal_is_written_before_the_answer(trund):
    call(trund.url, "add_step", data={"worker": "w", "step_id": "Acked", "status": "DONE"})
    # No kill needed: the bytes are already in the file the moment the answer arrived.
    assert "Acked" in (trund.state_path / "journal.jsonl").read_text()


def test_state_directory_is_private(trund):
    assert os.stat(trund.state_path).st_mode & 0o077 == 0


def test_periodic_snapshot_from_a_forked_child_then_kill_9_loses_nothing(trund_factory, tmp_path):
    env = write_config(tmp_path / "trun.cfg", "[scheduler]\nstate_snapshot_records = 5\n")
    server = trund_factory(env=env)
    for i in range(12):
        call(server.url, "add_step", data={"worker": "w", "step_id": f"S{i}", "status": "DONE"})
    snapshot_file = server.state_path / "snapshot.json"

    def snapshot_has(step_id: str) -> bool:
        try:
            return step_id in json.loads(snapshot_file.read_text())["scheduler"]["steps"]
        except (OSError, ValueError, KeyError):
            return False

    deadline = time.monotonic() + 10
    while not snapshot_has("S4") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert snapshot_has("S4")
    server.kill(9)
    server.start()
    done = call(server.url, "step_list", data={"status": "DONE"})[1]["response"]
    assert {f"S{i}" for i in range(12)} <= set(done)
