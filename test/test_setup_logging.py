"""Logging set-up precedence for ``trun`` (InterfaceLogging) and ``trund`` (DaemonLogging)."""
from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from trun.configuration import add_config_path, get_config, reset_config
from trun.setup_logging import DaemonLogging, InterfaceLogging, LoggingConfigFileNotFound


@pytest.fixture(autouse=True)
def clean_logging():
    """Undo whatever a test did to the logging module."""
    manager = logging.Logger.manager
    root = logging.getLogger()
    saved_root = (root.level, list(root.handlers))
    saved = {name: (lg.level, list(lg.handlers), lg.disabled, lg.propagate)
             for name, lg in manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    InterfaceLogging.reset()
    DaemonLogging.reset()
    yield
    InterfaceLogging.reset()
    DaemonLogging.reset()
    root.setLevel(saved_root[0])
    root.handlers[:] = saved_root[1]
    for name, lg in list(manager.loggerDict.items()):
        if not isinstance(lg, logging.Logger):
            continue
        if name in saved:
            lg.level, handlers, lg.disabled, lg.propagate = saved[name]
            lg.handlers[:] = handlers
        else:
            lg.handlers.clear()
            lg.setLevel(logging.NOTSET)
            lg.propagate = True


def opts(**kwargs):
    values = {"logging_conf_file": "", "log_level": "DEBUG"}
    values.update(kwargs)
    return SimpleNamespace(**values)


def write_fileconfig(path: Path, logfile: Path) -> Path:
    path.write_text(textwrap.dedent(f"""
        [loggers]
        keys=root,iface

        [handlers]
        keys=file

        [formatters]
        keys=plain

        [logger_root]
        level=WARNING
        handlers=

        [logger_iface]
        level=INFO
        handlers=file
        qualname=trun-interface
        propagate=0

        [handler_file]
        class=FileHandler
        level=INFO
        formatter=plain
        args=({str(logfile)!r}, 'a')

        [formatter_plain]
        format=FROM-CONF %(message)s
    """))
    return path


def use_toml(monkeypatch, tmp_path: Path, text: str) -> None:
    monkeypatch.setenv("TRUN_CONFIG_PARSER", "toml")
    reset_config()
    path = tmp_path / "trun.toml"
    path.write_text(textwrap.dedent(text))
    assert add_config_path(str(path))


def test_default_puts_a_level_message_handler_on_trun_interface(capsys):
    assert InterfaceLogging.setup(opts(log_level="INFO")) is True
    log = logging.getLogger("trun-interface")
    log.info("hello")
    log.debug("too chatty")
    assert log.level == logging.INFO
    assert capsys.readouterr().err == "INFO: hello\n"


def test_default_log_level_is_debug(capsys):
    InterfaceLogging.setup(opts())
    logging.getLogger("trun-interface").debug("details")
    assert capsys.readouterr().err == "DEBUG: details\n"


def test_logging_is_configured_only_once_per_process():
    assert InterfaceLogging.setup(opts(log_level="INFO")) is True
    handlers = list(logging.getLogger("trun-interface").handlers)
    assert InterfaceLogging.setup(opts(log_level="ERROR")) is False
    assert logging.getLogger("trun-interface").handlers == handlers
    assert logging.getLogger("trun-interface").level == logging.INFO


def test_reset_removes_the_default_handler():
    before = list(logging.getLogger("trun-interface").handlers)
    InterfaceLogging.setup(opts())
    InterfaceLogging.reset()
    assert logging.getLogger("trun-interface").handlers == before
    assert InterfaceLogging.setup(opts()) is True


def test_no_configure_logging_leaves_logging_alone(tmp_path):
    cfg = tmp_path / "trun.cfg"
    cfg.write_text("[core]\nno_configure_logging = true\n")
    add_config_path(str(cfg))
    before = list(logging.getLogger("trun-interface").handlers)
    assert InterfaceLogging.setup(opts()) is False
    assert logging.getLogger("trun-interface").handlers == before


def test_logging_conf_file_is_applied_with_fileconfig(tmp_path):
    logfile = tmp_path / "out.log"
    conf = write_fileconfig(tmp_path / "logging.ini", logfile)
    assert InterfaceLogging.setup(opts(logging_conf_file=str(conf))) is True
    logging.getLogger("trun-interface").info("to the file")
    for handler in logging.getLogger("trun-interface").handlers:
        handler.flush()
    assert logfile.read_text() == "FROM-CONF to the file\n"


def test_logging_conf_file_keeps_existing_loggers_enabled(tmp_path):
    existing = logging.getLogger("some.user.logger")
    conf = write_fileconfig(tmp_path / "logging.ini", tmp_path / "out.log")
    InterfaceLogging.setup(opts(logging_conf_file=str(conf)))
    assert existing.disabled is False


def test_missing_logging_conf_file_names_the_file_and_the_setting(tmp_path):
    missing = tmp_path / "nope.ini"
    with pytest.raises(LoggingConfigFileNotFound) as info:
        InterfaceLogging.setup(opts(logging_conf_file=str(missing)))
    assert str(missing) in str(info.value)
    assert "logging_conf_file" in str(info.value)


def test_toml_logging_section_is_applied_with_dictconfig(monkeypatch, tmp_path, capsys):
    use_toml(monkeypatch, tmp_path, """
        [logging]
        version = 1
        disable_existing_loggers = false
        [logging.formatters.short]
        format = "TOML %(levelname)s %(message)s"
        [logging.handlers.console]
        class = "logging.StreamHandler"
        formatter = "short"
        stream = "ext://sys.stderr"
        [logging.loggers.trun-interface]
        level = "WARNING"
        handlers = ["console"]
        propagate = false
    """)
    assert InterfaceLogging.setup(opts()) is True
    log = logging.getLogger("trun-interface")
    log.info("hidden")
    log.warning("shown")
    assert capsys.readouterr().err == "TOML WARNING shown\n"


def test_logging_conf_file_wins_over_toml_logging_section(monkeypatch, tmp_path):
    use_toml(monkeypatch, tmp_path, """
        [logging]
        version = 1
        disable_existing_loggers = false
    """)
    logfile = tmp_path / "out.log"
    conf = write_fileconfig(tmp_path / "logging.ini", logfile)
    InterfaceLogging.setup(opts(logging_conf_file=str(conf)))
    logging.getLogger("trun-interface").info("via ini")
    for handler in logging.getLogger("trun-interface").handlers:
        handler.flush()
    assert "FROM-CONF via ini" in logfile.read_text()


def test_cfg_logging_section_is_not_a_dictconfig(tmp_path, capsys):
    cfg = tmp_path / "trun.cfg"
    cfg.write_text("[logging]\nversion = 1\n")
    add_config_path(str(cfg))
    assert get_config().has_section("logging")
    InterfaceLogging.setup(opts(log_level="INFO"))
    logging.getLogger("trun-interface").info("default handler")
    assert capsys.readouterr().err == "INFO: default handler\n"


def run_daemon_logging(tmp_path: Path, opts_src: str) -> subprocess.CompletedProcess:
    # Each run gets a pristine logging module: basicConfig only acts on a root
    # logger without handlers, which pytest's own process does not have.
    script = textwrap.dedent(f"""
        import logging, types
        from trun.setup_logging import DaemonLogging
        DaemonLogging.setup(types.SimpleNamespace({opts_src}))
        logging.getLogger("trun.scheduler").info("daemon says hi")
        print(logging.getLogger().level)
    """)
    return subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=30)


def test_daemon_default_logs_info_with_time_name_and_pid(tmp_path):
    out = run_daemon_logging(tmp_path, "background=False, logdir=None")
    assert out.returncode == 0, out.stderr
    line = [ln for ln in out.stderr.splitlines() if "daemon says hi" in ln][0]
    assert " trun.scheduler[" in line and "] INFO: daemon says hi" in line


def test_daemon_logdir_writes_trun_server_log(tmp_path):
    logdir = tmp_path / "logs"
    logdir.mkdir()
    out = run_daemon_logging(tmp_path, f"background=False, logdir={str(logdir)!r}")
    assert out.returncode == 0, out.stderr
    assert "INFO: daemon says hi" in (logdir / "trun-server.log").read_text()
    assert "daemon says hi" not in out.stderr


def test_daemon_background_sets_root_to_info(tmp_path):
    out = run_daemon_logging(tmp_path, "background=True, logdir=None")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(logging.INFO)


def test_daemon_uses_core_logging_conf_file(tmp_path):
    logfile = tmp_path / "out.log"
    conf = write_fileconfig(tmp_path / "logging.ini", logfile)
    (tmp_path / "trun.cfg").write_text(f"[core]\nlogging_conf_file = {conf}\n")
    out = run_daemon_logging(tmp_path, "background=False, logdir=None")
    assert out.returncode == 0, out.stderr
    assert "daemon says hi" not in out.stderr  # the ini file's root is WARNING, no handlers
