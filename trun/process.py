"""The ``trund`` command: parse its flags, check everything that can fail, then serve (maybe as a daemon).

``trund [--port 8082] [--address ADDR | --unix-socket PATH] [--state-path DIR]
[--background] [--pidfile FILE] [--logdir DIR] [--ignore-bad-state]``

Every start-up problem — a live pid in ``--pidfile``, untrusted state, a state
directory used by another ``trund``, a port already taken, a log directory that
cannot be created — is reported as one line on stderr with exit status 1
*before* ``--background`` detaches, so ``trund --background`` in a crontab or a
shell script fails visibly instead of dying silently in the background.

SIGTERM, SIGINT and SIGQUIT stop the server cleanly: it stops listening,
writes a final state snapshot and removes its pidfile.

Hazards: ``--background`` forks (python-daemon's ``DaemonContext``) and closes
every descriptor except the listening sockets and the state lock, so nothing
may start threads or open files before it that must survive; the IOLoop is only
created after the fork.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import logging.handlers
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["check_pid", "get_log_format", "get_spool_handler", "trund_main", "write_pid"]

logger = logging.getLogger("trun.server")

DEFAULT_BACKGROUND_LOGDIR = "/var/log/trun"
LOG_FILE_NAME = "trund.log"


def get_log_format() -> str:
    """Format of ``trund`` log lines: time, logger name, pid, level, message."""
    return "%(asctime)s %(name)s[%(process)s] %(levelname)s: %(message)s"


def get_spool_handler(filename: str) -> logging.Handler:
    """A handler writing ``filename``, rotated daily at midnight, one week of old logs kept."""
    handler = logging.handlers.TimedRotatingFileHandler(filename, when="midnight", backupCount=7, encoding="utf-8")
    handler.setFormatter(logging.Formatter(get_log_format()))
    return handler


def _pid_is_trun(pid: int) -> bool:
    """True when ``pid`` is alive and (where /proc can tell) runs trun, not a process that reused the pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[:1]
    except OSError:
        return True  # no /proc (macOS ...): trust kill(0)
    if state == [b"Z"]:
        return False
    # After a reboot the old pid may belong to anything; only a trun process counts.
    return b"trun" in cmdline


def check_pid(pidfile: str | None) -> int:
    """The pid recorded in ``pidfile`` if that process is a live trun process, else 0."""
    if not pidfile:
        return 0
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0
    if pid <= 0 or pid == os.getpid():
        return 0
    return pid if _pid_is_trun(pid) else 0


def write_pid(pidfile: str) -> None:
    """Write the current pid to ``pidfile`` (creating its directory), atomically."""
    directory = os.path.dirname(os.path.abspath(pidfile))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{pidfile}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, pidfile)


def _remove_pidfile(pidfile: str) -> None:
    # Only our own: a second trund that was refused must not delete the first one's file.
    with contextlib.suppress(OSError, ValueError):
        with open(pidfile) as f:
            if int(f.read().strip()) != os.getpid():
                return
        os.unlink(pidfile)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trund", description="Central scheduler for trun workflows (Luigi's luigid, renamed).")
    parser.add_argument("--port", type=int, default=8082, help="TCP port to listen on (default 8082)")
    parser.add_argument("--address", default=None,
                        help="address to listen on (default: all interfaces, IPv4 and IPv6)")
    parser.add_argument("--unix-socket", default=None, metavar="PATH",
                        help="listen on this UNIX socket instead of TCP; clients use "
                             "http+unix://%%2Fpath%%2Fto%%2Fsocket/")
    parser.add_argument("--state-path", default=None, metavar="DIR",
                        help="directory of the durable scheduler state (default: [scheduler] state_path, "
                             "else /var/lib/trun-server/state)")
    parser.add_argument("--background", action="store_true",
                        help="detach and run as a daemon; logs go to --logdir (default /var/log/trun)")
    parser.add_argument("--pidfile", default=None, metavar="FILE",
                        help="write the server's pid here; refuse to start while the pid in it is alive")
    parser.add_argument("--logdir", default=None, metavar="DIR",
                        help=f"write {LOG_FILE_NAME} here, rotated daily (kept 7 days)")
    parser.add_argument("--ignore-bad-state", action="store_true",
                        help="start even if the state is corrupt or from a newer trun: untrusted files are "
                             "moved aside as *.bad-<time> and what can be read is kept")
    return parser


def _fail(message: str) -> NoReturn:
    print(f"trund: {message}", file=sys.stderr)
    sys.exit(1)


def _setup_logging(args: argparse.Namespace) -> None:
    from trun.configuration import get_config

    if get_config().getboolean("core", "no_configure_logging", False):
        return
    if args.logdir:
        root = logging.getLogger()
        root.setLevel(logging.INFO)
        root.addHandler(get_spool_handler(os.path.join(args.logdir, LOG_FILE_NAME)))
        # The rest of the process (and trun.setup_logging users) must not add a second handler.
        with contextlib.suppress(ImportError):
            from trun.setup_logging import DaemonLogging
            DaemonLogging._configured = True
        return
    try:
        from trun.setup_logging import DaemonLogging
    except ImportError:
        logging.basicConfig(level=logging.INFO, format=get_log_format())
        return
    DaemonLogging.setup(argparse.Namespace(background=False, logdir=None))


def _daemon_context(args: argparse.Namespace, preserve: list[int]) -> Any:
    import daemon

    out = open(os.path.join(args.logdir, "trund.out"), "a+")
    err = open(os.path.join(args.logdir, "trund.err"), "a+")
    return daemon.DaemonContext(
        stdout=out,
        stderr=err,
        working_directory=os.getcwd(),
        umask=0o022,
        initgroups=False,
        files_preserve=preserve,
        # We install our own clean-shutdown handlers once the IOLoop runs.
        signal_map={},
    )


def trund_main(argv: Sequence[str] | None = None) -> None:
    """Run the ``trund`` command with ``argv`` (default ``sys.argv[1:]``); returns after a clean stop."""
    args = _parser().parse_args(argv)

    if args.background and not args.logdir:
        args.logdir = DEFAULT_BACKGROUND_LOGDIR
    if args.logdir:
        try:
            os.makedirs(args.logdir, exist_ok=True)
        except OSError as exc:
            _fail(f"cannot create the log directory {args.logdir}: {exc.strerror or exc}")
    existing = check_pid(args.pidfile)
    if existing:
        _fail(f"already running with pid {existing} (pidfile {args.pidfile}); stop it first, "
              "or remove the pidfile if that process is not trund")
    if not args.background:
        _setup_logging(args)

    from trun.server import TrundServer
    from trun.state_store import BadStateError

    try:
        server = TrundServer(state_path=args.state_path, ignore_bad_state=args.ignore_bad_state)
        server.load_state()
    except BadStateError as exc:
        hint = "" if args.ignore_bad_state or "already in use" in exc.problem else (
            " — fix or move the file away, or start with --ignore-bad-state to set untrusted files aside")
        _fail(f"cannot start: {exc}{hint}")
    except (ValueError, TypeError, ImportError) as exc:
        # The scheduler's settings (a [scheduler] value, its metrics collector, a missing extra):
        # each such error names the setting and the fix. The traceback stays in the debug log.
        logger.debug("trund could not set up its scheduler", exc_info=True)
        _fail(f"cannot start: {exc}")

    try:
        server.bind(args.port, args.address, args.unix_socket)
    except OSError as exc:
        where = args.unix_socket or f"{args.address or '*'}:{args.port}"
        _fail(f"cannot listen on {where}: {exc.strerror or exc}")

    context = _daemon_context(args, server.file_descriptors()) if args.background else contextlib.nullcontext()
    with context:
        if args.background:
            _setup_logging(args)
        if args.pidfile:
            write_pid(args.pidfile)
        try:
            logger.info("trund starting (pid %d)", os.getpid())
            server.serve_forever()
        finally:
            if args.pidfile:
                _remove_pidfile(args.pidfile)


if __name__ == "__main__":
    trund_main()
