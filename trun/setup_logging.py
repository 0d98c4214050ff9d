"""Logging set-up for the ``trun`` command (``InterfaceLogging``) and ``trund`` (``DaemonLogging``).

Both pick the *first* source that applies, in this order:

1. ``[core] no_configure_logging = true`` — leave logging entirely to the user;
2. (``trund`` only) ``--background`` (root logger at INFO) or ``--logdir``
   (INFO into ``<logdir>/trun-server.log``);
3. a ``logging.config.fileConfig`` file: ``[core] logging_conf_file`` /
   ``--logging-conf-file``;
4. a ``[logging]`` section of a TOML configuration, given to
   ``logging.config.dictConfig``;
5. the default: for ``trun`` a stderr handler on the ``trun-interface`` logger at
   ``[core] log_level`` with the format ``LEVEL: message``; for ``trund``
   ``basicConfig`` at INFO with ``time name[pid] LEVEL: message``.

Hazards: logging is configured **once per process** — later calls return False
without touching anything, so the first ``trun.build`` decides the log level
for the rest of the process. Tests call ``reset()`` to start over; it removes
the default handler this module added.
"""
from __future__ import annotations

import logging
import logging.config
import os
from typing import Any, ClassVar

__all__ = ["BaseLogging", "DaemonLogging", "InterfaceLogging", "LoggingConfigFileNotFound"]

_LEVEL_NAMES = ("NOTSET", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class LoggingConfigFileNotFound(FileNotFoundError):
    """The logging configuration file named by ``logging_conf_file`` does not exist."""


def _config() -> Any:
    # Fetched on every call: tests swap the configuration between runs.
    from trun.configuration import get_config
    return get_config()


def _is_toml(config: Any) -> bool:
    # Only the TOML parser can hold a nested ``[logging]`` dict for dictConfig;
    # a cfg ``[logging]`` section is flat strings and means nothing to us.
    from trun.configuration import TrunTomlParser
    return isinstance(config, TrunTomlParser)


def _check_conf_file(path: str) -> None:
    if not os.path.exists(path):
        raise LoggingConfigFileNotFound(
            f"logging configuration file {path!r} does not exist; "
            "set [core] logging_conf_file (or --logging-conf-file) to an existing "
            "logging.config.fileConfig ini file, or remove the setting")


class BaseLogging:
    """Shared precedence logic; subclasses provide ``_cli``, ``_conf`` and ``_default``."""

    _configured: ClassVar[bool] = False
    _added_handlers: ClassVar[list[tuple[logging.Logger, logging.Handler]]] = []

    @classmethod
    def _section(cls, opts: Any) -> bool:
        """Configure from a TOML ``[logging]`` table with ``dictConfig``; False if there is none."""
        config = _config()
        if not _is_toml(config):
            return False
        try:
            if not config.has_section("logging"):
                return False
            try:
                section = config["logging"]
            except (TypeError, KeyError):
                section = dict(config.items("logging"))
        except Exception:  # a parser without that section shape: nothing to apply
            return False
        logging.config.dictConfig(_thaw(section))
        return True

    @classmethod
    def setup(cls, opts: Any = None) -> bool:
        """Configure logging from ``opts`` (a ``core`` instance or similar) unless already done.

        Returns True when this call configured logging, False when it was already
        configured in this process or ``[core] no_configure_logging`` is set.
        ``opts`` needs ``logging_conf_file`` and ``log_level`` (``trun``) or
        ``background`` and ``logdir`` (``trund``); missing attributes count as unset.
        """
        logger = logging.getLogger("trun")
        if cls._configured:
            logger.info("logging already configured")
            return False
        cls._configured = True

        if _config().getboolean("core", "no_configure_logging", False):
            logger.info("logging disabled in settings")
            return False

        for source, how in ((cls._cli, "special settings"), (cls._conf, "*.conf file"),
                            (cls._section, "config section"), (cls._default, "default settings")):
            if source(opts):
                logger.info("logging configured via %s", how)
                return True
        return False

    @classmethod
    def reset(cls) -> None:
        """Forget that logging was configured and remove the default handlers added here (tests)."""
        cls._configured = False
        for logger, handler in cls._added_handlers:
            logger.removeHandler(handler)
            handler.close()
        cls._added_handlers.clear()

    @classmethod
    def _remember(cls, logger: logging.Logger, handler: logging.Handler) -> None:
        logger.addHandler(handler)
        cls._added_handlers.append((logger, handler))

    @classmethod
    def _cli(cls, opts: Any) -> bool:
        raise NotImplementedError

    @classmethod
    def _conf(cls, opts: Any) -> bool:
        raise NotImplementedError

    @classmethod
    def _default(cls, opts: Any) -> bool:
        raise NotImplementedError


class DaemonLogging(BaseLogging):
    """Logging for ``trund``: ``--background``, ``--logdir``, config file, TOML, or INFO to stderr."""

    _configured = False
    _added_handlers = []
    _log_format = "%(asctime)s %(name)s[%(process)s] %(levelname)s: %(message)s"

    @classmethod
    def _cli(cls, opts: Any) -> bool:
        if getattr(opts, "background", None):
            logging.getLogger().setLevel(logging.INFO)
            return True
        logdir = getattr(opts, "logdir", None)
        if logdir:
            logging.basicConfig(level=logging.INFO, format=cls._log_format,
                                filename=os.path.join(logdir, "trun-server.log"))
            return True
        return False

    @classmethod
    def _conf(cls, opts: Any) -> bool:
        path = _config().get("core", "logging_conf_file", None)
        if not path:
            return False
        _check_conf_file(path)
        logging.config.fileConfig(path)
        return True

    @classmethod
    def _default(cls, opts: Any) -> bool:
        logging.basicConfig(level=logging.INFO, format=cls._log_format)
        return True


class InterfaceLogging(BaseLogging):
    """Logging for ``trun`` and ``trun.build``: config file, TOML, or ``LEVEL: message`` on stderr."""

    _configured = False
    _added_handlers = []

    @classmethod
    def _cli(cls, opts: Any) -> bool:
        return False

    @classmethod
    def _conf(cls, opts: Any) -> bool:
        path = getattr(opts, "logging_conf_file", None)
        if not path:
            return False
        _check_conf_file(path)
        logging.config.fileConfig(path, disable_existing_loggers=False)
        return True

    @classmethod
    def _default(cls, opts: Any) -> bool:
        level_name = str(getattr(opts, "log_level", "DEBUG") or "DEBUG").upper()
        level = getattr(logging, level_name, logging.DEBUG) if level_name in _LEVEL_NAMES else logging.DEBUG

        logger = logging.getLogger("trun-interface")
        logger.setLevel(level)
        handler = logging.StreamHandler()
        handler.setLevel(level)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        cls._remember(logger, handler)
        return True


def _thaw(value: Any) -> Any:
    """Turn frozen mappings/tuples from the config layer back into what dictConfig accepts."""
    if isinstance(value, dict) or (hasattr(value, "items") and not isinstance(value, (str, bytes))):
        return {key: _thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    return value
