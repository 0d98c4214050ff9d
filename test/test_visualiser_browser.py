"""The visualiser in a real browser (Debian's chromium driven by Playwright) against a real trund and real workers.

A module-wide trund is fed by two ``trun`` worker processes: one runs a small
workflow (done, failed, upstream-failed and an XSS-laden parameter), the other
keeps one step RUNNING with a status message and progress. Screenshots go to
``test-artifacts/``; with ``TRUN_TEST_UPDATE_SCREENSHOTS=1`` the list and graph views
also replace ``doc/_static/visualiser.png`` and ``visualiser_graph.png``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import REPO_ROOT, TrundProcess

from trun.rpc import RemoteScheduler

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed "
                                                             "(pip install playwright; never `playwright install`)")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = REPO_ROOT / "test-artifacts"
UPDATE_DOC_SCREENSHOTS = os.environ.get("TRUN_TEST_UPDATE_SCREENSHOTS") == "1"
XSS = "<img src=x onerror=alert(1)>"
TIMEOUT_MS = 15_000

WORKFLOW = textwrap.dedent('''
    import os
    import time

    import trun


    class Good(trun.Step):
        n = trun.IntParameter()

        def output(self):
            return trun.LocalTarget(f"out/good_{self.n}.txt")

        def run(self):
            with self.output().open("w") as f:
                f.write("ok")


    class Bad(trun.Step):
        def output(self):
            return trun.LocalTarget("out/bad.txt")

        def run(self):
            raise ValueError("kaboom <b>not bold</b>")


    class NeedsBad(trun.Step):
        def requires(self):
            return Bad()

        def output(self):
            return trun.LocalTarget("out/needs_bad.txt")


    class Evil(trun.Step):
        payload = trun.Parameter()

        def output(self):
            return trun.LocalTarget("out/evil.txt")

        def run(self):
            with self.output().open("w") as f:
                f.write("ok")


    class All(trun.WrapperStep):
        def requires(self):
            return [Good(n=i) for i in range(5)] + [NeedsBad(), Evil(payload="<img src=x onerror=alert(1)>")]


    class Slow(trun.Step):
        """Runs until the file "release" appears (or an hour), reporting progress."""

        def output(self):
            return trun.LocalTarget("out/slow.txt")

        def run(self):
            self.set_status_message("crunching <i>numbers</i>")
            self.set_progress_percentage(42)
            deadline = time.time() + 3600  # the fixture's teardown releases it
            while not os.path.exists("release") and time.time() < deadline:
                time.sleep(0.2)
            with self.output().open("w") as f:
                f.write("ok")
''')


def worker_command(url: str, step: str) -> list[str]:
    return [sys.executable, "-m", "trun", "--module", "vis_workflow", step, "--scheduler-url", url,
            "--no-lock", "--no-progress"]


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A trund after real workers ran the workflow; Slow stays RUNNING until teardown."""
    workdir = tmp_path_factory.mktemp("visualiser")
    (workdir / "vis_workflow.py").write_text(WORKFLOW)
    trund = TrundProcess(workdir).start()
    env = dict(os.environ, PYTHONPATH=str(workdir))
    slow = subprocess.Popen(worker_command(trund.url, "Slow"), cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        subprocess.run(worker_command(trund.url, "All"), cwd=workdir, env=env, capture_output=True, timeout=120)
        remote = RemoteScheduler(trund.url)
        wait_for(lambda: remote.step_list_page(status="RUNNING")["total"] == 1, what="Slow to run")
        yield trund
    finally:
        (workdir / "release").write_text("")
        try:
            slow.wait(timeout=30)
        except subprocess.TimeoutExpired:
            slow.kill()
        trund.stop()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.dialogs = []
    pg.errors = []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    ARTIFACTS.mkdir(exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
    context.close()
    assert not pg.errors, f"JavaScript errors: {pg.errors}"


def save_doc_screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))
    if UPDATE_DOC_SCREENSHOTS:
        page.screenshot(path=str(REPO_ROOT / "doc" / "_static" / name))


def open_list(page, url: str, fragment: str = "") -> None:
    page.goto(f"{url}/static/visualiser/index.html{fragment}")
    page.wait_for_selector("body[data-list-rendered]")


def box_count(page, status: str) -> int:
    return int(page.text_content(f'.status-box[data-status="{status}"] .count').replace(",", ""))


def row_names(page) -> list[str]:
    return page.locator("#step-table tbody a.step-link").all_text_contents()


def wait_rows(page, predicate, what: str) -> list[str]:
    return wait_for(lambda: (lambda names: names if predicate(names) else None)(row_names(page)), 10, what)


def all_step_id(url: str) -> str:
    [row] = RemoteScheduler(url).step_list_page(family="All")["steps"]
    return row["step_id"]


# ---------------------------------------------------------------- the list
def test_root_opens_the_list_with_the_statuses_of_real_workers(seeded, page):
    page.goto(seeded.url + "/")
    page.wait_for_selector("body[data-list-rendered]")
    assert page.url.endswith("/static/visualiser/index.html")
    counts = {s: box_count(page, s) for s in ("DONE", "FAILED", "UPSTREAM_FAILED", "RUNNING", "PENDING")}
    assert counts == {"DONE": 6, "FAILED": 1, "UPSTREAM_FAILED": 2, "RUNNING": 1, "PENDING": 0}
    assert len(row_names(page)) == 10
    save_doc_screenshot(page, "visualiser.png")


def test_clicking_a_status_box_filters_on_the_server_and_goes_in_the_url(seeded, page):
    open_list(page, seeded.url)
    page.click('.status-box[data-status="FAILED"]')
    assert wait_rows(page, lambda names: names == ["Bad()"], "only the failed step")
    assert "statuses=FAILED" in page.url
    assert page.get_attribute('.status-box[data-status="FAILED"]', "aria-pressed") == "true"


def test_search_box_filters_the_list(seeded, page):
    open_list(page, seeded.url)
    page.fill("#step-search", "good n=3")
    assert wait_rows(page, lambda names: names == ["Good(n=3)"], "the searched step")
    assert "search=good+n%3D3" in page.url or "search=good%20n%3D3" in page.url


def test_family_sidebar_filters_the_list(seeded, page):
    open_list(page, seeded.url)
    page.click('.family-list a[data-family="Good"]')
    names = wait_rows(page, lambda n: len(n) == 5, "five Good steps")
    assert sorted(names) == [f"Good(n={i})" for i in range(5)]


def test_a_pasted_url_restores_the_filtered_list(seeded, page):
    open_list(page, seeded.url, "#tab=steps&statuses=UPSTREAM_FAILED&search=bad")
    assert wait_rows(page, lambda n: n == ["NeedsBad()"], "the restored filter") == ["NeedsBad()"]
    assert page.input_value("#step-search") == "bad"


def test_paging_moves_through_the_list(seeded, page):
    open_list(page, seeded.url, "#tab=steps&length=25")
    assert page.text_content(".page-no") == "Page 1 of 1"
    assert "of 10 steps" in page.text_content(".list-summary")


# ---------------------------------------------------------------- detail
def test_failed_step_detail_shows_its_traceback_as_text(seeded, page):
    [bad] = RemoteScheduler(seeded.url).step_list_page(status="FAILED")["steps"]
    open_list(page, seeded.url, f"#tab=steps&statuses=FAILED&stepId={bad['step_id']}")
    traceback = page.wait_for_selector("#detail pre.traceback").text_content()
    assert "Traceback (most recent call last):\n" in traceback  # decoded: real newlines, no quotes
    assert traceback.rstrip().endswith("ValueError: kaboom <b>not bold</b>")
    assert page.locator("#detail pre.traceback b").count() == 0
    assert page.locator("#detail .actions button", has_text="Forgive failures").count() == 1


def test_done_step_detail_shows_no_error_and_how_long_it_ran(seeded, page):
    [good] = RemoteScheduler(seeded.url).step_list_page(search="good n=1")["steps"]
    open_list(page, seeded.url, f"#tab=steps&stepId={good['step_id']}")
    page.wait_for_selector("#detail .facts")
    assert page.locator("#detail pre.traceback").count() == 0
    assert page.locator("#detail th", has_text="Running for").count() == 0
    assert page.locator("#detail th", has_text="Ran for").count() == 1


def test_running_step_detail_shows_status_message_and_progress(seeded, page):
    [slow] = RemoteScheduler(seeded.url).step_list_page(status="RUNNING")["steps"]
    open_list(page, seeded.url, f"#tab=steps&stepId={slow['step_id']}")
    page.wait_for_selector("#detail .progress")
    assert page.text_content("#detail .status-message") == "crunching <i>numbers</i>"
    assert page.get_attribute("#detail .progress", "aria-valuenow") == "42"
    assert page.locator("#detail i").count() == 0


def test_xss_parameter_value_is_inert_text_everywhere(seeded, page):
    open_list(page, seeded.url, "#tab=steps&search=evil")
    names = wait_rows(page, lambda n: n == [f"Evil(payload={XSS})"], "the Evil step")
    assert names == [f"Evil(payload={XSS})"]
    page.click("#step-table a.step-link")
    page.wait_for_selector("#detail .param-value")
    assert page.text_content("#detail .param-value") == XSS
    page.goto(f"{seeded.url}/static/visualiser/index.html#tab=graph&stepId={all_step_id(seeded.url)}")
    page.wait_for_selector("body[data-graph-rendered]")
    assert page.locator("img").count() == 0
    assert page.dialogs == []
    assert any(XSS in t for t in page.locator("#graph-canvas g.node title").all_text_contents())


# ---------------------------------------------------------------- graph
def test_graph_of_a_step_shows_its_dependencies_coloured_by_status(seeded, page):
    page.goto(f"{seeded.url}/static/visualiser/index.html#tab=graph&stepId={all_step_id(seeded.url)}")
    page.wait_for_selector("body[data-graph-rendered]")
    nodes = page.locator("#graph-canvas g.node")
    assert nodes.count() == 9
    assert page.locator("#graph-canvas g.node.s-FAILED").count() == 1
    assert page.locator("#graph-canvas g.node.s-DONE").count() == 6
    assert "9 steps" in page.text_content(".graph-notice")
    save_doc_screenshot(page, "visualiser_graph.png")


def test_upstream_graph_shows_what_depends_on_a_step(seeded, page):
    [bad] = RemoteScheduler(seeded.url).step_list_page(status="FAILED")["steps"]
    page.goto(f"{seeded.url}/static/visualiser/index.html#tab=graph&invert=1&stepId={bad['step_id']}")
    page.wait_for_selector("body[data-graph-rendered]")
    labels = sorted(page.locator("#graph-canvas g.node text").all_text_contents())
    assert labels == ["All()", "Bad()", "NeedsBad()"]


def test_clicking_a_node_shows_its_detail(seeded, page):
    page.goto(f"{seeded.url}/static/visualiser/index.html#tab=graph&stepId={all_step_id(seeded.url)}")
    page.wait_for_selector("body[data-graph-rendered]")
    page.click('#graph-canvas g.node:has(text:text-is("Bad()")) circle')
    page.wait_for_selector("#detail pre.traceback")
    assert page.text_content("#detail .detail-title") == "Bad()"


def test_graph_pans_and_zooms(seeded, page):
    page.goto(f"{seeded.url}/static/visualiser/index.html#tab=graph&stepId={all_step_id(seeded.url)}")
    page.wait_for_selector("body[data-graph-rendered]")
    viewport = page.locator("#graph-canvas g.viewport")
    before = viewport.get_attribute("transform")
    page.mouse.move(500, 500)
    page.mouse.wheel(0, -400)
    page.wait_for_function("b => document.querySelector('#graph-canvas g.viewport').getAttribute('transform') !== b",
                           arg=before)
    box = page.locator("#graph-canvas").bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 40)
    zoomed = viewport.get_attribute("transform")
    page.mouse.down()
    page.mouse.move(box["x"] + 140, box["y"] + 90, steps=5)
    page.mouse.up()
    page.wait_for_function("b => document.querySelector('#graph-canvas g.viewport').getAttribute('transform') !== b",
                           arg=zoomed)


def test_truncated_graph_says_so(trund_factory, tmp_path, browser, page):
    cfg = tmp_path / "small.cfg"
    cfg.write_text("[scheduler]\nmax_graph_nodes = 3\n")
    trund = trund_factory(env={"TRUN_CONFIG_PATH": str(cfg)})
    remote = RemoteScheduler(trund.url)
    remote.add_step(worker="w", step_id="Top_1", family="Top", deps=[f"Dep_{i}" for i in range(6)])
    for i in range(6):
        remote.add_step(worker="w", step_id=f"Dep_{i}", family="Dep", params={"i": str(i)})
    page.goto(f"{trund.url}/static/visualiser/index.html#tab=graph&stepId=Top_1")
    page.wait_for_selector("body[data-graph-rendered]")
    warning = page.text_content('.graph-notice [data-field="truncated"]')
    assert "truncated" in warning and "max_graph_nodes" in warning
    assert page.locator("#graph-canvas g.node.s-TRUNCATED").count() == 4


def test_graph_layout_of_a_thousand_nodes_draws_deps_left_and_keeps_columns_apart(seeded, page):
    # How fast it is, is benchmarks/bench_visualiser.py's business, not a test's.
    open_list(page, seeded.url)
    result = page.evaluate("""async () => {
        const g = await import('./js/graph.js');
        const graph = {};
        const n = 1000;
        for (let i = 0; i < n; i++) {
            const deps = [];
            if (2 * i + 1 < n) deps.push(`S_${2 * i + 1}`);
            if (2 * i + 2 < n) deps.push(`S_${2 * i + 2}`);
            if (i % 7 === 0 && i + 50 < n) deps.push(`S_${i + 50}`);
            graph[`S_${i}`] = {deps, status: i % 3 ? 'DONE' : 'PENDING', name: 'S', params: {i: String(i)}};
        }
        const model = g.buildModel(graph, 'S_0');
        const layout = g.layoutModel(model);
        let leftOfDeps = true;
        model.children.forEach((kids, v) => kids.forEach(c => { if (!(layout.x[c] < layout.x[v])) leftOfDeps = false; }));
        const columns = {};
        model.nodes.forEach((_, v) => (columns[layout.column[v]] ||= []).push(layout.y[v]));
        let minGap = Infinity;
        for (const ys of Object.values(columns)) {
            ys.sort((a, b) => a - b);
            for (let i = 1; i < ys.length; i++) minGap = Math.min(minGap, ys[i] - ys[i - 1]);
        }
        return {nodes: model.nodes.length, leftOfDeps, minGap, finite: Array.from(layout.y).every(Number.isFinite)};
    }""")
    assert result["nodes"] == 1000 and result["finite"]
    assert result["leftOfDeps"], "every dependency must be drawn left of the step that needs it"
    assert result["minGap"] >= 25.9, "nodes of one column must not overlap"


def test_barycentre_ordering_reduces_crossings(seeded, page):
    open_list(page, seeded.url)
    result = page.evaluate("""async () => {
        const g = await import('./js/graph.js');
        // Two layers wired in reverse order: the input order has every pair crossing.
        const graph = {R: {deps: [], status: 'PENDING', name: 'R', params: {}}};
        const k = 8;
        for (let i = 0; i < k; i++) {
            graph.R.deps.push(`A_${i}`);
            graph[`A_${i}`] = {deps: [`B_${k - 1 - i}`], status: 'DONE', name: 'A', params: {}};
            graph[`B_${i}`] = {deps: [], status: 'DONE', name: 'B', params: {}};
        }
        const model = g.buildModel(graph, 'R');
        const unordered = g.layoutModel(model, {sweeps: 0});
        const ordered = g.layoutModel(model);
        return [g.countCrossings(model, unordered), g.countCrossings(model, ordered)];
    }""")
    before, after = result
    assert before > 0 and after == 0


# ---------------------------------------------------------------- workers, resources, actions
def test_workers_page_shows_the_running_step_with_progress(seeded, page):
    page.goto(f"{seeded.url}/static/visualiser/index.html#tab=workers")
    card = page.wait_for_selector("article.worker:has(.running)")
    assert "Slow()" in card.text_content()
    assert card.query_selector(".progress").text_content() == "42%"
    assert card.query_selector("text=+1 process") is not None


def test_plus_one_process_queues_a_message_for_the_worker(trund, page):
    remote = RemoteScheduler(trund.url)
    remote.add_worker(worker="w-ui", info={"host": "box", "pid": 7, "workers": 2})
    remote.add_step(worker="w-ui", step_id="A_1", family="A")
    page.goto(f"{trund.url}/static/visualiser/index.html#tab=workers")
    page.click('article[data-worker="w-ui"] button:has-text("+1 process")')
    messages = wait_for(lambda: remote.ping(worker="w-ui")["rpc_messages"], 10, "the rpc message")
    assert messages == [{"name": "set_worker_processes", "kwargs": {"n": 3}}]


def test_resources_page_sets_a_total(trund_factory, tmp_path, page):
    cfg = tmp_path / "res.cfg"
    cfg.write_text("[resources]\ndb = 2\n")
    trund = trund_factory(env={"TRUN_CONFIG_PATH": str(cfg)})
    page.goto(f"{trund.url}/static/visualiser/index.html#tab=resources")
    card = page.wait_for_selector('article[data-resource="db"]')
    assert "0 / 2 used" in card.text_content()
    page.fill('article[data-resource="db"] input', "5")
    page.click('article[data-resource="db"] button:has-text("Set total")')
    wait_for(lambda: RemoteScheduler(trund.url).resource_list()[0]["num_total"] == 5, 10, "the new total")


def test_forgive_failures_button_makes_the_step_pending(trund, page):
    remote = RemoteScheduler(trund.url)
    remote.add_step(worker="w", step_id="F_1", family="F")
    remote.add_step(worker="w", step_id="F_1", status="FAILED", expl="boom")
    open_list(page, trund.url, "#tab=steps&stepId=F_1")
    page.click('#detail button:has-text("Forgive failures")')
    wait_for(lambda: remote.step_list_page(status="PENDING")["total"] == 1, 10, "F_1 to be PENDING")


def test_pause_button_pauses_the_scheduler(trund, page):
    open_list(page, trund.url)
    page.click("#pause-toggle")
    wait_for(lambda: RemoteScheduler(trund.url).is_paused()["paused"], 10, "the pause")
    page.wait_for_selector("#paused-banner", state="visible")
    assert page.get_attribute("#pause-toggle", "aria-pressed") == "true"
