"""trun.testing: with_config, temporary_config and FakeClock, the helpers users test pipelines with."""
from __future__ import annotations

import asyncio
import os

import pytest

import trun
from trun.configuration import ConfigError, TrunTomlParser, add_config_path, get_config, reset_config
from trun.testing import FakeClock, temporary_config, with_config


def write_cfg(tmp_path, text: str) -> None:
    (tmp_path / "trun.cfg").write_text(text, encoding="utf-8")


# -- with_config ----------------------------------------------------------------


def test_with_config_as_context_manager_overlays_values_and_restores_them(tmp_path):
    write_cfg(tmp_path, "[core]\nworkers = 1\n")
    with with_config({"core": {"workers": "4"}}) as config:
        assert config.getint("core", "workers") == 4
        assert get_config().getint("core", "workers") == 4
    assert get_config().getint("core", "workers") == 1


def test_with_config_as_decorator_applies_only_during_the_call():
    @with_config({"email": {"prefix": "[test]"}})
    def read_prefix():
        return get_config().get("email", "prefix")

    assert read_prefix() == "[test]"
    assert not get_config().has_option("email", "prefix")


def test_with_config_decorator_keeps_function_name_and_return_value():
    @with_config({"core": {"workers": "2"}})
    def my_test_function():
        return 42

    assert my_test_function.__name__ == "my_test_function"
    assert my_test_function() == 42


def test_with_config_decorates_coroutine_functions():
    @with_config({"core": {"workers": "3"}})
    async def read_workers():
        return get_config().getint("core", "workers")

    assert asyncio.run(read_workers()) == 3
    assert not get_config().has_option("core", "workers")


def test_with_config_merges_into_existing_section_by_default(tmp_path):
    write_cfg(tmp_path, "[core]\nworkers = 1\nlog_level = INFO\n")
    with with_config({"core": {"workers": "2"}}) as config:
        assert config.get("core", "log_level") == "INFO"
        assert config.get("core", "workers") == "2"


def test_with_config_replace_sections_drops_other_keys_of_named_sections(tmp_path):
    write_cfg(tmp_path, "[core]\nworkers = 1\nlog_level = INFO\n\n[worker]\nid = w\n")
    with with_config({"core": {"workers": "2"}}, replace_sections=True) as config:
        assert not config.has_option("core", "log_level")
        assert config.get("worker", "id") == "w"
    assert get_config().get("core", "log_level") == "INFO"


def test_with_config_writes_python_values_as_a_cfg_file_would():
    with with_config({"MyStep": {"flag": True, "count": 3, "names": ["a", "b"], "rate": 0.5}}) as config:
        assert config.getboolean("MyStep", "flag") is True
        assert config.getint("MyStep", "count") == 3
        assert config.get("MyStep", "names") == '["a", "b"]'
        assert config.getfloat("MyStep", "rate") == 0.5


def test_with_config_rejects_none_value_and_leaves_config_untouched():
    with pytest.raises(TypeError, match=r"\[core\] workers is None"):
        with with_config({"core": {"workers": None, "log_level": "INFO"}}):
            pass
    assert not get_config().has_section("core")


def test_with_config_rejects_non_mapping_with_example():
    with pytest.raises(TypeError, match=r"with_config\(\{'core'"):
        with_config([("core", {"workers": "2"})])


def test_with_config_rejects_section_that_is_not_a_mapping():
    with pytest.raises(TypeError, match=r"section \[core\] must map option names"):
        with_config({"core": "workers=2"})


def test_with_config_refuses_to_decorate_a_class():
    with pytest.raises(TypeError, match="setUp"):
        @with_config({"core": {}})
        class Suite:
            pass


def test_with_config_restores_values_set_and_files_added_inside_the_block(tmp_path):
    extra = tmp_path / "extra.cfg"
    extra.write_text("[email]\nprefix = added\n", encoding="utf-8")
    with with_config({"core": {"workers": "2"}}):
        get_config().set("core", "log_level", "ERROR")
        add_config_path(str(extra))
    config = get_config()
    assert not config.has_section("core")
    assert not config.has_section("email")
    config.reload()
    assert not config.has_section("email")


def test_with_config_restores_the_same_instance_after_reset_inside_block():
    before = get_config()
    with with_config({"core": {"workers": "2"}}):
        reset_config()
        assert get_config() is not before
    assert get_config() is before


def test_with_config_nests_and_unwinds_in_order():
    overlay = with_config({"core": {"workers": "2"}})
    with overlay:
        with with_config({"core": {"workers": "3"}}):
            with overlay:
                assert get_config().get("core", "workers") == "2"
            assert get_config().get("core", "workers") == "3"
        assert get_config().get("core", "workers") == "2"
    assert not get_config().has_option("core", "workers")


def test_with_config_keeps_raw_percent_values_from_files(tmp_path):
    write_cfg(tmp_path, "[core]\nratio = 100%\n")
    with with_config({"core": {"workers": "2"}}):
        pass
    assert get_config().get("core", "ratio", raw=True) == "100%"


def test_with_config_overlays_toml_values_with_their_types(monkeypatch):
    monkeypatch.setenv("TRUN_CONFIG_PARSER", "toml")
    with with_config({"core": {"workers": 4}}) as config:
        assert isinstance(config, TrunTomlParser)
        assert config.get("core", "workers") == 4
    assert not get_config().has_section("core")


def test_with_config_reaches_trun_config_classes():
    step_module = pytest.importorskip("trun.step")

    class with_config_probe(step_module.Config):  # config sections are lower case
        level = trun.IntParameter(default=1)

    assert with_config_probe().level == 1
    with with_config({"with_config_probe": {"level": "5"}}):
        assert with_config_probe().level == 5
    assert with_config_probe().level == 1


# -- temporary_config -----------------------------------------------------------


def test_temporary_config_reads_real_file_text_then_forgets_it(monkeypatch):
    monkeypatch.setenv("TRUN_TEST_ROOT", "/srv")
    with temporary_config("[paths]\nout = ${TRUN_TEST_ROOT}/out\n") as path:
        assert path.name == "trun.cfg" and path.exists()
        assert get_config().get("paths", "out") == "/srv/out"
    assert not path.exists()
    assert not get_config().has_section("paths")


def test_temporary_config_toml_makes_toml_the_active_parser_for_the_block():
    with temporary_config("[core]\nworkers = 5\n", parser="toml"):
        assert get_config().get("core", "workers") == 5
    assert "TRUN_CONFIG_PARSER" not in os.environ
    assert not isinstance(get_config(), TrunTomlParser)


def test_temporary_config_with_malformed_text_raises_and_restores():
    with pytest.raises(ConfigError, match="line 1"):
        with temporary_config("workers = 1\n"):
            pass
    assert get_config().sections() == []


def test_temporary_config_rejects_unknown_parser():
    with pytest.raises(ValueError, match="unknown parser 'yaml'"):
        with temporary_config("", parser="yaml"):
            pass


# -- FakeClock ------------------------------------------------------------------


def test_fake_clock_stands_still_until_advanced():
    clock = FakeClock(start=100.0)
    assert clock() == clock() == 100.0
    assert clock.advance(2.5) == 102.5
    assert clock() == 102.5


def test_fake_clock_refuses_to_go_backwards():
    with pytest.raises(ValueError, match="only moves forward"):
        FakeClock().advance(-1)
