"""The web UI over HTTP (no browser): the paged step list RPC, static files, history pages, /metrics."""
from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from trun.rpc import RemoteScheduler
from trun.scheduler import RPC_METHODS, Scheduler
from trun.visualiser import MAX_PAGE_SIZE, STATIC_PATH

STATIC = Path(STATIC_PATH) / "visualiser"
XSS = "<img src=x onerror=alert(1)>"


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def rpc(url: str, method: str, **kwargs) -> tuple[int, dict]:
    data = urllib.parse.urlencode({"data": json.dumps(kwargs)}).encode()
    try:
        with urllib.request.urlopen(f"{url}/api/{method}", data=data, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def populate(s) -> None:
    """Two families; a failed step with a pending dependent; a DONE and a running step."""
    s.add_step(worker="w", step_id="Load_1", family="Load", params={"day": "1"}, deps=["Extract_1"])
    s.add_step(worker="w", step_id="Extract_1", family="Extract", params={"day": "1"})
    s.add_step(worker="w", step_id="Extract_2", family="Extract", params={"day": "2"})
    s.add_step(worker="w", step_id="Extract_3", family="Extract", params={"day": "3", "note": XSS})
    s.add_step(worker="w", step_id="Extract_1", status="FAILED", expl="Traceback\nValueError: kaboom")
    s.add_step(worker="w", step_id="Extract_2", status="DONE")
    s.get_work(worker="w", host="h")  # Extract_3 runs


# ---------------------------------------------------------------- step_list_page (in process)
@pytest.fixture
def scheduler() -> Scheduler:
    s = Scheduler(retry_delay=1000)
    populate(s)
    return s


def test_step_list_page_is_an_rpc_method():
    assert list(RPC_METHODS["step_list_page"].parameters) == ["status", "family", "search", "offset", "limit"]


def test_page_counts_each_status_and_upstream_failed_separately(scheduler):
    page = scheduler.step_list_page()
    assert page["total"] == page["all_count"] == 4
    counts = {k: v for k, v in page["status_counts"].items() if v}
    assert counts == {"FAILED": 1, "DONE": 1, "RUNNING": 1, "UPSTREAM_FAILED": 1}
    assert page["family_counts"] == {"Load": 1, "Extract": 3}


def test_page_filters_by_several_statuses(scheduler):
    page = scheduler.step_list_page(status="FAILED,UPSTREAM_FAILED")
    assert sorted((s["step_id"], s["category"]) for s in page["steps"]) == [
        ("Extract_1", "FAILED"), ("Load_1", "UPSTREAM_FAILED")]


def test_status_counts_ignore_the_status_filter_and_family_counts_the_family_filter(scheduler):
    page = scheduler.step_list_page(status="DONE", family="Load")
    assert page["total"] == 0
    assert page["status_counts"]["UPSTREAM_FAILED"] == 1  # what choosing that status would show
    assert page["family_counts"] == {"Extract": 1}  # DONE steps per family


def test_page_search_needs_every_term_in_the_display_name_or_id(scheduler):
    assert [s["step_id"] for s in scheduler.step_list_page(search="extract DAY=2")["steps"]] == ["Extract_2"]
    assert [s["step_id"] for s in scheduler.step_list_page(search="load_1")["steps"]] == ["Load_1"]
    assert scheduler.step_list_page(search="extract nothing")["total"] == 0


def test_id_search_selects_exactly_one_step(scheduler):
    page = scheduler.step_list_page(search="id:Extract_1")
    assert [(s["step_id"], s["category"]) for s in page["steps"]] == [("Extract_1", "FAILED")]
    assert page["all_count"] == 4
    assert scheduler.step_list_page(search="id:Extract_")["total"] == 0


def test_pages_are_most_recently_updated_first_and_do_not_overlap():
    clock = [0.0]
    s = Scheduler(clock=lambda: clock[0])
    for i in range(25):
        clock[0] += 1
        s.add_step(worker="w", step_id=f"S_{i:02d}", family="S")
    first = [x["step_id"] for x in s.step_list_page(offset=0, limit=10)["steps"]]
    third = [x["step_id"] for x in s.step_list_page(offset=20, limit=10)["steps"]]
    assert first == [f"S_{i:02d}" for i in range(24, 14, -1)]
    assert third == [f"S_{i:02d}" for i in range(4, -1, -1)]


def test_unknown_status_is_rejected_with_a_suggestion(scheduler):
    with pytest.raises(ValueError, match=r"unknown status 'FAILD'.*Did you mean 'FAILED'\?"):
        scheduler.step_list_page(status="FAILD")


@pytest.mark.parametrize("kwargs", [{"limit": 0}, {"limit": MAX_PAGE_SIZE + 1}, {"offset": -1}])
def test_out_of_range_paging_is_rejected(scheduler, kwargs):
    with pytest.raises(ValueError, match="offset|limit"):
        scheduler.step_list_page(**kwargs)


def test_rows_carry_what_the_list_and_detail_show(scheduler):
    [row] = scheduler.step_list_page(search="day=3")["steps"]
    assert row["display_name"] == f"Extract(day=3, note={XSS})"
    assert (row["status"], row["worker_running"], row["params"]["note"]) == ("RUNNING", "w", XSS)


# ---------------------------------------------------------------- over HTTP on a real trund
@pytest.fixture
def live(trund):
    populate(RemoteScheduler(trund.url))
    return trund


def test_step_list_page_over_the_api(live):
    status, body = rpc(live.url, "step_list_page", status="FAILED", limit=5)
    assert status == 200
    assert [s["step_id"] for s in body["response"]["steps"]] == ["Extract_1"]


def test_step_list_page_bad_status_is_an_error_naming_it(live):
    status, body = rpc(live.url, "step_list_page", status="RUNING")
    assert status >= 400
    assert "RUNING" in body["error"] and "RUNNING" in body["error"]


def test_luigi_step_list_still_works(live):
    status, body = rpc(live.url, "step_list", status="FAILED")
    assert status == 200 and list(body["response"]) == ["Extract_1"]


def test_root_redirects_relatively_to_the_visualiser(live):
    request = urllib.request.Request(live.url + "/")
    opener = urllib.request.build_opener(type("NoRedirect", (urllib.request.HTTPRedirectHandler,), {
        "redirect_request": lambda *a, **k: None}))
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(request, timeout=10)
    assert info.value.code in (301, 302)
    assert info.value.headers["Location"] == "static/visualiser/index.html"


def test_visualiser_page_and_its_modules_are_served(live):
    status, content_type, html = get(live.url + "/static/visualiser/index.html")
    assert status == 200 and content_type.startswith("text/html")
    assert '<script type="module" src="js/app.js">' in html
    for path in sorted((STATIC / "js").glob("*.js")):
        status, content_type, _ = get(f"{live.url}/static/visualiser/js/{path.name}")
        assert (status, "javascript" in content_type) == (200, True), path.name


def test_every_module_imported_by_the_app_exists():
    for path in (STATIC / "js").glob("*.js"):
        for target in re.findall(r'from "\./([\w-]+\.js)"', path.read_text()):
            assert (STATIC / "js" / target).exists(), f"{path.name} imports missing {target}"


def test_static_files_load_nothing_from_the_network():
    for path in STATIC.rglob("*"):
        if path.suffix in (".html", ".js", ".css"):
            text = path.read_text()
            assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), path
            assert "@import" not in text and "cdn" not in text.lower(), path


def test_javascript_never_parses_data_as_html():
    for path in (STATIC / "js").glob("*.js"):
        code = re.sub(r"//.*", "", path.read_text())  # comments may mention what is avoided
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in code, f"{path.name} uses {sink}"


def test_history_pages_say_how_to_turn_history_on(live):
    status, _, html = get(live.url + "/history")
    assert status == 404
    assert "record_step_history = true" in html


def test_metrics_default_collector_answers_empty(live):
    status, _, body = get(live.url + "/metrics")
    assert (status, body) == (200, "")


# ---------------------------------------------------------------- history pages
@pytest.fixture
def history_trund(trund_factory, tmp_path):
    pytest.importorskip("sqlalchemy", reason="the history extra (SQLAlchemy 2) is not installed")
    cfg = tmp_path / "history.cfg"
    cfg.write_text(f"[scheduler]\nrecord_step_history = true\n\n[step_history]\n"
                   f"db_connection = sqlite:///{tmp_path / 'history.db'}\n")
    trund = trund_factory(env={"TRUN_CONFIG_PATH": str(cfg)})
    remote = RemoteScheduler(trund.url)
    remote.add_step(worker="w", step_id="Evil_1", family="Evil", params={"payload": XSS})
    assert remote.get_work(worker="w", host="box-1")["step_id"] == "Evil_1"
    remote.add_step(worker="w", step_id="Evil_1", status="DONE")
    remote.add_step(worker="w", step_id="Plain_1", family="Plain", params={"day": "1"})
    return trund


def test_has_step_history_is_true_when_recording(history_trund):
    assert rpc(history_trund.url, "has_step_history")[1]["response"] is True


def test_recent_runs_page_lists_runs_with_escaped_parameters(history_trund):
    status, content_type, html = get(history_trund.url + "/history")
    assert status == 200 and content_type.startswith("text/html")
    assert "Evil" in html and "Plain" in html
    assert XSS not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_run_page_by_step_id_shows_host_parameters_and_events(history_trund):
    status, _, html = get(history_trund.url + "/history/by_step_id/Evil_1")
    assert status == 200
    assert "box-1" in html
    assert html.index(">DONE<") < html.index(">RUNNING<") < html.index(">PENDING<")
    assert XSS not in html


def test_run_page_by_record_id(history_trund):
    status, _, html = get(history_trund.url + "/history/by_id/1")
    assert status == 200 and "Evil_1" in html


def test_runs_by_name_and_by_params(history_trund):
    assert "Plain_1" not in get(history_trund.url + "/history/by_name/Evil")[2]
    query = urllib.parse.quote(json.dumps({"day": "1"}))
    status, _, html = get(f"{history_trund.url}/history/by_params/Plain?data={query}")
    assert status == 200 and "run 2" in html


def test_by_params_with_malformed_data_is_400_naming_the_form(history_trund):
    status, _, html = get(history_trund.url + "/history/by_params/Plain?data=oops")
    assert status == 400 and "JSON object" in html


def test_unknown_run_is_404(history_trund):
    assert get(history_trund.url + "/history/by_step_id/Nope_1")[0] == 404
    assert get(history_trund.url + "/history/by_id/999")[0] == 404
    assert get(history_trund.url + "/history/by_id/abc")[0] == 400


def test_step_family_menu_and_running_time_chart(history_trund):
    status, _, menu = get(history_trund.url + "/steplist")
    assert status == 200 and "steplist/Evil" in menu and "steplist/Plain" in menu
    status, _, chart = get(history_trund.url + "/steplist/Evil")
    assert status == 200 and "<svg" in chart and "<rect" in chart


def test_history_pages_link_the_local_stylesheet_relatively(history_trund):
    html = get(history_trund.url + "/history/by_name/Evil")[2]
    assert 'href="../../static/visualiser/css/visualiser.css"' in html
