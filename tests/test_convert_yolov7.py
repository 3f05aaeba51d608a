"""YOLOv7 (u7 branch) yolov7-seg weights → gradpath's yolor-elan (``gradpath.models.convert_yolov7``,
``gradpath convert --from yolov7``).

The YOLOv7 side is written here from ``seg/models/segment/yolov7-seg.yaml`` of the u7 branch alone, never from
gradpath's model: a state dict in their naming (``model.<layer>.…``, anchors in grid cells, ISegment's ``ia``/``im``
implicit layers) and a functional forward pass that follows the yaml's ``from`` indices and concatenation orders,
adds ImplicitA before each output conv and, as u7's ISegment, does not apply ImplicitM. So the name map, the anchor
units and the concatenation orders are checked against an independent reading of their network. What it shares with
YOLOv5's seg head (Conv unit, Proto, anchors, Segment decode) is written once in ``_yolo_reference.py``. yolov7-seg
has no width multiple: the network is full size, run at 64 px with 3 classes.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _yolo_reference import (
    NA,
    NM,
    anchors_state,
    conv_bn_silu,
    conv_unit,
    proto_forward,
    proto_state,
    segment_decode,
    tensor_maker,
)
from PIL import Image

import gradpath
from gradpath.cli import main
from gradpath.engine.checkpoint import model_from_checkpoint
from gradpath.errors import GradpathError
from gradpath.models.convert_yolov7 import (
    convert_yolov7_seg,
    load_yolov7_seg,
    read_yolov7_checkpoint,
    yolov7_state_dict,
)

NC, NPR = 3, 256
ANCHORS_PX = ((12, 16, 19, 36, 40, 28), (36, 75, 76, 55, 72, 146), (142, 110, 192, 243, 459, 401))

# yolov7-seg.yaml (u7 branch, seg/models/segment/): (from, repeats, module, args); backbone then head
YAML = [
    (-1, 1, "Conv", (32, 3, 1)),  # 0
    (-1, 1, "Conv", (64, 3, 2)), (-1, 1, "Conv", (64, 3, 1)),
    (-1, 1, "Conv", (128, 3, 2)),  # 3
    (-1, 1, "Conv", (64, 1, 1)), (-2, 1, "Conv", (64, 1, 1)), (-1, 1, "Conv", (64, 3, 1)),
    (-1, 1, "Conv", (64, 3, 1)), (-1, 1, "Conv", (64, 3, 1)), (-1, 1, "Conv", (64, 3, 1)),
    ([-1, -3, -5, -6], 1, "Concat", (1,)), (-1, 1, "Conv", (256, 1, 1)),  # 11
    (-1, 1, "MP", ()), (-1, 1, "Conv", (128, 1, 1)), (-3, 1, "Conv", (128, 1, 1)), (-1, 1, "Conv", (128, 3, 2)),
    ([-1, -3], 1, "Concat", (1,)),  # 16
    (-1, 1, "Conv", (128, 1, 1)), (-2, 1, "Conv", (128, 1, 1)), (-1, 1, "Conv", (128, 3, 1)),
    (-1, 1, "Conv", (128, 3, 1)), (-1, 1, "Conv", (128, 3, 1)), (-1, 1, "Conv", (128, 3, 1)),
    ([-1, -3, -5, -6], 1, "Concat", (1,)), (-1, 1, "Conv", (512, 1, 1)),  # 24
    (-1, 1, "MP", ()), (-1, 1, "Conv", (256, 1, 1)), (-3, 1, "Conv", (256, 1, 1)), (-1, 1, "Conv", (256, 3, 2)),
    ([-1, -3], 1, "Concat", (1,)),  # 29
    (-1, 1, "Conv", (256, 1, 1)), (-2, 1, "Conv", (256, 1, 1)), (-1, 1, "Conv", (256, 3, 1)),
    (-1, 1, "Conv", (256, 3, 1)), (-1, 1, "Conv", (256, 3, 1)), (-1, 1, "Conv", (256, 3, 1)),
    ([-1, -3, -5, -6], 1, "Concat", (1,)), (-1, 1, "Conv", (1024, 1, 1)),  # 37
    (-1, 1, "MP", ()), (-1, 1, "Conv", (512, 1, 1)), (-3, 1, "Conv", (512, 1, 1)), (-1, 1, "Conv", (512, 3, 2)),
    ([-1, -3], 1, "Concat", (1,)),  # 42
    (-1, 1, "Conv", (256, 1, 1)), (-2, 1, "Conv", (256, 1, 1)), (-1, 1, "Conv", (256, 3, 1)),
    (-1, 1, "Conv", (256, 3, 1)), (-1, 1, "Conv", (256, 3, 1)), (-1, 1, "Conv", (256, 3, 1)),
    ([-1, -3, -5, -6], 1, "Concat", (1,)), (-1, 1, "Conv", (1024, 1, 1)),  # 50
    # head
    (-1, 1, "SPPCSPC", (512,)),  # 51
    (-1, 1, "Conv", (256, 1, 1)), (-1, 1, "Upsample", ()), (37, 1, "Conv", (256, 1, 1)),
    ([-1, -2], 1, "Concat", (1,)),
    (-1, 1, "Conv", (256, 1, 1)), (-2, 1, "Conv", (256, 1, 1)), (-1, 1, "Conv", (128, 3, 1)),
    (-1, 1, "Conv", (128, 3, 1)), (-1, 1, "Conv", (128, 3, 1)), (-1, 1, "Conv", (128, 3, 1)),
    ([-1, -2, -3, -4, -5, -6], 1, "Concat", (1,)), (-1, 1, "Conv", (256, 1, 1)),  # 63
    (-1, 1, "Conv", (128, 1, 1)), (-1, 1, "Upsample", ()), (24, 1, "Conv", (128, 1, 1)),
    ([-1, -2], 1, "Concat", (1,)),
    (-1, 1, "Conv", (128, 1, 1)), (-2, 1, "Conv", (128, 1, 1)), (-1, 1, "Conv", (64, 3, 1)),
    (-1, 1, "Conv", (64, 3, 1)), (-1, 1, "Conv", (64, 3, 1)), (-1, 1, "Conv", (64, 3, 1)),
    ([-1, -2, -3, -4, -5, -6], 1, "Concat", (1,)), (-1, 1, "Conv", (128, 1, 1)),  # 75
    (-1, 1, "MP", ()), (-1, 1, "Conv", (128, 1, 1)), (-3, 1, "Conv", (128, 1, 1)), (-1, 1, "Conv", (128, 3, 2)),
    ([-1, -3, 63], 1, "Concat", (1,)),
    (-1, 1, "Conv", (256, 1, 1)), (-2, 1, "Conv", (256, 1, 1)), (-1, 1, "Conv", (128, 3, 1)),
    (-1, 1, "Conv", (128, 3, 1)), (-1, 1, "Conv", (128, 3, 1)), (-1, 1, "Conv", (128, 3, 1)),
    ([-1, -2, -3, -4, -5, -6], 1, "Concat", (1,)), (-1, 1, "Conv", (256, 1, 1)),  # 88
    (-1, 1, "MP", ()), (-1, 1, "Conv", (256, 1, 1)), (-3, 1, "Conv", (256, 1, 1)), (-1, 1, "Conv", (256, 3, 2)),
    ([-1, -3, 51], 1, "Concat", (1,)),
    (-1, 1, "Conv", (512, 1, 1)), (-2, 1, "Conv", (512, 1, 1)), (-1, 1, "Conv", (256, 3, 1)),
    (-1, 1, "Conv", (256, 3, 1)), (-1, 1, "Conv", (256, 3, 1)), (-1, 1, "Conv", (256, 3, 1)),
    ([-1, -2, -3, -4, -5, -6], 1, "Concat", (1,)), (-1, 1, "Conv", (512, 1, 1)),  # 101
    (75, 1, "Conv", (256, 3, 1)), (88, 1, "Conv", (512, 3, 1)), (101, 1, "Conv", (1024, 3, 1)),
    ([102, 103, 104], 1, "ISegment", (NC, "anchors", NM, NPR)),  # 105
]
assert len(YAML) == 106


def _abs(i: int, f: int) -> int:
    """The yaml's from-index f of layer i as an absolute layer index."""
    return i + f if f < 0 else f


def their_state_dict(nc: int = NC, seed: int = 0) -> dict[str, torch.Tensor]:
    """A yolov7-seg state dict (their keys and shapes) with random values, from the yaml above."""
    mk = tensor_maker(seed)
    sd: dict[str, torch.Tensor] = {}
    ch: list[int] = []  # output channels per layer index, as their parse_model keeps them
    for i, (f, _, kind, args) in enumerate(YAML):
        c1 = (ch[_abs(i, f)] if ch else 3) if isinstance(f, int) else None
        p = f"model.{i}"
        if kind == "Conv":
            c2 = args[0]
            conv_unit(sd, p, c1, c2, args[1], mk)
        elif kind == "SPPCSPC":
            c2 = h = args[0]  # hidden = int(2 * c2 * 0.5)
            conv_unit(sd, f"{p}.cv1", c1, h, 1, mk)
            conv_unit(sd, f"{p}.cv2", c1, h, 1, mk)
            conv_unit(sd, f"{p}.cv3", h, h, 3, mk)
            conv_unit(sd, f"{p}.cv4", h, h, 1, mk)
            conv_unit(sd, f"{p}.cv5", 4 * h, h, 1, mk)
            conv_unit(sd, f"{p}.cv6", h, h, 3, mk)
            conv_unit(sd, f"{p}.cv7", 2 * h, c2, 1, mk)
        elif kind in ("MP", "Upsample"):
            c2 = c1
        elif kind == "Concat":
            c2 = sum(ch[_abs(i, x)] for x in f)
        else:  # ISegment
            no = 5 + nc + NM
            for lvl, src in enumerate(f):
                sd[f"{p}.m.{lvl}.weight"] = mk("w", (NA * no, ch[src], 1, 1), 0.05)
                sd[f"{p}.m.{lvl}.bias"] = mk("w", (NA * no,), 0.5)
                sd[f"{p}.ia.{lvl}.implicit"] = mk("w", (1, ch[src], 1, 1), 0.1)
                # ImplicitM of na·(nc + 5) channels, created but never applied by u7's ISegment: far from 1 here so
                # that applying it would show
                sd[f"{p}.im.{lvl}.implicit"] = 1 + mk("w", (1, NA * (nc + 5), 1, 1), 0.3)
            proto_state(sd, f"{p}.proto", ch[f[0]], NPR, mk)
            sd[f"{p}.anchors"] = anchors_state(ANCHORS_PX, mk)
            c2 = 0
        ch.append(c2)
    return sd


def their_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, nc: int = NC) -> tuple[torch.Tensor, torch.Tensor]:
    """yolov7-seg's eval forward, functionally, from their keys and the yaml: (pred, proto) of ``ISegment``."""
    def unit(p: str, t: torch.Tensor, s: int = 1) -> torch.Tensor:
        return conv_bn_silu(sd, p, t, s)

    outs: list[torch.Tensor] = []
    for i, (f, _, kind, args) in enumerate(YAML):
        p = f"model.{i}"
        inp = [outs[_abs(i, j)] for j in f] if isinstance(f, list) else (outs[_abs(i, f)] if outs else x)
        if kind == "Conv":
            y = unit(p, inp, args[2])
        elif kind == "MP":
            y = F.max_pool2d(inp, 2, 2)
        elif kind == "Upsample":
            y = F.interpolate(inp, scale_factor=2.0, mode="nearest")
        elif kind == "Concat":
            y = torch.cat(inp, 1)
        elif kind == "SPPCSPC":
            a = unit(f"{p}.cv4", unit(f"{p}.cv3", unit(f"{p}.cv1", inp)))
            pooled = [F.max_pool2d(a, k, 1, k // 2) for k in (5, 9, 13)]
            b = unit(f"{p}.cv6", unit(f"{p}.cv5", torch.cat([a] + pooled, 1)))
            y = unit(f"{p}.cv7", torch.cat([b, unit(f"{p}.cv2", inp)], 1))
        else:  # ISegment: Proto on the raw P3, ImplicitA before each output conv, no ImplicitM, Segment's decode
            raw = [F.conv2d(t + sd[f"{p}.ia.{lvl}.implicit"], sd[f"{p}.m.{lvl}.weight"], sd[f"{p}.m.{lvl}.bias"])
                   for lvl, t in enumerate(inp)]
            return segment_decode(raw, sd[f"{p}.anchors"], nc), proto_forward(sd, f"{p}.proto", inp[0])
        outs.append(y)
    raise AssertionError("no ISegment layer")


@pytest.fixture(scope="module")
def theirs() -> dict[str, torch.Tensor]:
    return their_state_dict()


@pytest.fixture(scope="module")
def converted(theirs):
    return convert_yolov7_seg(theirs).eval()


def test_classes_are_read_from_the_shapes(converted):
    assert converted.gradpath_name == "yolor-elan"
    cfg = converted.gradpath_config
    assert (cfg.num_classes, cfg.elan_stack, cfg.width, cfg.depth, cfg.nm, cfg.npr, cfg.implicit) == \
        (NC, (2, 1), 1.0, 1.0, NM, NPR, True)


def test_tensors_come_from_the_source_they_should(theirs, converted):
    ours = converted.state_dict()
    same = {  # ours ← theirs, by explicit name
        "body.stem.0.conv.weight": "model.0.conv.weight",
        "body.stem.3.bn.running_var": "model.3.bn.running_var",
        "body.elan2.cross.conv.weight": "model.4.conv.weight",  # p: 1×1 on the input, last in the concat
        "body.elan2.entry.conv.weight": "model.5.conv.weight",  # q: 1×1 from -2, feeds the 3×3 chain
        "body.elan2.blocks.0.0.conv.weight": "model.6.conv.weight",
        "body.elan2.blocks.0.1.bn.weight": "model.7.bn.weight",
        "body.elan2.blocks.1.1.conv.weight": "model.9.conv.weight",
        "body.elan2.transition.conv.weight": "model.11.conv.weight",
        "body.down3.cv_a.conv.weight": "model.13.conv.weight",  # after the max-pool
        "body.down3.cv_b1.conv.weight": "model.14.conv.weight",
        "body.down3.cv_b2.bn.num_batches_tracked": "model.15.bn.num_batches_tracked",
        "body.elan3.transition.conv.weight": "model.24.conv.weight",
        "body.down5.cv_b2.conv.weight": "model.41.conv.weight",
        "body.elan5.blocks.1.0.conv.weight": "model.47.conv.weight",
        "body.sppcspc.cv1.conv.weight": "model.51.cv1.conv.weight",
        "body.sppcspc.cv5.conv.weight": "model.51.cv5.conv.weight",
        "body.sppcspc.cv7.bn.running_mean": "model.51.cv7.bn.running_mean",
        "body.lat4.reduce.conv.weight": "model.52.conv.weight",
        "body.lat4.lateral.conv.weight": "model.54.conv.weight",
        "body.elan_t4.blocks.0.0.conv.weight": "model.58.conv.weight",  # s = 1: one conv per block
        "body.elan_t4.blocks.3.0.conv.weight": "model.61.conv.weight",
        "body.elan_t4.transition.conv.weight": "model.63.conv.weight",
        "body.lat3.lateral.conv.weight": "model.66.conv.weight",
        "body.elan_t3.entry.conv.weight": "model.69.conv.weight",
        "body.down_n4.cv_b2.conv.weight": "model.79.conv.weight",
        "body.elan_n4.cross.conv.weight": "model.81.conv.weight",
        "body.down_n5.cv_a.conv.weight": "model.90.conv.weight",
        "body.elan_n5.transition.conv.weight": "model.101.conv.weight",
        "body.head3.conv.weight": "model.102.conv.weight",
        "body.head5.bn.bias": "model.104.bn.bias",
        "head.m.0.weight": "model.105.m.0.weight",  # ISegment
        "head.m.2.bias": "model.105.m.2.bias",
        "head.ia.1.implicit": "model.105.ia.1.implicit",
        "head.proto.cv1.conv.weight": "model.105.proto.cv1.conv.weight",
        "head.proto.cv3.bn.running_var": "model.105.proto.cv3.bn.running_var",
    }
    for dst, src in same.items():
        assert torch.equal(ours[dst], theirs[src]), (dst, src)
    # ImplicitM: theirs is never applied, ours is; 1 keeps their output
    for lvl in range(3):
        assert not torch.equal(theirs[f"model.105.im.{lvl}.implicit"], torch.ones(1, NA * (NC + 5), 1, 1))
        assert torch.equal(ours[f"head.im.{lvl}.implicit"], torch.ones(1, NA * (NC + 5), 1, 1))
    # anchors: grid cells × stride = pixels; our stride buffer is the architecture's
    px = theirs["model.105.anchors"] * torch.tensor([8.0, 16.0, 32.0]).view(3, 1, 1)
    assert torch.allclose(ours["head.anchors"], px)
    assert ours["head.anchors"][0, 0, 0] > 10  # pixels, not grid cells
    assert ours["head.stride"].tolist() == [8.0, 16.0, 32.0]
    assert len(ours) == len(theirs) + 1  # every source tensor once, plus head.stride


def test_outputs_equal_their_forward(theirs, converted):
    x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        pred, proto = converted(x)
        ref_pred, ref_proto = their_forward(theirs, x)
    assert pred.shape == ref_pred.shape == (1, NA * (8 * 12 + 4 * 6 + 2 * 3), 5 + NC + NM)
    assert proto.shape == ref_proto.shape == (1, NM, 16, 24)
    assert torch.allclose(pred, ref_pred, atol=1e-4, rtol=1e-4), (pred - ref_pred).abs().max()
    assert torch.allclose(proto, ref_proto, atol=1e-5, rtol=1e-4)


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("edit, match", [
    (lambda sd: sd.pop("model.51.cv5.bn.running_var"), "missing key model.51.cv5.bn.running_var"),
    (lambda sd: sd.__setitem__("model.106.conv.weight", torch.zeros(1)), "unexpected key model.106.conv.weight"),
    (lambda sd: sd.__setitem__("model.105.anchor_grid", torch.zeros(1)), "unexpected key model.105.anchor_grid"),
    (lambda sd: sd.__setitem__("model.19.conv.weight", torch.zeros(8, 8, 1, 1)),
     r"model.19.conv.weight has shape \(8, 8, 1, 1\), body.elan3.blocks.0.0.conv.weight .* only the class count"),
    (lambda sd: sd.__setitem__("model.105.im.1.implicit", torch.ones(1, 5, 1, 1)),
     r"model.105.im.1.implicit has shape \(1, 5, 1, 1\), head.im.1.implicit"),
    (lambda sd: sd.__setitem__("model.105.anchors", torch.ones(3, 4, 2)), r"anchors has shape \(3, 4, 2\)"),
    (lambda sd: sd.__setitem__("model.0.conv.weight", torch.zeros(16, 3, 3, 3)), "no width multiple"),
    (lambda sd: sd.__setitem__("model.105.proto.cv3.conv.weight", torch.zeros(16, 256, 1, 1)),
     "16 mask coefficients, yolov7-seg.yaml has 32"),
    (lambda sd: [sd.pop(k) for k in list(sd) if ".proto." in k], "YOLOv7 detection state dict"),
    (lambda sd: [sd.pop(k) for k in list(sd) if k.startswith("model.105.")], "no layer 105"),
    (lambda sd: sd.__setitem__("model.3.conv.bias", torch.zeros(1)), "was the model fused"),
])
def test_a_corrupt_state_dict_is_a_one_line_error(theirs, edit, match):
    sd = dict(theirs)
    edit(sd)
    with pytest.raises(GradpathError, match=match) as e:
        convert_yolov7_seg(sd)
    _one_line(e)


def test_a_yolov5_state_dict_points_to_the_yolov5_import():
    with pytest.raises(GradpathError, match="--from yolov5") as e:
        convert_yolov7_seg({"model.24.proto.cv1.conv.weight": torch.zeros(1), "model.0.conv.weight": torch.zeros(1)})
    _one_line(e)


def test_checkpoint_forms(theirs, tmp_path):
    for name, obj in {"ema": {"epoch": 3, "ema": theirs, "model": None}, "model": {"model": theirs},
                      "bare": {k.removeprefix("model."): v for k, v in theirs.items()},
                      "ddp": {f"module.{k}": v for k, v in theirs.items()}}.items():
        got = yolov7_state_dict(obj)
        assert list(got) == list(theirs) and all(got[k] is theirs[k] for k in theirs), name
    # a file, as their training checkpoints are: fp16, under 'ema'
    half = {k: v.half() if v.is_floating_point() else v for k, v in theirs.items()}
    torch.save({"epoch": -1, "ema": half, "model": None}, tmp_path / "ema.pt")
    got = load_yolov7_seg(tmp_path / "ema.pt").state_dict()
    assert got["body.stem.0.conv.weight"].dtype == torch.float32
    assert torch.equal(got["body.stem.0.conv.weight"], half["model.0.conv.weight"].float())
    assert torch.equal(got["head.ia.2.implicit"], half["model.105.ia.2.implicit"].float())


class SegmentationModel:  # stands for YOLOv7's pickled model class
    pass


def test_a_pickled_object_is_refused_with_the_export_command(tmp_path):
    p = tmp_path / "yolov7-seg.pt"
    torch.save({"epoch": -1, "model": SegmentationModel(), "ema": None}, p)
    with pytest.raises(GradpathError) as e:
        read_yolov7_checkpoint(p)
    msg = _one_line(e)
    assert "pickled Python objects" in msg and "SegmentationModel" in msg and "weights_only=True" in msg
    assert "seg/ folder of a clone of YOLOv7's u7 branch" in msg
    assert "torch.save((c.get('ema') or c['model']).float().state_dict()" in msg
    assert str(tmp_path / "yolov7-seg-state_dict.pt") in msg
    with pytest.raises(GradpathError, match="YOLOv7 checkpoint .* does not exist") as e:
        read_yolov7_checkpoint(tmp_path / "missing.pt")
    _one_line(e)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(GradpathError, match="holds a list, not a YOLOv7 state dict"):
        read_yolov7_checkpoint(tmp_path / "list.pt")


def test_cli_writes_a_checkpoint_that_predict_and_create_model_load(theirs, converted, tmp_path, capsys):
    src, out = tmp_path / "yolov7-seg-sd.pt", tmp_path / "converted.pt"
    torch.save({"model": theirs}, src)
    assert main(["convert", "--from", "yolov7", str(src), "-o", str(out), "--names", "a", "b", "c",
                 "--imgsz", "64"]) == 0
    assert "yolor-elan width=1.0 depth=1.0 classes=3" in capsys.readouterr().out
    model, ck = model_from_checkpoint(out, expect_task="segment")
    assert ck["meta"]["names"] == ["a", "b", "c"] and ck["meta"]["imgsz"] == 64
    assert ck["meta"]["converted_from"] == "yolov7:yolov7-seg-sd.pt"
    model.eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = converted(x)
        for a, b in zip(model(x), ref):
            assert torch.equal(a, b)
    # the public API loads the converted file too
    same = gradpath.create_model("yolor-elan", weights=out).eval()
    assert same.gradpath_config.num_classes == 3
    with torch.no_grad():
        for a, b in zip(same(x), ref):
            assert torch.equal(a, b)
    Image.new("RGB", (80, 60), (120, 30, 200)).save(tmp_path / "im.jpg")
    assert main(["predict", "--weights", str(out), "--source", str(tmp_path / "im.jpg"), "--out",
                 str(tmp_path / "pred"), "--device", "cpu", "--no-images"]) == 0
    assert (tmp_path / "pred" / "predictions.json").is_file()
    capsys.readouterr()
    # a pickled checkpoint or a wrong class count: one line on stderr, exit 2
    torch.save({"model": SegmentationModel()}, tmp_path / "pickled.pt")
    assert main(["convert", "--from", "yolov7", str(tmp_path / "pickled.pt"), "-o", str(out)]) == 2
    assert main(["convert", "--from", "yolov7", str(src), "-o", str(out), "--names", "a"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "u7 branch" in err[0] and "--names gives 1 names but" in err[1]
