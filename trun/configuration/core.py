"""Choosing the configuration parser and the files it reads.

``get_config()`` returns the process-wide parser: the ``trun.cfg`` parser
unless ``TRUN_CONFIG_PARSER=toml`` selects the ``trun.toml`` one.
``TRUN_CONFIG_PATH`` names one more file, read after the default search path;
``add_config_path()`` adds further files from code. Both pick the parser by the
file's extension (``.cfg``/``.conf``/``.ini`` or ``.toml``).

Hazards: the environment variables are read when the configuration is first
used after import or after :func:`reset_config`, not on every call; the
instances are shared by the whole process (see
:mod:`trun.configuration.base_parser`).
"""
from __future__ import annotations

import os
import warnings

from trun.configuration.base_parser import BaseParser
from trun.configuration.cfg_parser import TrunConfigParser
from trun.configuration.toml_parser import _INSTALL_HINT, TrunTomlParser

__all__ = [
    "CONFIG_PARSER_ENV",
    "CONFIG_PATH_ENV",
    "DEFAULT_PARSER",
    "PARSERS",
    "add_config_path",
    "get_config",
    "reset_config",
]

#: Parser name (as in ``TRUN_CONFIG_PARSER`` or a file extension) -> parser class.
PARSERS: dict[str, type[BaseParser]] = {
    "cfg": TrunConfigParser,
    "conf": TrunConfigParser,
    "ini": TrunConfigParser,
    "toml": TrunTomlParser,
}
DEFAULT_PARSER = "cfg"
#: Environment variable naming one extra configuration file.
CONFIG_PATH_ENV = "TRUN_CONFIG_PATH"
#: Environment variable selecting the parser: ``cfg`` (default), ``conf``, ``ini`` or ``toml``.
CONFIG_PARSER_ENV = "TRUN_CONFIG_PARSER"

# True once TRUN_CONFIG_PATH has been put on the search path (until reset_config()).
_env_path_applied = False


def _suggestion(name: str) -> str:
    import difflib  # only on the error path: keep importing the configuration cheap

    close = difflib.get_close_matches(name.lower(), PARSERS, n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _active_parser_name() -> str:
    name = os.environ.get(CONFIG_PARSER_ENV, DEFAULT_PARSER)
    if name not in PARSERS:
        warnings.warn(
            f"Invalid {CONFIG_PARSER_ENV}={name!r}: expected one of {', '.join(PARSERS)}; "
            f"using {DEFAULT_PARSER!r}.{_suggestion(name)}",
            stacklevel=4,
        )
        return DEFAULT_PARSER
    return name


def _parser_for_file(path: str) -> tuple[str, type[BaseParser]]:
    extension = os.path.splitext(path)[1][1:]
    name = extension if extension in PARSERS else _active_parser_name()
    return name, PARSERS[name]


def _register_path(path: str, load: bool) -> bool:
    if not os.path.isfile(path):
        warnings.warn(f"Config file does not exist: {path}", stacklevel=3)
        return False
    name, parser_class = _parser_for_file(path)
    active_name = _active_parser_name()
    if parser_class is not PARSERS[active_name]:
        warnings.warn(
            f"Config file {path} is read by the {name!r} parser, but the active parser is "
            f"{active_name!r}, so its values are not used; set {CONFIG_PARSER_ENV}={name} to use it.",
            stacklevel=3,
        )
    if load:
        parser_class.add_config_path(path)
    elif path not in parser_class._config_paths:
        parser_class._config_paths.append(path)
    return True


def apply_env_config_path() -> None:
    """Put the file named by ``TRUN_CONFIG_PATH`` on the search path, once per reset.

    Called by ``get_config()`` and ``add_config_path()``; Luigi did this when the
    module was imported, trun does it on first use so that tests can set the variable.
    """
    global _env_path_applied
    if _env_path_applied:
        return
    _env_path_applied = True
    path = os.environ.get(CONFIG_PATH_ENV)
    if path:
        _register_path(path, load=False)


# The parser instance the last get_config() without arguments returned while
# TRUN_CONFIG_PARSER was unset: (parser class, instance).
_default_memo: tuple[type[BaseParser], BaseParser] | None = None
_environ = os.environ
_environ_data = getattr(os.environ, "_data", None)
_parser_env_key = (os.environ.encodekey(CONFIG_PARSER_ENV)  # type: ignore[attr-defined]
                   if hasattr(os.environ, "encodekey") else None)


def get_config(parser: str | None = None) -> BaseParser:
    """Return the process-wide configuration parser, reading its files on first use.

    ``parser`` is ``"cfg"`` (also ``"conf"``, ``"ini"``) or ``"toml"``; by default
    the one named by ``TRUN_CONFIG_PARSER``, else ``"cfg"``. Raises
    :class:`~trun.configuration.ConfigError` if a configuration file is malformed.
    """
    global _default_memo
    if parser is None:
        # Every step creation asks (for its [family] section), so the usual
        # answer is cheap: while TRUN_CONFIG_PARSER is unset (looked up in the
        # mapping behind os.environ: os.environ.get raises and catches a
        # KeyError for an unset variable) and nothing was reset, it is the
        # instance returned last time.
        if (_parser_env_key is not None and os.environ is _environ and _environ_data is not None
                and _parser_env_key not in _environ_data):
            memo = _default_memo
            if (memo is not None and _env_path_applied and memo[0]._instance is memo[1]
                    and PARSERS.get(DEFAULT_PARSER) is memo[0] and memo[0].enabled):
                return memo[1]
            instance = get_config(DEFAULT_PARSER)
            _default_memo = (PARSERS[DEFAULT_PARSER], instance)
            return instance
        parser = _active_parser_name()
    elif parser not in PARSERS:
        raise ValueError(
            f"Unknown config parser {parser!r}: expected one of {', '.join(PARSERS)}.{_suggestion(parser)}"
        )
    parser_class = PARSERS[parser]
    if not parser_class.enabled:
        raise ImportError(_INSTALL_HINT)
    apply_env_config_path()
    return parser_class.instance()


def add_config_path(path: str) -> bool:
    """Read one more configuration file, with priority over all files read so far.

    The parser is chosen by the extension (``.toml`` -> TOML, ``.cfg``/``.conf``/
    ``.ini`` -> cfg, anything else -> the active parser); a warning says so when
    that is not the active parser. A missing file warns and returns False.
    """
    apply_env_config_path()
    return _register_path(path, load=True)


def reset_config() -> None:
    """Forget every parser instance and every added path (tests call this around each test).

    The next ``get_config()`` reads the default search path again, including
    ``TRUN_CONFIG_PATH`` as it is set at that moment. Objects returned by earlier
    ``get_config()`` calls are left as they are but no longer used by trun.
    """
    global _env_path_applied
    for parser_class in set(PARSERS.values()):
        parser_class._reset()
    _env_path_applied = False


def _capture_state() -> object:
    """Everything ``reset_config``/``add_config_path``/``set`` can change, for trun.testing."""
    parsers = {}
    for parser_class in set(PARSERS.values()):
        instance = parser_class._instance
        snapshot = instance._snapshot() if instance is not None else None
        parsers[parser_class] = (instance, snapshot, list(parser_class._config_paths))
    return parsers, _env_path_applied


def _restore_state(state: object) -> None:
    """Put back what ``_capture_state`` saw: the same instances, their values and search paths."""
    global _env_path_applied
    parsers, env_path_applied = state  # type: ignore[misc]
    for parser_class, (instance, snapshot, paths) in parsers.items():
        if instance is not None:
            instance._restore(snapshot)
        parser_class._instance = instance
        parser_class._config_paths = paths
    _env_path_applied = env_path_applied
