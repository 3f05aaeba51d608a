"""Registry: names, overrides, errors that name the closest valid choices."""
from dataclasses import dataclass

import pytest
from torch import nn

import gradpath
from gradpath.errors import GradpathError, UnknownModelError, UnknownOptionError
from gradpath.models import registry
from gradpath.models.registry import register_model


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made by a test land in a copy of the registry, dropped after the test, so the global zoo
    (and every later test listing it) never sees them."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    yield registry._REGISTRY


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


def test_duplicate_registration_rejected(scratch_registry):
    @dataclass(frozen=True)
    class Cfg:
        x: int = 1

    register_model("test-dup-model", Cfg())(lambda cfg: nn.Identity())
    assert "test-dup-model" in gradpath.list_models()
    with pytest.raises(ValueError, match="twice"):
        register_model("test-dup-model", Cfg())(lambda cfg: nn.Identity())


def test_scratch_registration_is_gone_afterwards():
    """Runs after the test above (file order): its model must not have leaked into the global registry."""
    assert "test-dup-model" not in gradpath.list_models()


def test_config_must_be_dataclass_instance(scratch_registry):
    with pytest.raises(TypeError):
        register_model("test-bad", {"x": 1})
    assert "test-bad" not in scratch_registry


@pytest.mark.parametrize("model,key,value,message", [
    ("yolor-v3", "spp", "maybe", "option 'spp' for model 'yolor-v3' expects bool, got 'maybe' (str)"),
    ("yolor-v3", "spp", 1, "expects bool, got 1 (int)"),
    ("yolor-elan", "width", "abc", "option 'width' for model 'yolor-elan' expects float, got 'abc' (str)"),
    ("yolor-elan", "num_classes", 3.5, "expects int, got 3.5 (float)"),
    ("yolor-elan", "num_classes", True, "expects int, got True (bool)"),
    ("yolor-elan", "elan_stack", [1, "a"], "expects list of 2 int, got [1, 'a'] (list)"),
    ("yolor-elan", "elan_stack", 2, "expects list of 2 int, got 2 (int)"),
    ("yolor-csp", "stop_gradient", 0, "expects str or None, got 0 (int)"),
    ("tiny-res", "widths", [16, 32.5], "expects list of int, got [16, 32.5] (list)"),
    ("tiny-res", "strategy", ["csp"], "expects str, got ['csp'] (list)"),
])
def test_override_types_are_checked(model, key, value, message):
    with pytest.raises(GradpathError) as err:
        gradpath.create_model(model, **{key: value})
    assert str(err.value) == message or str(err.value).endswith(message)
    assert "\n" not in str(err.value)


def test_override_values_take_the_field_form():
    """Ints are accepted for floats and stored as floats; lists for tuples, stored as tuples (the CLI's yaml gives
    lists), so the config equals the one built from Python values."""
    a = gradpath.create_model("tiny-res", widths=[8, 16, 32], depths=[1, 1, 1], mask_ratio=1)
    b = gradpath.create_model("tiny-res", widths=(8, 16, 32), depths=(1, 1, 1), mask_ratio=1.0)
    assert a.gradpath_config == b.gradpath_config
    assert a.gradpath_config.widths == (8, 16, 32) and isinstance(a.gradpath_config.mask_ratio, float)
    assert gradpath.create_model("tiny-res", stop_gradient=None).gradpath_config.stop_gradient is None


@pytest.mark.parametrize("model,key,value,message", [
    ("yolor-v3", "strategy", "cps", "strategy must be one of ('plain', 'prn', 'csp', 'elan'), got 'cps'. "
                                    "Did you mean: csp?"),
    ("yolor-csp", "fusion", "frist", "fusion must be one of ('fusion', 'first', 'last', 'none'), got 'frist'. "
                                     "Did you mean: first?"),
    ("darknet53", "strategy", "csp", "unknown option 'strategy' for model 'darknet53'."),
])
def test_unknown_strategy_or_fusion_is_a_clear_error(model, key, value, message):
    with pytest.raises(GradpathError) as err:
        gradpath.create_model(model, **{key: value})
    assert str(err.value).startswith(message)
