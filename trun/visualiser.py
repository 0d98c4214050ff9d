"""The web UI that ``trund`` serves besides its RPC API: visualiser, step history pages and ``/metrics``.

* ``/`` redirects (relatively, so a path-prefix proxy works) to
  ``static/visualiser/index.html``, a single-page app of plain JavaScript
  modules and CSS shipped in the package (no CDN, no build step). It talks to
  the RPC API only; its state lives in the URL fragment.
* ``/static/...`` serves those files.
* ``/history``, ``/history/by_name/<family>``, ``/history/by_id/<run id>``,
  ``/history/by_step_id/<step id>``, ``/history/by_params/<family>?data=<json>``,
  ``/steplist`` and ``/steplist/<family>``: server-side pages over
  :class:`trun.db_step_history.DbStepHistory` (``[scheduler] record_step_history``).
* ``/metrics``: the metrics collector's ``generate_latest()``.

:func:`ui_routes` returns these routes for ``trund``'s Tornado application;
:func:`page_steps` is the filtering and paging behind the scheduler's
``step_list_page`` RPC, which the step list uses so that 100,000 steps stay
responsive.

Hazards: history queries run in Tornado's default thread pool, never on the
IOLoop thread, because the scheduler lives there; they only touch the history
object, never the scheduler. Every value that comes from a step is escaped by
the templates (autoescape) or set as text by the JavaScript -- keep it so.
"""
from __future__ import annotations

import datetime
import difflib
import json
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import tornado.escape
import tornado.ioloop
import tornado.template
import tornado.web

__all__ = ["CATEGORIES", "ID_PREFIX", "MAX_PAGE_SIZE", "STATIC_PATH", "TEMPLATE_PATH", "page_steps", "ui_routes"]

STATIC_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
TEMPLATE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")

#: The step list's status filters: a PENDING step whose dependencies failed or
#: are disabled counts as UPSTREAM_FAILED / UPSTREAM_DISABLED instead.
CATEGORIES = ("PENDING", "RUNNING", "BATCH_RUNNING", "DONE", "FAILED", "UPSTREAM_FAILED", "DISABLED",
              "UPSTREAM_DISABLED", "UNKNOWN")
MAX_PAGE_SIZE = 1000
#: ``search="id:<step id>"`` selects exactly that step.
ID_PREFIX = "id:"
#: Rows shown on one history page.
HISTORY_PAGE_ROWS = 500


# ---------------------------------------------------------------- the step list page
def _parse_categories(status: str) -> set[str]:
    wanted = set()
    for token in (t.strip() for t in status.split(",")):
        if not token:
            continue
        if token.upper() not in CATEGORIES:
            close = difflib.get_close_matches(token.upper(), CATEGORIES, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"step_list_page: unknown status {token!r}; expected a comma-separated list of "
                             f"{', '.join(CATEGORIES)}.{hint}")
        wanted.add(token.upper())
    return wanted


def page_steps(steps: Mapping[str, Any], category_of: Callable[[Any], str],
               serialize: Callable[[Any], dict[str, Any]], status: str = "", family: str = "", search: str = "",
               offset: int = 0, limit: int = 100) -> dict[str, Any]:
    """One page of steps, most recently updated first, with counts for the filters.

    ``steps`` maps step ids to scheduler records (``id``, ``family``, ``updated``,
    ``pretty_id``); ``status`` is a comma-separated list of :data:`CATEGORIES`
    (empty: all), ``family`` an exact family (empty: all), ``search``
    whitespace-separated terms that must all occur, case-insensitively, in the
    step's display name or id -- or ``id:<step id>`` for exactly that step.

    Returns ``{"steps": [...], "total", "offset", "limit", "all_count",
    "status_counts", "family_counts"}``: each step is ``serialize(record)`` plus
    ``step_id`` and ``category``; ``status_counts`` ignores the status filter and
    ``family_counts`` ignores the family filter, so each tells what choosing
    another value would show. Raises ``ValueError`` for an unknown status or an
    out-of-range ``offset``/``limit``.
    """
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"step_list_page: offset must be a non-negative integer, got {offset!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"step_list_page: limit must be an integer from 1 to {MAX_PAGE_SIZE}, got {limit!r}")
    wanted = _parse_categories(status or "")
    search = (search or "").strip()
    all_count = len(steps)
    if search.startswith(ID_PREFIX):
        # The detail panel's lookup: one dictionary access, however many steps there are.
        wanted_id = search[len(ID_PREFIX):].strip()
        records = [steps[wanted_id]] if wanted_id in steps else []
    else:
        # Column-wise passes (list comprehensions, Counter) rather than one loop
        # with per-step branching: this runs over every known step on each call.
        records = list(steps.values())
        terms = [t.lower() for t in search.split()]
        if terms:
            records = [s for s in records if _matches(f"{s.pretty_id}\n{s.id}".lower(), terms)]
    categories = list(map(category_of, records))
    families = [s.family for s in records]
    family_ok = [f == family for f in families] if family else None
    status_ok = [c in wanted for c in categories] if wanted else None
    status_counts = dict.fromkeys(CATEGORIES, 0)
    status_counts.update(Counter(categories if family_ok is None
                                 else (c for c, ok in zip(categories, family_ok) if ok)))
    family_counts = dict(Counter(families if status_ok is None
                                 else (f for f, ok in zip(families, status_ok) if ok)))
    if family_ok is None and status_ok is None:
        selected = range(len(records))
    else:
        selected = [i for i in range(len(records))
                    if (family_ok is None or family_ok[i]) and (status_ok is None or status_ok[i])]
    page = _top(records, selected, offset + limit)[offset:]
    rows = []
    for i in page:
        row = serialize(records[i])
        row["step_id"] = records[i].id
        row["category"] = categories[i]
        rows.append(row)
    return {"steps": rows, "total": len(selected), "offset": offset, "limit": limit, "all_count": all_count,
            "status_counts": status_counts, "family_counts": family_counts}


def _matches(haystack: str, terms: list[str]) -> bool:
    return all(t in haystack for t in terms)


def _top(records: list[Any], selected: Sequence[int], k: int) -> list[int]:
    """Indices of the k most recently updated of ``selected`` (ties: larger id first), in that order."""
    if len(selected) > k:
        # A cut-off from the bare timestamps first (a C sort of floats, nearly
        # ordered already), so that only about k records are sorted by the full key.
        times = [records[i].updated for i in selected]
        cutoff = sorted(times)[-k]
        selected = [i for i, t in zip(selected, times) if t >= cutoff]
    return sorted(selected, key=lambda i: (records[i].updated, records[i].id), reverse=True)[:k]


# ---------------------------------------------------------------- handlers
class RootPathHandler(tornado.web.RequestHandler):
    """``GET /`` -> the visualiser; ``HEAD /`` -> 204 (health check)."""

    def get(self) -> None:
        # Relative, so that it also works behind a reverse proxy that adds a path prefix.
        self.redirect("static/visualiser/index.html")

    def head(self) -> None:
        self.set_status(204)
        self.finish()


class MetricsHandler(tornado.web.RequestHandler):
    """``GET /metrics``: what the scheduler's metrics collector generates (empty for the default one)."""

    def initialize(self, scheduler: Any) -> None:
        self._scheduler = scheduler

    def get(self) -> None:
        collector = getattr(self._scheduler, "metrics_collector", None)
        generate = getattr(collector, "generate_latest", None)
        metrics = generate() if generate is not None else None
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        if metrics:
            configure = getattr(collector, "configure_http_handler", None)
            if configure is not None:
                configure(self)
            self.write(metrics)
        self.finish()


_loader = tornado.template.Loader(TEMPLATE_PATH)


def _format_ts(ts: datetime.datetime | None) -> str:
    return "" if ts is None else ts.strftime("%Y-%m-%d %H:%M:%S")


def _run_summary(record: Any) -> dict[str, Any]:
    """The facts a history table shows about one run (events are newest first)."""
    events = list(record.events)
    latest = events[0] if events else None
    started = next((e.ts for e in reversed(events) if e.event_name == "RUNNING"), None)
    finished = next((e.ts for e in events if e.event_name in ("DONE", "FAILED")), None)
    duration = (finished - started).total_seconds() if started and finished and finished >= started else None
    return {"id": record.id, "step_id": record.step_id or "", "name": record.name or "", "host": record.host or "",
            "status": latest.event_name if latest else "", "ts": _format_ts(latest.ts if latest else None),
            "duration": duration,
            "params": {name: p.value for name, p in sorted(record.parameters.items())}}


def _format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m" if hours else f"{minutes}m {secs}s"


class _HistoryHandler(tornado.web.RequestHandler):
    """Base of the history pages: runs the query off the IOLoop and renders a template."""

    def initialize(self, scheduler: Any) -> None:
        self._scheduler = scheduler

    @property
    def history(self) -> Any:
        return getattr(self._scheduler, "step_history", None)

    def _root(self) -> str:
        # Relative prefix back to the server root, for links and the stylesheet.
        return "../" * (self.request.path.count("/") - 1)

    def _render(self, template: str, status: int = 200, **namespace: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(_loader.load(template).generate(
            root=self._root(), format_duration=_format_duration, quote=tornado.escape.url_escape, **namespace))

    async def _query(self, method: str, *args: Any, **kwargs: Any) -> Any:
        history = self.history
        if history is None or not hasattr(history, method):
            return _HISTORY_OFF
        fn = getattr(history, method)
        return await tornado.ioloop.IOLoop.current().run_in_executor(None, lambda: fn(*args, **kwargs))

    def _history_off(self) -> None:
        self._render("off.html", status=404, title="Step history is off")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = self._reason
        exc_info = kwargs.get("exc_info")
        if exc_info and isinstance(exc_info[1], tornado.web.HTTPError) and exc_info[1].log_message:
            message = exc_info[1].log_message % exc_info[1].args if exc_info[1].args else exc_info[1].log_message
        self._render("error.html", status=status_code, title=f"Error {status_code}", message=message)


_HISTORY_OFF = object()


class RecentRunHandler(_HistoryHandler):
    """``/history``: runs with activity in the past 24 hours."""

    async def get(self) -> None:
        runs = await self._query("find_latest_runs", limit=HISTORY_PAGE_ROWS)
        if runs is _HISTORY_OFF:
            return self._history_off()
        self._render("recent.html", title="Runs of the past 24 hours", heading="Runs of the past 24 hours",
                     runs=[_run_summary(r) for r in runs], limit=HISTORY_PAGE_ROWS)


class ByNameHandler(_HistoryHandler):
    """``/history/by_name/<family>``: the runs of one step family, newest first."""

    async def get(self, name: str) -> None:
        runs = await self._query("find_all_by_name", name)
        if runs is _HISTORY_OFF:
            return self._history_off()
        runs = list(reversed(runs))[:HISTORY_PAGE_ROWS]
        self._render("recent.html", title=f"Runs of {name}", heading=f"Runs of {name}",
                     runs=[_run_summary(r) for r in runs], limit=HISTORY_PAGE_ROWS)


class ByParamsHandler(_HistoryHandler):
    """``/history/by_params/<family>?data={"param": "value"}``: runs of a family with those parameter values."""

    async def get(self, name: str) -> None:
        raw = self.get_argument("data", "{}")
        try:
            params = json.loads(raw)
        except ValueError:
            params = None
        if not isinstance(params, dict):
            raise tornado.web.HTTPError(400, "data must be a JSON object of parameter values, e.g. "
                                             '?data={"date": "2024-01-31"}; got %r', raw)
        runs = await self._query("find_all_by_parameters", name, **params)
        if runs is _HISTORY_OFF:
            return self._history_off()
        runs = list(reversed(runs))[:HISTORY_PAGE_ROWS]
        label = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
        self._render("recent.html", title=f"Runs of {name}({label})", heading=f"Runs of {name}({label})",
                     runs=[_run_summary(r) for r in runs], limit=HISTORY_PAGE_ROWS)


class ByIdHandler(_HistoryHandler):
    """``/history/by_id/<run id>``: one run with its parameters and events."""

    async def get(self, run_id: str) -> None:
        if not run_id.isdigit():
            raise tornado.web.HTTPError(400, "a run id is a number, as in /history/by_id/42; got %r", run_id)
        record = await self._query("find_step_by_id", int(run_id))
        await self._show(record, f"run {run_id}")

    async def _show(self, record: Any, what: str) -> None:
        if record is _HISTORY_OFF:
            return self._history_off()
        if record is None:
            raise tornado.web.HTTPError(404, "no recorded %s", what)
        events = [{"name": e.event_name, "ts": _format_ts(e.ts)} for e in record.events]
        self._render("show.html", title=f"{record.name} run {record.id}", run=_run_summary(record), events=events)


class ByStepIdHandler(ByIdHandler):
    """``/history/by_step_id/<step id>``: the latest run of a step."""

    async def get(self, step_id: str) -> None:  # type: ignore[override]
        record = await self._query("find_step_by_step_id", step_id)
        await self._show(record, f"run of step {step_id}")


class StepNamesHandler(_HistoryHandler):
    """``/steplist``: the families with recorded runs."""

    async def get(self) -> None:
        names = await self._query("find_step_names")
        if names is _HISTORY_OFF:
            return self._history_off()
        self._render("menu.html", title="Step families in the history", names=names)


class FamilyChartHandler(_HistoryHandler):
    """``/steplist/<family>``: a chart of how long each finished run of a family took."""

    async def get(self, name: str) -> None:
        runs = await self._query("find_all_by_name", name)
        if runs is _HISTORY_OFF:
            return self._history_off()
        summaries = [_run_summary(r) for r in runs]
        finished = [r for r in summaries if r["duration"] is not None][-HISTORY_PAGE_ROWS:]
        self._render("history.html", title=f"Running times of {name}", name=name, runs=finished,
                     chart=_bar_chart(finished))


def _bar_chart(runs: list[dict[str, Any]], width: int = 900, height: int = 240) -> dict[str, Any]:
    """Geometry of an SVG bar chart of run durations (numbers only; labels are escaped by the template)."""
    longest = max((r["duration"] for r in runs), default=0.0) or 1.0
    slot = width / max(1, len(runs))
    bars = []
    for i, r in enumerate(runs):
        h = max(1.0, (height - 20) * r["duration"] / longest)
        bars.append({"x": round(i * slot + slot * 0.1, 2), "y": round(height - h, 2), "w": round(max(1.0, slot * 0.8), 2),
                     "h": round(h, 2), "run": r})
    return {"width": width, "height": height, "bars": bars, "longest": longest}


def ui_routes(scheduler: Any) -> list[tuple[Any, ...]]:
    """Tornado routes of the web UI for ``scheduler``: ``/``, ``/static/...``, history pages and ``/metrics``.

    Add them after ``/api/<method>`` in ``trund``'s application.
    """
    kwargs = {"scheduler": scheduler}
    return [
        (r"/", RootPathHandler),
        (r"/static/(.*)", tornado.web.StaticFileHandler, {"path": STATIC_PATH}),
        (r"/metrics", MetricsHandler, kwargs),
        (r"/history/?", RecentRunHandler, kwargs),
        (r"/history/by_name/(.+)", ByNameHandler, kwargs),
        (r"/history/by_id/(.+)", ByIdHandler, kwargs),
        (r"/history/by_step_id/(.+)", ByStepIdHandler, kwargs),
        (r"/history/by_params/(.+)", ByParamsHandler, kwargs),
        (r"/steplist/?", StepNamesHandler, kwargs),
        (r"/steplist/(.+)", FamilyChartHandler, kwargs),
    ]
