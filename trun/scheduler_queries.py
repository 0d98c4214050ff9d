"""The read-only side of the scheduler's RPC surface: listings, graphs, counters and error texts.

:class:`SchedulerQueries` is a mixin of :class:`trun.scheduler.Scheduler`; it
only reads the state (some listings prune first, as in Luigi). Payload shapes
are Luigi's under the rename (``step_list`` instead of ``task_list``,
``stepId`` instead of ``taskId`` ...), since the web visualiser and users'
scripts read them. Listings may scan the steps they return; upstream statuses
are computed per request (memoised within it), never stored.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from trun.scheduler_config import SchedulerConfig, parse_status, rpc_method
from trun.scheduler_state import SchedulerState, StepRecord
from trun.step_status import (
    BATCH_RUNNING,
    DISABLED,
    DONE,
    FAILED,
    PENDING,
    RUNNING,
    UNKNOWN,
    UPSTREAM_DISABLED,
    UPSTREAM_FAILED,
    UPSTREAM_MISSING_INPUT,
    UPSTREAM_RUNNING,
    UPSTREAM_SEVERITY_ORDER,
)

__all__ = ["SchedulerQueries"]

WORKER_STATE_ACTIVE = "active"

_STATUS_TO_UPSTREAM = {
    FAILED: UPSTREAM_FAILED,
    RUNNING: UPSTREAM_RUNNING,
    BATCH_RUNNING: UPSTREAM_RUNNING,
    PENDING: UPSTREAM_MISSING_INPUT,
    DISABLED: UPSTREAM_DISABLED,
}
_UPSTREAM_RANK = {name: i for i, name in enumerate(UPSTREAM_SEVERITY_ORDER)}
# Family of a step known only by id (a dependency nobody added yet): "Family(" or "Family_".
_FAMILY_OF_ID = re.compile(r"([^(_]+)[(_]")


class SchedulerQueries:
    """Read-only RPC methods; expects ``_state``, ``_config``, ``_resources``, ``_paused`` and ``prune``."""

    _state: SchedulerState
    _config: SchedulerConfig
    _resources: dict[str, int]
    _paused: bool

    def prune(self) -> None:  # pragma: no cover - provided by Scheduler
        raise NotImplementedError

    @rpc_method()
    def count_pending(self, worker: str) -> dict[str, Any]:
        """Counters of ``worker``'s unfinished steps, without handing out work (``--workers 0``)."""
        st = self._state
        w = st.workers.get(worker)
        if w is None:
            return {"n_pending_steps": 0, "n_unique_pending": 0, "n_pending_last_scheduled": 0,
                    "worker_state": WORKER_STATE_ACTIVE, "running_steps": []}
        running: list[dict[str, Any]] = []
        if w.running_member:  # empty on most get_work calls of a one-process worker
            for s in sorted((st.steps[i] for i in w.running_member), key=lambda x: x.rank_key):
                info: dict[str, Any] = {"step_id": s.id, "worker": s.worker_running}
                other = st.workers.get(s.worker_running) if s.worker_running else None
                if other is not None:
                    info.update(other.info)
                running.append(info)
        return {"n_pending_steps": w.n_pending, "n_unique_pending": w.n_unique,
                "n_pending_last_scheduled": w.n_last, "worker_state": w.state, "running_steps": running}

    @rpc_method()
    def has_step_history(self) -> bool:
        """True when step history is recorded (the UI then links to it)."""
        return self._config.record_step_history

    @rpc_method()
    def is_pause_enabled(self) -> dict[str, bool]:
        return {"enabled": self._config.pause_enabled}

    @rpc_method()
    def is_paused(self) -> dict[str, bool]:
        return {"paused": self._paused}

    def _upstream_status(self, step_id: str, table: dict[str, str]) -> str:
        """Luigi's UPSTREAM_* of a step (memoised in ``table`` for one request)."""
        if step_id in table:
            return table[step_id]
        steps = self._state.steps
        if step_id not in steps:
            return ""
        stack = [step_id]
        while stack:
            dep_id = stack.pop()
            dep = steps.get(dep_id)
            if dep is None or dep.status is DONE:
                continue
            if dep_id not in table:
                if dep.status is PENDING and dep.deps:
                    stack.append(dep_id)
                    stack.extend(dep.deps)
                    table[dep_id] = ""  # filled in post-order
                else:
                    table[dep_id] = _STATUS_TO_UPSTREAM.get(dep.status, "")
            elif table[dep_id] == "" and dep.deps:
                table[dep_id] = max((table.get(d, "") for d in dep.deps), key=_UPSTREAM_RANK.__getitem__)
        return table.get(step_id, "")

    def _serialize_step(self, s: StepRecord, include_deps: bool = True,
                        deps: Iterable[str] | None = None) -> dict[str, Any]:
        ret: dict[str, Any] = {
            "display_name": s.pretty_id,
            "status": s.status.value,
            "workers": list(s.workers),
            "worker_running": s.worker_running,
            "time_running": s.time_running,
            "start_time": s.time,
            "last_updated": s.updated,
            "params": s.public_params,
            "name": s.family,
            "priority": s.priority,
            "resources": dict(s.resources),
            "resources_running": None if s.resources_running is None else dict(s.resources_running),
            "tracking_url": s.tracking_url,
            "status_message": s.status_message,
            "progress_percentage": s.progress_percentage,
        }
        if s.status is DISABLED:
            ret["re_enable_able"] = s.scheduler_disable_time is not None
        if include_deps:
            ret["deps"] = sorted(s.deps if deps is None else deps)
        if self._config.send_messages and s.status is RUNNING:
            ret["accepts_messages"] = s.accepts_messages
        return ret

    def _traverse_graph(self, root_id: str, seen: set[str] | None = None,
                        dep_func: Callable[[StepRecord], Iterable[str]] | None = None,
                        include_done: bool = True) -> dict[str, Any]:
        """Breadth-first graph from ``root_id``, at most ``max_graph_nodes`` nodes."""
        steps = self._state.steps
        if seen is None:
            seen = set()
        elif root_id in seen:
            return {}
        if dep_func is None:
            def dep_func(x: StepRecord) -> Iterable[str]:
                return x.deps
        seen.add(root_id)
        serialized: dict[str, Any] = {}
        queue = [root_id]
        pos = 0
        while pos < len(queue):
            step_id = queue[pos]
            pos += 1
            s = steps.get(step_id)
            if s is None or not s.family:
                match = _FAMILY_OF_ID.match(step_id)
                serialized[step_id] = {
                    "deps": [], "status": UNKNOWN.value, "workers": [], "start_time": UNKNOWN.value,
                    "params": {"step_id": step_id}, "name": match.group(1) if match else UNKNOWN.value,
                    "display_name": step_id, "priority": 0,
                }
            else:
                deps = list(dep_func(s))
                if not include_done:
                    deps = [d for d in deps if d not in steps or steps[d].status is not DONE]
                serialized[step_id] = self._serialize_step(s, deps=deps)
                for dep in sorted(deps):
                    if dep not in seen:
                        seen.add(dep)
                        queue.append(dep)
            if step_id != root_id:
                del serialized[step_id]["display_name"]
            if len(serialized) >= self._config.max_graph_nodes:
                break
        return serialized

    @rpc_method()
    def graph(self) -> dict[str, Any]:
        """Every step with its dependencies (used by ``trun-grep``)."""
        self.prune()
        serialized: dict[str, Any] = {}
        seen: set[str] = set()
        for step_id in list(self._state.steps):
            serialized.update(self._traverse_graph(step_id, seen))
        return serialized

    @rpc_method()
    def dep_graph(self, step_id: str, include_done: bool = True) -> dict[str, Any]:
        """The steps ``step_id`` depends on, transitively (``{}`` for an unknown step)."""
        self.prune()
        if step_id not in self._state.steps:
            return {}
        return self._traverse_graph(step_id, include_done=include_done)

    @rpc_method()
    def inverse_dep_graph(self, step_id: str, include_done: bool = True) -> dict[str, Any]:
        """The steps that depend on ``step_id``, transitively."""
        self.prune()
        if step_id not in self._state.steps:
            return {}
        rdeps = self._state.rdeps
        return self._traverse_graph(step_id, dep_func=lambda x: rdeps.get(x.id, ()), include_done=include_done)

    @rpc_method()
    def step_list(self, status: str = "", upstream_status: str = "", limit: bool = True,
                  search: str | None = None, max_shown_steps: int | None = None) -> dict[str, Any]:
        """Steps by status (and, for PENDING, by upstream status) whose display name has every ``search`` term.

        Above ``max_shown_steps`` only ``{"num_steps": n}`` is returned (-1 when
        an upstream filter kept the count from being known).
        """
        st = self._state
        wanted = parse_status(status) if status else None
        if upstream_status and upstream_status not in UPSTREAM_SEVERITY_ORDER:
            raise ValueError(f"unknown upstream status {upstream_status!r}; expected one of "
                             f"{', '.join(u for u in UPSTREAM_SEVERITY_ORDER if u)}")
        count_limit = max_shown_steps or self._config.max_shown_steps
        if not search:
            pre_count = len(st.by_status[wanted]) if wanted is not None else len(st.steps)
            if limit and pre_count > count_limit:
                return {"num_steps": -1 if upstream_status else pre_count}
        self.prune()
        terms = [t.lower() for t in search.split()] if search else []
        ids = st.by_status[wanted] if wanted is not None else st.steps.keys()
        table: dict[str, str] = {}
        result = {}
        for step_id in list(ids):
            s = st.steps[step_id]
            if terms:
                name = s.pretty_id.lower()
                if not all(t in name for t in terms):
                    continue
            if s.status is PENDING and upstream_status and self._upstream_status(step_id, table) != upstream_status:
                continue
            result[step_id] = self._serialize_step(s, include_deps=False)
        if limit and len(result) > count_limit:
            return {"num_steps": len(result)}
        return result

    @rpc_method()
    def step_list_page(self, status: str | None = "", family: str | None = "", search: str | None = "",
                       offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """One page of the web UI's step list, most recently updated first (a trun addition to Luigi's API).

        ``status`` is a comma-separated list of categories (a status, or
        UPSTREAM_FAILED / UPSTREAM_DISABLED for a PENDING step held up that way),
        ``family`` an exact family, ``search`` terms that must all occur in the
        display name or id (``id:<step id>`` for exactly one step). See
        :func:`trun.visualiser.page_steps` for the reply.
        """
        from trun.visualiser import page_steps  # the UI module (and Tornado) only when the UI asks

        self.prune()
        table: dict[str, str] = {}

        def category_of(s: StepRecord) -> str:
            if s.status is PENDING:
                upstream = self._upstream_status(s.id, table)
                if upstream in (UPSTREAM_FAILED, UPSTREAM_DISABLED):
                    return upstream
            return s.status.value

        return page_steps(self._state.steps, category_of, lambda s: self._serialize_step(s, include_deps=False),
                          status or "", family or "", search or "", offset, limit)

    @rpc_method()
    def worker_list(self, include_running: bool = True) -> list[dict[str, Any]]:
        """Workers, most recently started first, with their running and pending steps."""
        self.prune()
        st = self._state
        out = []
        for w in sorted(st.workers.values(), key=lambda x: x.started, reverse=True):
            first = w.info.get("first_step", "")
            first_step = st.steps.get(first) if isinstance(first, str) else None
            entry = dict(w.info)
            entry.update(name=w.id, last_active=w.last_active, started=w.started, state=w.state,
                         first_step_display_name=first_step.pretty_id if first_step else first,
                         num_unread_rpc_messages=len(w.rpc_messages))
            if include_running:
                running = {i: self._serialize_step(st.steps[i], include_deps=False)
                           for i in sorted(w.running) if st.steps[i].status is RUNNING}
                pending = [st.steps[i] for i in w.steps if st.steps[i].status is PENDING]
                entry.update(num_running=len(running), num_pending=len(pending),
                             num_uniques=sum(1 for s in pending if len(s.workers) == 1), running=running)
            out.append(entry)
        return out

    @rpc_method()
    def resource_list(self) -> list[dict[str, Any]]:
        """Each configured resource with its total, use and the running steps holding it."""
        self.prune()
        st = self._state
        consumers: dict[str, dict[str, Any]] = {}
        for step_id in st.by_status[RUNNING]:
            s = st.steps[step_id]
            for name in (s.resources_running or {}):
                consumers.setdefault(name, {})[step_id] = self._serialize_step(s, include_deps=False)
        return [{"name": name, "num_total": total, "num_used": st.used.get(name, 0),
                 "num_consumer": len(consumers.get(name, {})), "running": consumers.get(name, {})}
                for name, total in self._resources.items()]

    @rpc_method()
    def step_search(self, step_str: str) -> dict[str, dict[str, Any]]:
        """Steps whose id contains ``step_str``, grouped by status."""
        self.prune()
        result: dict[str, dict[str, Any]] = {}
        for step_id, s in self._state.steps.items():
            if step_str in step_id:
                result.setdefault(s.status.value, {})[step_id] = self._serialize_step(s, include_deps=False)
        return result

    @rpc_method()
    def fetch_error(self, step_id: str) -> dict[str, Any]:
        """The error text of a step: ``{stepId, error, displayName, stepParams, stepModule, stepFamily}``."""
        s = self._state.steps.get(step_id)
        if s is None:
            return {"stepId": step_id, "error": ""}
        return {"stepId": step_id, "error": s.expl, "displayName": s.pretty_id, "stepParams": dict(s.params),
                "stepModule": s.module, "stepFamily": s.family}

    @rpc_method()
    def get_step_status_message(self, step_id: str) -> dict[str, Any]:
        s = self._state.steps.get(step_id)
        return {"stepId": step_id, "statusMessage": s.status_message if s is not None else ""}

    @rpc_method()
    def get_step_progress_percentage(self, step_id: str) -> dict[str, Any]:
        s = self._state.steps.get(step_id)
        return {"stepId": step_id, "progressPercentage": s.progress_percentage if s is not None else None}

    @rpc_method()
    def get_running_step_resources(self, step_id: str) -> dict[str, Any]:
        s = self._state.steps.get(step_id)
        held = None if s is None or s.resources_running is None else dict(s.resources_running)
        return {"stepId": step_id, "resources": held}
