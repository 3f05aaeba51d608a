"""Registry: names, overrides, errors that name the closest valid choices."""
from dataclasses import dataclass

import pytest
from torch import nn

import gradpath
from gradpath.errors import UnknownModelError, UnknownOptionError
from gradpath.models.registry import register_model


def test_list_models_pattern():
    names = gradpath.list_models("tiny-*")
    assert {"tiny-res", "tiny-prn", "tiny-csp", "tiny-elan"} <= set(names)
    assert names == sorted(names)
    assert gradpath.list_models("no-such-*") == []


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError, match="tiny-csp"):
        gradpath.create_model("tiny-cps")


def test_unknown_override_names_valid_fields():
    with pytest.raises(UnknownOptionError, match="num_classes"):
        gradpath.create_model("tiny-res", num_clases=3)


def test_invalid_override_value():
    with pytest.raises(gradpath.GradpathError, match="strategy"):
        gradpath.create_model("tiny-res", strategy="dense-ish")


def test_overrides_apply_and_strategy_is_a_parameter():
    m = gradpath.create_model("tiny-res", num_classes=3)
    assert m.head.fc.out_features == 3
    a = gradpath.create_model("tiny-res", strategy="csp", fusion="last")
    b = gradpath.create_model("tiny-csp", fusion="last")
    assert str(a) == str(b)
    assert a.gradpath_config == b.gradpath_config


def test_duplicate_registration_rejected():
    @dataclass(frozen=True)
    class Cfg:
        x: int = 1

    register_model("test-dup-model", Cfg())(lambda cfg: nn.Identity())
    with pytest.raises(ValueError, match="twice"):
        register_model("test-dup-model", Cfg())(lambda cfg: nn.Identity())


def test_config_must_be_dataclass_instance():
    with pytest.raises(TypeError):
        register_model("test-bad", {"x": 1})
