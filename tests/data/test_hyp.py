"""One typed hyper-parameter set: unknown keys, wrong types and out-of-range values are one-line errors naming the
key, presets carry YOLOv5 v7.0's scratch recipes, and both consumers (dataset and loss) read the same object."""
from __future__ import annotations

import dataclasses

import pytest

from gradpath.data import build_dataset
from gradpath.errors import GradpathError
from gradpath.hyp import DEFAULT_HYP, PRESETS, SegmentHyp, from_yaml, load_recipe, segment_hyp


def test_typo_is_refused_with_a_suggestion():
    with pytest.raises(GradpathError, match=r"^unknown hyp 'mosiac'\. Did you mean: mosaic\?$"):
        segment_hyp({"mosiac": 0.5})


def test_typo_is_refused_by_the_dataset_before_parsing(tmp_path):
    # regression: the dataset used to skip keys it did not know, so the typo trained silently
    with pytest.raises(GradpathError, match="Did you mean: mosaic"):
        build_dataset(tmp_path / "no-such-data.yaml", "train", imgsz=64, augment=True, hyp={"mosiac": 0.5})


@pytest.mark.parametrize("overrides, message", [
    ({"mosaic": "abc"}, "hyp 'mosaic' must be a number, got 'abc'"),
    ({"mosaic": True}, "hyp 'mosaic' must be a number, got True"),
    ({"mixup": 1.5}, "hyp 'mixup' must be a probability in [0, 1], got 1.5"),
    ({"scale": 1.0}, "hyp 'scale' must be in [0, 1), got 1"),
    ({"anchor_t": 1}, "hyp 'anchor_t' must be > 1, got 1"),
    ({"box": -0.1}, "hyp 'box' must be >= 0, got -0.1"),
    ({"hsv_v": float("nan")}, "hyp 'hsv_v' must be finite, got nan"),
    ({"lr0": 0.02}, "hyp 'lr0' is an optimizer setting, not an augmentation/loss one: pass it as --lr0"),
])
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(GradpathError) as e:
        segment_hyp(overrides)
    assert str(e.value) == message


def test_defaults_are_scratch_low_and_ints_become_floats():
    assert segment_hyp() == DEFAULT_HYP == PRESETS["scratch-low"].segment
    h = segment_hyp({"mosaic": 0, "box": 1})
    assert h.mosaic == 0.0 and isinstance(h.mosaic, float) and h.box == 1.0
    assert (DEFAULT_HYP.mosaic, DEFAULT_HYP.scale, DEFAULT_HYP.box, DEFAULT_HYP.cls, DEFAULT_HYP.obj) == \
        (1.0, 0.5, 0.05, 0.5, 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        h.mosaic = 0.5  # type: ignore[misc]


def test_scratch_high_is_the_papers_high_augmentation_recipe():
    high, low = PRESETS["scratch-high"], PRESETS["scratch-low"]
    changed = {k: v for k, v in high.segment.to_dict().items() if low.segment.to_dict()[k] != v}
    assert changed == {"mixup": 0.1, "copy_paste": 0.1, "scale": 0.9, "obj": 0.7, "cls": 0.3}
    assert {k: v for k, v in high.train.items() if low.train[k] != v} == {"lrf": 0.1}
    assert low.train == {"lr0": 0.01, "lrf": 0.01, "momentum": 0.937, "weight_decay": 0.0005,
                         "warmup_epochs": 3.0, "warmup_momentum": 0.8, "warmup_bias_lr": 0.1}
    h = segment_hyp({"mixup": 0.0}, preset="scratch-high")
    assert (h.mixup, h.copy_paste, h.scale) == (0.0, 0.1, 0.9)
    with pytest.raises(GradpathError, match="unknown hyp preset 'scratch-hi'.*Did you mean: scratch-high"):
        segment_hyp(preset="scratch-hi")


def test_segment_hyp_passes_an_instance_through():
    h = SegmentHyp(mosaic=0.25)
    assert segment_hyp(h) is h


ULTRALYTICS_HIGH = """\
lr0: 0.01  # initial learning rate
lrf: 0.1
momentum: 0.937
weight_decay: 0.0005
warmup_epochs: 3.0
warmup_momentum: 0.8
warmup_bias_lr: 0.1
box: 0.05
cls: 0.3
cls_pw: 1.0
obj: 0.7
obj_pw: 1.0
iou_t: 0.20
anchor_t: 4.0
fl_gamma: 0.0
hsv_h: 0.015
hsv_s: 0.7
hsv_v: 0.4
degrees: 0.0
translate: 0.1
scale: 0.9
shear: 0.0
perspective: 0.0
flipud: 0.0
fliplr: 0.5
mosaic: 1.0
mixup: 0.1
copy_paste: 0.1
"""


def test_from_yaml_reads_an_ultralytics_hyp_file(tmp_path):
    p = tmp_path / "hyp.scratch-high.yaml"
    p.write_text(ULTRALYTICS_HIGH)
    r = from_yaml(p)
    assert r.segment == PRESETS["scratch-high"].segment and dict(r.train) == dict(PRESETS["scratch-high"].train)
    assert load_recipe(p).segment == r.segment and load_recipe("scratch-low") is PRESETS["scratch-low"]


@pytest.mark.parametrize("text, message", [
    ("mosiac: 0.5\n", "unknown hyp 'mosiac'. Did you mean: mosaic?"),
    ("shear: 2.0\n", "'shear' = 2.0 is not implemented by gradpath (only 0)"),
    ("scale: big\n", "hyp 'scale' must be a number, got 'big'"),
    ("lr0: [1]\n", "'lr0' must be a number, got [1]"),
    ("- 1\n- 2\n", "expected a mapping of hyp: value"),
    ("a: [\n", "invalid YAML at line 2: expected the node content, but found '<stream end>'"),
])
def test_from_yaml_errors_name_the_file(tmp_path, text, message):
    p = tmp_path / "h.yaml"
    p.write_text(text)
    with pytest.raises(GradpathError) as e:
        from_yaml(p)
    assert str(e.value) == f"{p}: {message}"


def test_load_recipe_refuses_unknown_names(tmp_path):
    with pytest.raises(GradpathError, match=r"hyp 'scratch-med' is neither a preset"):
        load_recipe("scratch-med")
    with pytest.raises(GradpathError, match=r"missing\.yaml: hyp file not found"):
        load_recipe(tmp_path / "missing.yaml")
