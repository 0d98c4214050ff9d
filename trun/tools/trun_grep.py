"""``trun-grep``: find steps on a running ``trund`` by step-id prefix or by status (Luigi's ``luigi-grep``).

::

    trun-grep --prefix MyStep                 # steps whose id starts with "MyStep"
    trun-grep --status FAILED                 # steps in that status (any case)
    trun-grep --scheduler-url http://user:pw@sched:8082/ --status running

Each match prints as ``<step_id>: <STATUS>, Dependencies:`` followed by its
dependencies grouped under ``status=<STATUS>`` headings (a dependency the
scheduler does not know is listed as ``UNKNOWN``).

It reads the scheduler's ``graph`` RPC (all steps with their dependencies),
through :class:`trun.rpc.RemoteScheduler`, so ``https://``, basic auth and
``http+unix://`` URLs work. Hazard: ``graph`` returns every step the scheduler
knows; on a very large scheduler this is one big answer.
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = ["TrunGrep", "main"]


class TrunGrep:
    """Search the steps of the scheduler at ``host:port`` (or ``url``) by id prefix or status."""

    def __init__(self, host: str = "localhost", port: int | str = 8082, url: str | None = None) -> None:
        self._url = url or f"http://{host}:{port}/"

    @property
    def graph_url(self) -> str:
        """Where the step graph is fetched from."""
        return self._url.rstrip("/") + "/api/graph"

    def _fetch_graph(self) -> Mapping[str, Any]:
        from trun.rpc import RemoteScheduler
        return RemoteScheduler(self._url).graph() or {}

    @staticmethod
    def _build_result(steps: Mapping[str, Any], step_id: str) -> dict[str, Any]:
        deps_by_status: dict[str, list[str]] = defaultdict(list)
        for dep in steps[step_id].get("deps") or ():
            status = steps[dep]["status"] if dep in steps else "UNKNOWN"
            deps_by_status[status].append(dep)
        return {"name": step_id, "status": steps[step_id]["status"], "deps_by_status": dict(deps_by_status)}

    def prefix_search(self, step_id_prefix: str) -> Iterator[dict[str, Any]]:
        """Yield ``{"name", "status", "deps_by_status"}`` for each step whose id starts with the prefix."""
        steps = self._fetch_graph()
        for step_id in sorted(steps):
            if step_id.startswith(step_id_prefix):
                yield self._build_result(steps, step_id)

    def status_search(self, status: str) -> Iterator[dict[str, Any]]:
        """Yield ``{"name", "status", "deps_by_status"}`` for each step in ``status`` (case-insensitive)."""
        steps = self._fetch_graph()
        wanted = status.lower()
        for step_id in sorted(steps):
            if str(steps[step_id]["status"]).lower() == wanted:
                yield self._build_result(steps, step_id)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trun-grep", description="Search the steps of a running trund by step-id prefix or by status.")
    parser.add_argument("--scheduler-host", default="localhost", help="host of the trund (default localhost)")
    parser.add_argument("--scheduler-port", default="8082", help="port of the trund (default 8082)")
    parser.add_argument("--scheduler-url", default=None,
                        help="full URL of the trund; overrides host and port (https://, user:pass@, http+unix://)")
    parser.add_argument("--prefix", default=None, help="list steps whose id starts with this")
    parser.add_argument("--status", default=None, help="list steps in this status, e.g. FAILED")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``trun-grep``; returns the exit status (0, or 1 when the scheduler cannot be reached)."""
    from trun.rpc import RPCError

    parser = _parser()
    args = parser.parse_args(argv)
    if not args.prefix and not args.status:
        parser.error("give --prefix PREFIX or --status STATUS")
    grep = TrunGrep(args.scheduler_host, args.scheduler_port, url=args.scheduler_url)
    try:
        results = list(grep.prefix_search(args.prefix) if args.prefix else grep.status_search(args.status))
    except RPCError as exc:
        print(f"trun-grep: {exc}", file=sys.stderr)
        return 1
    for result in results:
        print(f"{result['name']}: {result['status']}, Dependencies:")
        for status, deps in result["deps_by_status"].items():
            print(f"  status={status}")
            for dep in deps:
                print(f"    {dep}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
