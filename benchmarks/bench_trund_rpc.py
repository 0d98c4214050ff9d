"""Benchmark: RPC round trips per second against a real ``trund``, with and without the state journal.

For each journal setting (``[scheduler] state_journal`` on / off) and each number
of steps already known to the scheduler (default 1,000 and 100,000), a fresh
``trund`` is started on a loopback port, filled with PENDING steps through the
bulk ``add_steps`` RPC, and then measured:

* ``add_step``: each client reports new PENDING steps (one dependency on a known step);
* ``get_work``: each client asks for work and is handed one of its PENDING steps; like trun's
  worker, it reports the step it got as DONE with its next ``get_work`` (``reports``), so a
  client never holds more than one RUNNING step and every call does the same work whatever
  the share of steps a client gets.

with 1 client and with 4 concurrent client processes (each its own worker id,
each using :class:`trun.rpc.RemoteScheduler`, i.e. what a real worker pays).
The figure is completed calls per second, summed over the clients, best of
``--repeat`` runs.

Run from the repository root::

    python benchmarks/bench_trund_rpc.py                 # full run (a few minutes)
    python benchmarks/bench_trund_rpc.py --known 1000 --seconds 1   # quick look
    python benchmarks/bench_trund_rpc.py --json results.json

Hazards: numbers depend on the machine and its load; compare journal on/off
from the same run, not across machines. ``trund`` is single-threaded, so 4
clients measure contention, not parallel speed-up.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CLIENT_COUNTS = (1, 4)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Trund:
    """A ``trund`` child process with its own state directory and config."""

    def __init__(self, workdir: Path, journal: bool) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "trun.cfg"
        # Long delays: nothing may expire or be pruned while we measure.
        config.write_text("[scheduler]\n"
                          f"state_journal = {'true' if journal else 'false'}\n"
                          "worker_disconnect_delay = 3600\nremove_delay = 3600\n"
                          "[core]\nno_configure_logging = true\n")
        env = dict(os.environ, TRUN_CONFIG_PATH=str(config))
        self.log = open(workdir / "trund.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from trun.cmdline import trund; trund()", "--address", "127.0.0.1",
             "--port", str(self.port), "--state-path", str(workdir / "state")],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(urllib.request.Request(self.url + "/", method="HEAD"), timeout=1)
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"trund exited with {self.proc.returncode}") from None
                time.sleep(0.05)
        raise RuntimeError("trund did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=120)
        self.log.close()


def worker_name(run: str, client: int) -> str:
    return f"bench-{run}-{client}"


def populate(url: str, known: int) -> float:
    """Add ``known`` PENDING steps, shared among the get_work clients of every run; returns seconds taken."""
    from trun.rpc import RemoteScheduler

    scheduler = RemoteScheduler(url)
    owners = [worker_name(f"c{n}", c) for n in CLIENT_COUNTS for c in range(n)]
    started = time.perf_counter()
    chunk = 1000
    for first in range(0, known, chunk):
        by_owner: dict[str, list[dict[str, Any]]] = {}
        for i in range(first, min(first + chunk, known)):
            by_owner.setdefault(owners[i % len(owners)], []).append(
                {"step_id": f"Known_{i}", "status": "PENDING", "family": "Known", "module": "bench",
                 "params": {"i": str(i)}, "priority": i % 7})
        for owner, steps in by_owner.items():
            scheduler.add_steps(worker=owner, steps=steps)
    return time.perf_counter() - started


def _client(url: str, method: str, worker: str, known: int, seconds: float, max_calls: int,
            barrier: Any, results: Any) -> None:
    from trun.rpc import RemoteScheduler

    scheduler = RemoteScheduler(url)
    scheduler.ping(worker=worker)  # connection and imports are not part of the measurement
    barrier.wait()
    calls = 0
    last_step = None
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline and calls < max_calls:
        if method == "add_step":
            scheduler.add_step(worker=worker, step_id=f"New_{worker}_{calls}", status="PENDING", family="New",
                               module="bench", params={"n": str(calls)}, deps=[f"Known_{calls % known}"])
        else:
            reports = [{"step_id": last_step, "status": "DONE"}] if last_step else None
            last_step = scheduler.get_work(worker=worker, host="bench", reports=reports).get("step_id")
        calls += 1
    results.put((calls, time.perf_counter() - started))


def measure(url: str, method: str, clients: int, known: int, seconds: float, repeat: int) -> float:
    """Calls per second of ``method`` with ``clients`` concurrent client processes (best of ``repeat`` runs)."""
    return max(_measure_once(url, method, clients, known, seconds, repeat) for _ in range(repeat))


def _measure_once(url: str, method: str, clients: int, known: int, seconds: float, repeat: int) -> float:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(clients)
    results = context.Queue()
    # get_work hands out each PENDING step once: stop a client when its share is used up.
    share = known // sum(CLIENT_COUNTS) // repeat if method == "get_work" else 10**12
    procs = [context.Process(target=_client, args=(url, method, worker_name(f"c{clients}", c), known, seconds,
                                                   max(1, share), barrier, results))
             for c in range(clients)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    return sum(calls / elapsed for calls, elapsed in outcomes if elapsed > 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--known", type=int, nargs="+", default=[1000, 100000],
                        help="numbers of steps already known to the scheduler (default: 1000 100000)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each measurement (default 3)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per measurement; the best is reported, as the machine's noise only slows down")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)

    rows = []
    print(f"{'journal':8} {'known':>8} {'method':9} {'clients':>7} {'calls/s':>9}")
    for journal in (True, False):
        for known in args.known:
            with tempfile.TemporaryDirectory(prefix="bench-trund-") as tmp:
                server = Trund(Path(tmp), journal)
                try:
                    fill = populate(server.url, known)
                    print(f"{'on' if journal else 'off':8} {known:>8} (filled in {fill:.1f} s)")
                    for method in ("add_step", "get_work"):
                        for clients in CLIENT_COUNTS:
                            rate = measure(server.url, method, clients, known, args.seconds, max(1, args.repeat))
                            rows.append({"journal": journal, "known": known, "method": method,
                                         "clients": clients, "calls_per_second": round(rate, 1)})
                            print(f"{'on' if journal else 'off':8} {known:>8} {method:9} {clients:>7} {rate:>9.0f}")
                finally:
                    server.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
