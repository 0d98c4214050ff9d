"""trun's configuration: ``trun.cfg`` / ``trun.toml`` files, read once per process.

Typical use::

    from trun.configuration import get_config
    workers = get_config().getint("core", "workers", 1)

Files are read in this order (later ones win, key by key): ``/etc/trun/trun.cfg``,
``trun.cfg`` in the current directory, the file named by ``TRUN_CONFIG_PATH``,
then files given to :func:`add_config_path`. With ``TRUN_CONFIG_PARSER=toml``
the same places are searched for ``trun.toml`` instead.

Hazards: the configuration is process-global state; tests reset it with
:func:`reset_config` or overlay values with :func:`trun.testing.with_config`.
This package imports only the standard library (TOML support loads lazily), as
``import trun`` paths depend on it.
"""
from __future__ import annotations

from trun.configuration.base_parser import NO_DEFAULT, BaseParser, ConfigError, ConfigValueError
from trun.configuration.cfg_parser import InterpolationMissingEnvvarError, TrunConfigParser
from trun.configuration.core import PARSERS, add_config_path, get_config, reset_config
from trun.configuration.toml_parser import TrunTomlParser

__all__ = [
    "NO_DEFAULT",
    "PARSERS",
    "BaseParser",
    "ConfigError",
    "ConfigValueError",
    "InterpolationMissingEnvvarError",
    "TrunConfigParser",
    "TrunTomlParser",
    "add_config_path",
    "get_config",
    "reset_config",
]
