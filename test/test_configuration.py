"""trun.configuration: search path, interpolation, typed getters, errors, cfg and TOML parsers.

Every test runs in its own empty current directory (see conftest.py), so a
``trun.cfg`` written there is the one found on the default search path.
"""
from __future__ import annotations

import configparser
import subprocess
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path

import pytest

import trun
from trun.configuration import (
    ConfigError,
    ConfigValueError,
    InterpolationMissingEnvvarError,
    TrunConfigParser,
    TrunTomlParser,
    add_config_path,
    get_config,
    reset_config,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def toml_parser(monkeypatch):
    monkeypatch.setenv("TRUN_CONFIG_PARSER", "toml")


# -- search path and instances ------------------------------------------------


def test_get_config_reads_trun_cfg_in_current_directory(tmp_path):
    write(tmp_path / "trun.cfg", "[core]\nworkers = 3\n")
    assert get_config().get("core", "workers") == "3"


def test_configuration_is_reachable_from_the_top_level_package():
    assert trun.configuration.get_config is get_config


def test_get_config_returns_one_instance_per_parser():
    assert get_config() is get_config()
    assert get_config("cfg") is get_config("ini") is get_config("conf")
    assert isinstance(get_config(), TrunConfigParser)


def test_no_config_file_gives_empty_configuration():
    assert get_config().sections() == []


def test_trun_config_path_overrides_file_in_current_directory(tmp_path, monkeypatch):
    write(tmp_path / "trun.cfg", "[core]\nworkers = 1\nlog_level = INFO\n")
    extra = write(tmp_path / "extra.cfg", "[core]\nworkers = 8\n")
    monkeypatch.setenv("TRUN_CONFIG_PATH", str(extra))
    reset_config()
    config = get_config()
    assert config.getint("core", "workers") == 8
    assert config.get("core", "log_level") == "INFO"


def test_trun_config_path_naming_missing_file_warns(tmp_path, monkeypatch):
    monkeypatch.setenv("TRUN_CONFIG_PATH", str(tmp_path / "nowhere.cfg"))
    reset_config()
    with pytest.warns(UserWarning, match="nowhere.cfg"):
        get_config()


def test_add_config_path_overrides_files_read_before(tmp_path):
    write(tmp_path / "trun.cfg", "[core]\nworkers = 1\n")
    assert get_config().getint("core", "workers") == 1
    added = write(tmp_path / "more.cfg", "[core]\nworkers = 5\n")
    assert add_config_path(str(added)) is True
    assert get_config().getint("core", "workers") == 5


def test_add_config_path_keeps_values_set_in_code(tmp_path):
    get_config().set("core", "workers", "7")
    add_config_path(str(write(tmp_path / "more.cfg", "[email]\nprefix = x\n")))
    assert get_config().get("core", "workers") == "7"


def test_add_config_path_with_missing_file_warns_and_returns_false(tmp_path):
    with pytest.warns(UserWarning, match="does not exist"):
        assert add_config_path(str(tmp_path / "missing.cfg")) is False


def test_add_config_path_with_toml_file_under_cfg_parser_warns(tmp_path):
    path = write(tmp_path / "extra.toml", "[core]\nworkers = 2\n")
    with pytest.warns(UserWarning, match="TRUN_CONFIG_PARSER=toml"):
        add_config_path(str(path))
    assert not get_config().has_option("core", "workers")


def test_reset_config_forgets_added_paths(tmp_path):
    add_config_path(str(write(tmp_path / "more.cfg", "[core]\nworkers = 5\n")))
    reset_config()
    assert not get_config().has_option("core", "workers")


def test_reset_config_makes_a_new_instance():
    before = get_config()
    reset_config()
    assert get_config() is not before


def test_reload_rereads_files_and_drops_values_set_in_code(tmp_path):
    cfg = write(tmp_path / "trun.cfg", "[core]\nworkers = 1\n")
    config = get_config()
    config.set("core", "extra", "x")
    write(cfg, "[core]\nworkers = 2\n")
    assert config.reload() == ["trun.cfg"]
    assert config.getint("core", "workers") == 2
    assert not config.has_option("core", "extra")


def test_unknown_parser_name_raises_with_suggestion():
    with pytest.raises(ValueError, match="Did you mean 'toml'"):
        get_config("tomll")


def test_invalid_trun_config_parser_warns_and_falls_back_to_cfg(monkeypatch):
    monkeypatch.setenv("TRUN_CONFIG_PARSER", "yaml")
    with pytest.warns(UserWarning, match="TRUN_CONFIG_PARSER='yaml'"):
        config = get_config()
    assert isinstance(config, TrunConfigParser)


def test_importing_configuration_does_not_import_toml_library():
    code = "import sys, trun.configuration; print('tomllib' in sys.modules or 'tomli' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# -- getters --------------------------------------------------------------------


def test_missing_option_without_default_raises_no_option_error(tmp_path):
    write(tmp_path / "trun.cfg", "[core]\nworkers = 1\n")
    with pytest.raises(configparser.NoOptionError):
        get_config().get("core", "nothing")


def test_missing_section_without_default_raises_no_section_error():
    with pytest.raises(configparser.NoSectionError):
        get_config().getint("nowhere", "workers")


def test_getters_return_default_when_missing():
    config = get_config()
    assert config.get("core", "x", "fallback") == "fallback"
    assert config.getint("core", "x", 3) == 3
    assert config.getfloat("core", "x", 1.5) == 1.5
    assert config.getboolean("core", "x", False) is False
    assert config.get("core", "x", None) is None


def test_typed_getters_convert_values(tmp_path):
    write(tmp_path / "trun.cfg", "[worker]\ncount = 4\ndelay = 0.25\nkeep_alive = yes\nquiet = off\n")
    config = get_config()
    assert config.getint("worker", "count") == 4
    assert config.getfloat("worker", "delay") == 0.25
    assert config.getboolean("worker", "keep_alive") is True
    assert config.getboolean("worker", "quiet") is False


def test_getint_rejects_non_integer_naming_file_section_and_option(tmp_path):
    write(tmp_path / "trun.cfg", "[core]\nworkers = many\n")
    with pytest.raises(ConfigValueError) as raised:
        get_config().getint("core", "workers")
    message = str(raised.value)
    assert "trun.cfg" in message and "[core] workers = 'many'" in message and "integer" in message
    assert isinstance(raised.value, ValueError)


def test_getboolean_rejects_non_boolean_naming_accepted_forms(tmp_path):
    write(tmp_path / "trun.cfg", "[core]\nno_lock = maybe\n")
    with pytest.raises(ValueError, match="true/false"):
        get_config().getboolean("core", "no_lock")


def test_getfloat_rejects_non_number(tmp_path):
    write(tmp_path / "trun.cfg", "[scheduler]\nretry_delay = soon\n")
    with pytest.raises(ConfigValueError, match="retry_delay = 'soon' is not a number"):
        get_config().getfloat("scheduler", "retry_delay")


def test_option_names_are_case_sensitive(tmp_path):
    write(tmp_path / "trun.cfg", "[MyStep]\nDate = 2024-01-01\n")
    config = get_config()
    assert config.get("MyStep", "Date") == "2024-01-01"
    assert not config.has_option("MyStep", "date")


def test_dash_style_option_is_found_with_deprecation_warning(tmp_path):
    write(tmp_path / "trun.cfg", "[worker]\nkeep-alive = true\n")
    with pytest.warns(DeprecationWarning, match=r"\[worker\] keep-alive .*keep_alive"):
        assert get_config().getboolean("worker", "keep_alive") is True


def test_dash_style_warning_is_given_once_and_points_at_the_caller(tmp_path):
    write(tmp_path / "trun.cfg", "[worker]\nwait-interval = 2\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        get_config().getint("worker", "wait_interval")
    assert len(caught) == 1
    assert caught[0].filename == __file__


def test_dash_style_has_option_warns(tmp_path):
    write(tmp_path / "trun.cfg", "[worker]\nkeep-alive = true\n")
    with pytest.warns(DeprecationWarning):
        assert get_config().has_option("worker", "keep_alive")


def test_dash_style_query_finds_underscore_option_without_warning(tmp_path):
    write(tmp_path / "trun.cfg", "[core]\nrpc_connect_timeout = 5\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert get_config().getfloat("core", "rpc-connect-timeout") == 5.0


def test_getintdict_returns_ints_without_default_keys(tmp_path):
    write(tmp_path / "trun.cfg", "[DEFAULT]\nbase = /data\n\n[resources]\ncpu = 4\ngpu = 1\n")
    assert get_config().getintdict("resources") == {"cpu": 4, "gpu": 1}


def test_getintdict_of_missing_section_is_empty():
    assert get_config().getintdict("resources") == {}


def test_getintdict_rejects_non_integer_naming_key(tmp_path):
    write(tmp_path / "trun.cfg", "[resources]\ncpu = lots\n")
    with pytest.raises(ConfigValueError, match=r"\[resources\] cpu = 'lots'"):
        get_config().getintdict("resources")


def test_set_creates_missing_section():
    config = get_config()
    config.set("MyStep", "param", "value")
    assert config.has_section("MyStep")
    assert config.get("MyStep", "param") == "value"


def test_items_and_sections_list_what_files_hold(tmp_path):
    write(tmp_path / "trun.cfg", "[core]\nworkers = 2\n\n[worker]\nid = w1\n")
    config = get_config()
    assert config.sections() == ["core", "worker"]
    assert config.items("worker") == [("id", "w1")]


# -- interpolation ----------------------------------------------------------------


def test_percent_interpolation_uses_same_section_and_default(tmp_path):
    write(tmp_path / "trun.cfg", "[DEFAULT]\nroot = /srv\n\n[paths]\ndata = %(root)s/data\nout = %(data)s/out\n")
    config = get_config()
    assert config.get("paths", "out") == "/srv/data/out"


def test_raw_get_skips_interpolation(tmp_path):
    write(tmp_path / "trun.cfg", "[paths]\nout = %(data)s/out\n")
    assert get_config().get("paths", "out", raw=True) == "%(data)s/out"


def test_environment_variable_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("TRUN_TEST_ROOT", "/mnt/x")
    write(tmp_path / "trun.cfg", "[paths]\nout = ${TRUN_TEST_ROOT}/out\n")
    assert get_config().get("paths", "out") == "/mnt/x/out"


def test_missing_environment_variable_error_names_variable_file_and_option(tmp_path, monkeypatch):
    monkeypatch.delenv("TRUN_TEST_UNSET", raising=False)
    write(tmp_path / "trun.cfg", "[paths]\nout = ${TRUN_TEST_UNSET}/out\n")
    with pytest.raises(InterpolationMissingEnvvarError) as raised:
        get_config().get("paths", "out")
    message = str(raised.value)
    assert "TRUN_TEST_UNSET" in message and "trun.cfg" in message and "[paths] out" in message
    assert raised.value.envvar == "TRUN_TEST_UNSET"


# -- malformed files ----------------------------------------------------------------


def test_duplicate_section_names_file_and_line(tmp_path):
    write(tmp_path / "trun.cfg", "[core]\nworkers = 1\n[core]\nworkers = 2\n")
    with pytest.raises(ConfigError, match=r"trun.cfg, line 3: section \[core\] appears twice"):
        get_config()


def test_duplicate_option_names_file_and_line(tmp_path):
    write(tmp_path / "trun.cfg", "[core]\nworkers = 1\nworkers = 2\n")
    with pytest.raises(ConfigError, match=r"line 3: option 'workers' appears twice"):
        get_config()


def test_option_before_any_section_names_file_and_line(tmp_path):
    write(tmp_path / "trun.cfg", "workers = 1\n")
    with pytest.raises(ConfigError, match=r"trun.cfg, line 1: 'workers = 1' comes before any \[section\]"):
        get_config()


def test_unparseable_lines_are_all_named(tmp_path):
    write(tmp_path / "trun.cfg", "[core]\nworkers = 1\nthis is not an option\nnor this\n")
    with pytest.raises(ConfigError) as raised:
        get_config()
    assert "line 3: 'this is not an option'" in str(raised.value)
    assert "line 4: 'nor this'" in str(raised.value)


def test_malformed_file_raises_again_instead_of_leaving_empty_config(tmp_path):
    write(tmp_path / "trun.cfg", "workers = 1\n")
    for _ in range(2):
        with pytest.raises(ConfigError):
            get_config()


def test_malformed_added_file_leaves_earlier_values_untouched(tmp_path):
    write(tmp_path / "trun.cfg", "[core]\nworkers = 1\n")
    config = get_config()
    broken = write(tmp_path / "broken.cfg", "[core]\nworkers = 9\n[core]\n")
    with pytest.raises(ConfigError, match="broken.cfg"):
        add_config_path(str(broken))
    assert config.getint("core", "workers") == 1


def test_malformed_added_file_does_not_stay_on_search_path(tmp_path):
    config = get_config()
    broken = write(tmp_path / "broken.cfg", "workers = 9\n")
    with pytest.raises(ConfigError):
        add_config_path(str(broken))
    assert config.reload() == []


def test_non_utf8_file_raises_config_error(tmp_path):
    (tmp_path / "trun.cfg").write_bytes(b"[core]\nname = caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        get_config()


def test_config_error_is_a_configparser_error():
    assert issubclass(ConfigError, configparser.Error)


# -- TOML ---------------------------------------------------------------------------


def test_toml_parser_is_selected_by_environment(toml_parser, tmp_path):
    write(tmp_path / "trun.toml", "[core]\nworkers = 4\n")
    config = get_config()
    assert isinstance(config, TrunTomlParser)
    assert config.get("core", "workers") == 4


def test_parser_named_by_the_environment_after_a_first_lookup_is_used_at_once(monkeypatch, tmp_path):
    write(tmp_path / "trun.toml", "[core]\nworkers = 4\n")
    assert isinstance(get_config(), TrunConfigParser)
    monkeypatch.setenv("TRUN_CONFIG_PARSER", "toml")
    assert isinstance(get_config(), TrunTomlParser)
    monkeypatch.delenv("TRUN_CONFIG_PARSER")
    assert isinstance(get_config(), TrunConfigParser)


def test_a_reset_configuration_is_read_again_on_the_next_lookup(tmp_path):
    write(tmp_path / "trun.cfg", "[core]\nworkers = 4\n")
    first = get_config()
    assert first.get("core", "workers") == "4"
    write(tmp_path / "trun.cfg", "[core]\nworkers = 5\n")
    reset_config()
    assert get_config() is not first
    assert get_config().get("core", "workers") == "5"


def test_toml_values_keep_their_types(toml_parser, tmp_path):
    write(tmp_path / "trun.toml", '[worker]\nkeep_alive = true\nping_interval = 0.5\nid = "w"\n')
    config = get_config()
    assert config.get("worker", "keep_alive") is True
    assert config.getfloat("worker", "ping_interval") == 0.5
    assert config.get("worker", "id") == "w"


def test_toml_typed_getters_convert_strings(toml_parser, tmp_path):
    write(tmp_path / "trun.toml", '[core]\nworkers = "4"\nno_lock = "yes"\ndelay = 2\n')
    config = get_config()
    assert config.getint("core", "workers") == 4
    assert config.getboolean("core", "no_lock") is True
    assert config.getfloat("core", "delay") == 2.0


def test_toml_getint_rejects_non_integer_naming_file(toml_parser, tmp_path):
    write(tmp_path / "trun.toml", '[core]\nworkers = "many"\n')
    with pytest.raises(ConfigValueError, match=r"trun.toml: \[core\] workers = 'many' is not an integer"):
        get_config().getint("core", "workers")


def test_toml_missing_option_raises_no_option_error_that_is_also_key_error(toml_parser, tmp_path):
    write(tmp_path / "trun.toml", "[core]\nworkers = 4\n")
    with pytest.raises(configparser.NoOptionError):
        get_config().get("core", "nothing")
    with pytest.raises(KeyError):
        get_config().get("core", "nothing")


def test_toml_missing_section_raises_no_section_error(toml_parser):
    with pytest.raises(configparser.NoSectionError):
        get_config().get("core", "workers")


def test_toml_getters_return_default_when_missing(toml_parser):
    assert get_config().getint("core", "workers", 1) == 1


def test_toml_sections_merge_key_by_key_across_files(toml_parser, tmp_path, monkeypatch):
    write(tmp_path / "trun.toml", "[core]\nworkers = 1\nlog_level = \"INFO\"\n")
    extra = write(tmp_path / "extra.toml", "[core]\nworkers = 6\n")
    monkeypatch.setenv("TRUN_CONFIG_PATH", str(extra))
    reset_config()
    config = get_config()
    assert config.get("core", "workers") == 6
    assert config.get("core", "log_level") == "INFO"


def test_toml_table_values_are_frozen_mappings(toml_parser, tmp_path):
    write(tmp_path / "trun.toml", "[MyStep]\nmapping = {a = 1, b = {c = 2}}\n")
    value = get_config().get("MyStep", "mapping")
    assert isinstance(value, Mapping) and not isinstance(value, dict)
    assert value["b"]["c"] == 2
    assert hash(value) == hash(get_config().get("MyStep", "mapping"))


def test_toml_section_is_reachable_by_indexing(toml_parser, tmp_path):
    write(tmp_path / "trun.toml", "[logging]\nversion = 1\n")
    config = get_config()
    assert config["logging"]["version"] == 1
    assert config.has_section("logging") and "logging" in config


def test_toml_dash_style_option_is_found_with_deprecation_warning(toml_parser, tmp_path):
    write(tmp_path / "trun.toml", "[worker]\nkeep-alive = true\n")
    with pytest.warns(DeprecationWarning, match="keep_alive"):
        assert get_config().getboolean("worker", "keep_alive") is True


def test_toml_getintdict(toml_parser, tmp_path):
    write(tmp_path / "trun.toml", "[resources]\ncpu = 4\ngpu = \"2\"\n")
    assert get_config().getintdict("resources") == {"cpu": 4, "gpu": 2}


def test_toml_set_items_and_sections(toml_parser):
    config = get_config()
    config.set("core", "workers", 2)
    assert config.sections() == ["core"]
    assert config.items("core") == [("workers", 2)]
    assert config.has_option("core", "workers")


def test_toml_malformed_file_names_file_and_line(toml_parser, tmp_path):
    write(tmp_path / "trun.toml", "[core]\nworkers = 1\nlog_level INFO\n")
    with pytest.raises(ConfigError, match=r"Malformed TOML config file trun.toml: .*line 3"):
        get_config()


def test_toml_key_outside_any_table_is_rejected(toml_parser, tmp_path):
    write(tmp_path / "trun.toml", "workers = 1\n")
    with pytest.raises(ConfigError, match=r"top-level key 'workers' is not inside a \[section\]"):
        get_config()


def test_toml_parser_without_library_raises_import_error_naming_extra(monkeypatch):
    monkeypatch.setattr(TrunTomlParser, "enabled", False)
    with pytest.raises(ImportError, match=r"trun\[toml\]"):
        get_config("toml")


def test_add_config_path_picks_toml_parser_by_extension(toml_parser, tmp_path):
    add_config_path(str(write(tmp_path / "extra.toml", "[core]\nworkers = 3\n")))
    assert get_config().get("core", "workers") == 3
