"""Step ids must be exactly Luigi's task ids (after the rename of the family).

The expected values were computed by hand from the documented algorithm with
``hashlib.md5`` over the canonical JSON, not with trun itself.
"""
from __future__ import annotations

import datetime

import trun
from trun.step import step_id_str


def test_step_id_of_int_and_str_parameters_matches_hand_computed_id():
    class MyStep(trun.Step):
        a = trun.IntParameter()
        b = trun.Parameter()

    # md5('{"a":"1","b":"x"}')[:10] == 839293578f
    assert MyStep(a=1, b="x").step_id == "MyStep_1_x_839293578f"


def test_step_id_without_parameters_has_empty_summary():
    class NoParams(trun.Step):
        pass

    # md5('{}')[:10] == 99914b932b
    assert NoParams().step_id == "NoParams__99914b932b"


def test_step_id_summary_takes_three_params_sorted_by_name_truncated_and_sanitized():
    class Four(trun.Step):
        gamma = trun.Parameter()
        beta = trun.IntParameter()
        alpha = trun.Parameter()
        delta = trun.Parameter()

    step = Four(gamma="2020-01-01", beta=2, alpha="hello world/this is long", delta="d")
    # md5('{"alpha":"hello world/this is long","beta":"2","delta":"d","gamma":"2020-01-01"}')[:10]
    assert step.step_id == "Four_hello_world_this_2_d_b1c45c9032"


def test_step_id_hashes_non_ascii_values_as_ascii_escaped_json():
    class Uni(trun.Step):
        uni = trun.Parameter()

    # md5('{"uni":"\\u00e9t\\u00e9"}')[:10] == 7b310a7f36
    assert Uni(uni="\u00e9t\u00e9").step_id == "Uni__t__7b310a7f36"


def test_step_id_uses_serialized_values_of_typed_parameters():
    class Dated(trun.Step):
        date = trun.DateParameter()
        n = trun.IntParameter()

    # md5('{"date":"2024-03-05","n":"3"}')[:10] == 390b79f338
    assert Dated(date=datetime.date(2024, 3, 5), n=3).step_id == "Dated_2024_03_05_3_390b79f338"


def test_step_id_str_is_the_public_algorithm():
    assert step_id_str("MyStep", {"a": "1", "b": "x"}) == "MyStep_1_x_839293578f"


def test_step_id_leaves_out_insignificant_parameters():
    class WithSecret(trun.Step):
        a = trun.IntParameter()
        b = trun.Parameter()
        token = trun.Parameter(significant=False)

    assert WithSecret(a=1, b="x", token="s3cr3t").step_id == "WithSecret_1_x_839293578f"


def test_step_id_leaves_out_hidden_and_private_parameters():
    class WithHidden(trun.Step):
        a = trun.IntParameter()
        b = trun.Parameter()
        hidden = trun.Parameter(visibility=trun.ParameterVisibility.HIDDEN)
        private = trun.Parameter(visibility=trun.ParameterVisibility.PRIVATE)

    assert WithHidden(a=1, b="x", hidden="h", private="p").step_id == "WithHidden_1_x_839293578f"


def test_step_id_starts_with_the_namespaced_family():
    class Spaced(trun.Step):
        step_namespace = "ns"
        a = trun.IntParameter()
        b = trun.Parameter()

    assert Spaced(a=1, b="x").step_id == "ns.Spaced_1_x_839293578f"
