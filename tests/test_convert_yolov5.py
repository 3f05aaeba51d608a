"""YOLOv5 v7.0 segmentation weights → gradpath (``gradpath.models.convert_yolov5``, ``gradpath convert``).

The YOLOv5 side is written here from the v7.0 ``yolov5s-seg.yaml`` layout alone, never from gradpath's model: a
state dict in their naming (``model.<layer>.…``, anchors in grid cells) and a functional forward pass that follows
the yaml's ``from`` indices and concatenation order. So the name map, the anchor units and the swapped neck
concatenation are checked against an independent reading of their network. What YOLOv7's seg head shares with it
(Conv unit, Proto, anchors, Segment decode) is written once in ``_yolo_reference.py``. (The check against the real
``yolov5`` package is ``benchmarks/check_yolov5_import.py``.)
"""
from __future__ import annotations

import math

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

from gradpath.cli import main
from gradpath.engine.checkpoint import model_from_checkpoint
from gradpath.errors import GradpathError
from gradpath.models.convert_yolov5 import (
    convert_yolov5_seg,
    load_yolov5_seg,
    read_yolov5_checkpoint,
    yolov5_seg_config,
)

W, D, NC = 0.25, 0.33, 3  # yolov5n-seg's multiples, 3 classes
ANCHORS_PX = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))

# yolov5s-seg.yaml (v7.0): (from, repeats, module, args)
YAML = [
    (-1, 1, "Conv", (64, 6, 2, 2)), (-1, 1, "Conv", (128, 3, 2)), (-1, 3, "C3", (128,)),
    (-1, 1, "Conv", (256, 3, 2)), (-1, 6, "C3", (256,)), (-1, 1, "Conv", (512, 3, 2)), (-1, 9, "C3", (512,)),
    (-1, 1, "Conv", (1024, 3, 2)), (-1, 3, "C3", (1024,)), (-1, 1, "SPPF", (1024, 5)),
    (-1, 1, "Conv", (512, 1, 1)), (-1, 1, "Upsample", ()), ([-1, 6], 1, "Concat", ()), (-1, 3, "C3", (512, False)),
    (-1, 1, "Conv", (256, 1, 1)), (-1, 1, "Upsample", ()), ([-1, 4], 1, "Concat", ()), (-1, 3, "C3", (256, False)),
    (-1, 1, "Conv", (256, 3, 2)), ([-1, 14], 1, "Concat", ()), (-1, 3, "C3", (512, False)),
    (-1, 1, "Conv", (512, 3, 2)), ([-1, 10], 1, "Concat", ()), (-1, 3, "C3", (1024, False)),
    ([17, 20, 23], 1, "Segment", (NC, 32, 256)),
]


def _div8(x: float) -> int:
    return math.ceil(x / 8) * 8


def their_state_dict(width: float = W, depth: float = D, nc: int = NC, seed: int = 0,
                     meta: bool = False) -> dict[str, torch.Tensor]:
    """A YOLOv5-seg v7.0 state dict (their keys and shapes) with random values, from the yaml above; ``meta``:
    shapes only (tensors on the meta device)."""
    mk = tensor_maker(seed, meta)
    sd: dict[str, torch.Tensor] = {}
    ch: list[int] = []  # output channels per layer index, as their parse_model keeps them
    for i, (f, n, kind, args) in enumerate(YAML):
        n = max(round(n * depth), 1) if n > 1 else n
        c1 = (ch[f] if ch else 3) if isinstance(f, int) else None
        p = f"model.{i}"
        if kind == "Conv":
            c2 = _div8(args[0] * width)
            conv_unit(sd, p, c1, c2, args[1], mk)
        elif kind == "C3":
            c2 = _div8(args[0] * width)
            h = c2 // 2
            conv_unit(sd, f"{p}.cv1", c1, h, 1, mk)
            conv_unit(sd, f"{p}.cv2", c1, h, 1, mk)
            conv_unit(sd, f"{p}.cv3", 2 * h, c2, 1, mk)
            for j in range(n):
                conv_unit(sd, f"{p}.m.{j}.cv1", h, h, 1, mk)
                conv_unit(sd, f"{p}.m.{j}.cv2", h, h, 3, mk)
        elif kind == "SPPF":
            c2 = _div8(args[0] * width)
            conv_unit(sd, f"{p}.cv1", c1, c1 // 2, 1, mk)
            conv_unit(sd, f"{p}.cv2", 4 * (c1 // 2), c2, 1, mk)
        elif kind == "Upsample":
            c2 = c1
        elif kind == "Concat":
            c2 = sum(ch[x] for x in f)
        else:  # Segment
            no = 5 + nc + NM
            npr = _div8(256 * width)
            for lvl, src in enumerate(f):
                sd[f"{p}.m.{lvl}.weight"] = mk("w", (NA * no, ch[src], 1, 1), 0.05)
                sd[f"{p}.m.{lvl}.bias"] = mk("w", (NA * no,), 0.5)
            proto_state(sd, f"{p}.proto", ch[f[0]], npr, mk)
            sd[f"{p}.anchors"] = anchors_state(ANCHORS_PX, mk, meta)
            c2 = 0
        ch.append(c2)
    return sd


def their_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, nc: int = NC) -> tuple[torch.Tensor, torch.Tensor]:
    """YOLOv5 v7.0's eval forward, functionally, from their keys and the yaml: (pred, proto) of ``Segment``."""
    def unit(p: str, t: torch.Tensor, s: int = 1, pad: int | None = None) -> torch.Tensor:
        return conv_bn_silu(sd, p, t, s, pad)

    outs: list[torch.Tensor] = []
    for i, (f, _, kind, args) in enumerate(YAML):
        p = f"model.{i}"
        prev = outs[-1] if outs else x
        inp = [prev if j == -1 else outs[j] for j in f] if isinstance(f, list) else (prev if f == -1 else outs[f])
        if kind == "Conv":
            y = unit(p, inp, args[2] if len(args) > 2 else 1, args[3] if len(args) > 3 else None)
        elif kind == "C3":
            shortcut = len(args) < 2 or args[1]
            a = unit(f"{p}.cv1", inp)
            for j in range(sum(1 for k in sd if k.startswith(f"{p}.m.") and k.endswith(".cv1.conv.weight"))):
                b = unit(f"{p}.m.{j}.cv2", unit(f"{p}.m.{j}.cv1", a))
                a = a + b if shortcut else b
            y = unit(f"{p}.cv3", torch.cat([a, unit(f"{p}.cv2", inp)], 1))
        elif kind == "SPPF":
            a = unit(f"{p}.cv1", inp)
            p1 = F.max_pool2d(a, 5, 1, 2)
            p2 = F.max_pool2d(p1, 5, 1, 2)
            y = unit(f"{p}.cv2", torch.cat([a, p1, p2, F.max_pool2d(p2, 5, 1, 2)], 1))
        elif kind == "Upsample":
            y = F.interpolate(inp, scale_factor=2.0, mode="nearest")
        elif kind == "Concat":
            y = torch.cat(inp, 1)
        else:  # Segment: Proto on the raw P3, the output convs, their decode
            raw = [F.conv2d(t, sd[f"{p}.m.{lvl}.weight"], sd[f"{p}.m.{lvl}.bias"]) for lvl, t in enumerate(inp)]
            return segment_decode(raw, sd[f"{p}.anchors"], nc), proto_forward(sd, f"{p}.proto", inp[0])
        outs.append(y)
    raise AssertionError("no Segment layer")


@pytest.fixture(scope="module")
def theirs() -> dict[str, torch.Tensor]:
    return their_state_dict()


@pytest.fixture(scope="module")
def converted(theirs):
    return convert_yolov5_seg(theirs).eval()


def test_scale_classes_and_config_are_read_from_the_shapes(converted):
    assert converted.gradpath_name == "yolov5l-seg"
    cfg = converted.gradpath_config
    assert (cfg.width, cfg.depth, cfg.num_classes, cfg.nm, cfg.npr, cfg.in_chans) == (0.25, 0.33, 3, 32, 256, 3)


def test_tensors_come_from_the_source_they_should(theirs, converted):
    ours = converted.state_dict()
    same = {  # ours ← theirs, by explicit name
        "body.stem.conv.weight": "model.0.conv.weight",
        "body.stem.bn.running_var": "model.0.bn.running_var",
        "body.stage2.0.bn.num_batches_tracked": "model.1.bn.num_batches_tracked",
        "body.stage3.1.m.1.branch.0.conv.weight": "model.4.m.1.cv1.conv.weight",  # C3 bottleneck
        "body.stage3.1.m.1.branch.1.bn.weight": "model.4.m.1.cv2.bn.weight",
        "body.stage4.1.cv3.conv.weight": "model.6.cv3.conv.weight",
        "body.stage5.2.cv1.conv.weight": "model.9.cv1.conv.weight",  # SPPF
        "body.stage5.2.cv2.bn.running_mean": "model.9.cv2.bn.running_mean",
        "body.lat4.reduce.conv.weight": "model.10.conv.weight",  # neck
        "body.c3_t4.cv3.conv.weight": "model.13.cv3.conv.weight",
        "body.c3_p3.m.0.branch.1.conv.weight": "model.17.m.0.cv2.conv.weight",
        "body.down4.conv.weight": "model.18.conv.weight",
        "body.c3_p4.cv1.conv.weight": "model.20.cv1.conv.weight",  # bottom-up concat: same order
        "body.down5.bn.bias": "model.21.bn.bias",
        "body.c3_p5.cv2.conv.weight": "model.23.cv2.conv.weight",
        "head.m.0.weight": "model.24.m.0.weight",  # Segment
        "head.m.2.bias": "model.24.m.2.bias",
        "head.proto.cv1.conv.weight": "model.24.proto.cv1.conv.weight",
        "head.proto.cv3.bn.running_var": "model.24.proto.cv3.bn.running_var",
    }
    for dst, src in same.items():
        assert torch.equal(ours[dst], theirs[src]), (dst, src)
    # top-down concat: theirs [upsampled (layer 10/14 output), backbone], ours [backbone, upsampled]
    for dst, src, up in (("body.c3_t4.cv1", "model.13.cv1", 10), ("body.c3_t4.cv2", "model.13.cv2", 10),
                         ("body.c3_p3.cv1", "model.17.cv1", 14), ("body.c3_p3.cv2", "model.17.cv2", 14)):
        c = theirs[f"model.{up}.conv.weight"].shape[0]
        w = theirs[f"{src}.conv.weight"]
        assert torch.equal(ours[f"{dst}.conv.weight"], torch.cat([w[:, c:], w[:, :c]], 1)), dst
        assert torch.equal(ours[f"{dst}.bn.weight"], theirs[f"{src}.bn.weight"]), dst
    # anchors: grid cells × stride = pixels; our stride buffer is the architecture's
    px = theirs["model.24.anchors"] * torch.tensor([8.0, 16.0, 32.0]).view(3, 1, 1)
    assert torch.allclose(ours["head.anchors"], px)
    assert ours["head.anchors"][0, 0, 0] > 9  # pixels, not grid cells
    assert ours["head.stride"].tolist() == [8.0, 16.0, 32.0]
    assert len(ours) == len(theirs) + 1  # every source tensor once, plus head.stride


def test_outputs_equal_their_forward(theirs, converted):
    x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        pred, proto = converted(x)
        ref_pred, ref_proto = their_forward(theirs, x)
    assert pred.shape == ref_pred.shape == (1, NA * (8 * 12 + 4 * 6 + 2 * 3), 5 + NC + NM)
    assert torch.allclose(pred, ref_pred, atol=1e-4, rtol=1e-4), (pred - ref_pred).abs().max()
    assert torch.allclose(proto, ref_proto, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("scale, name, width, depth", [
    ((0.25, 0.33), "yolov5l-seg", 0.25, 0.33), ((0.5, 0.33), "yolov5l-seg", 0.5, 0.33),
    ((0.75, 0.67), "yolov5l-seg", 0.75, 0.67), ((1.0, 1.0), "yolov5l-seg", 1.0, 1.0),
    ((1.25, 1.33), "yolov5x-seg", 1.25, 1.33),
])
def test_released_scales_are_recognised(scale, name, width, depth):
    """n/s/m/l/x from shapes alone (meta tensors: no memory); x is the registered yolov5x-seg."""
    got_name, cfg = yolov5_seg_config(their_state_dict(*scale, nc=80, meta=True))
    assert (got_name, cfg["width"], cfg["depth"], cfg["num_classes"], cfg["npr"]) == (name, width, depth, 80, 256)


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("edit, match", [
    (lambda sd: sd.pop("model.9.cv2.bn.running_var"), "missing key model.9.cv2.bn.running_var"),
    (lambda sd: sd.__setitem__("model.25.conv.weight", torch.zeros(1)), "unexpected key model.25.conv.weight"),
    (lambda sd: sd.__setitem__("model.4.m.0.cv1.conv.weight", torch.zeros(8, 8, 1, 1)),
     r"model.4.m.0.cv1.conv.weight has shape \(8, 8, 1, 1\), body.stage3.1.m.0.branch.0.conv.weight"),
    (lambda sd: sd.__setitem__("model.24.m.1.bias", sd["model.24.m.1.bias"][:-1]), "model.24.m.1.bias has shape"),
    (lambda sd: sd.__setitem__("model.24.anchors", torch.ones(3, 4, 2)), r"anchors has shape \(3, 4, 2\)"),
    (lambda sd: sd.__setitem__("model.6.m.7.cv1.conv.weight", torch.zeros(1)), "fit no depth multiple"),
    (lambda sd: [sd.pop(k) for k in list(sd) if ".proto." in k], "YOLOv5 detection state dict"),
    (lambda sd: sd.__setitem__("model.3.conv.bias", torch.zeros(1)), "was the model fused"),
])
def test_a_corrupt_state_dict_is_a_one_line_error(theirs, edit, match):
    sd = dict(theirs)
    edit(sd)
    with pytest.raises(GradpathError, match=match) as e:
        convert_yolov5_seg(sd)
    _one_line(e)


def test_checkpoint_forms(theirs, tmp_path):
    ref = convert_yolov5_seg(theirs).state_dict()
    for name, obj in {"ema": {"epoch": 3, "ema": theirs, "model": None}, "model": {"model": theirs},
                      "bare": {k.removeprefix("model."): v for k, v in theirs.items()},
                      "ddp": {f"module.{k}": v for k, v in theirs.items()}}.items():
        torch.save(obj, tmp_path / f"{name}.pt")
        got = load_yolov5_seg(tmp_path / f"{name}.pt").state_dict()
        assert all(torch.equal(got[k], ref[k]) for k in ref), name
    half = {k: v.half() if v.is_floating_point() else v for k, v in theirs.items()}  # released files are fp16
    got = convert_yolov5_seg(half).state_dict()
    assert got["body.stem.conv.weight"].dtype == torch.float32
    assert torch.equal(got["body.stem.conv.weight"], half["model.0.conv.weight"].float())


class SegmentationModel:  # stands for YOLOv5's pickled model class
    pass


def test_a_pickled_object_is_refused_with_the_export_command(tmp_path):
    p = tmp_path / "yolov5s-seg.pt"
    torch.save({"epoch": -1, "model": SegmentationModel(), "ema": None}, p)
    with pytest.raises(GradpathError) as e:
        read_yolov5_checkpoint(p)
    msg = _one_line(e)
    assert "pickled Python objects" in msg and "SegmentationModel" in msg and "weights_only=True" in msg
    assert "torch.save((c.get('ema') or c['model']).float().state_dict()" in msg
    assert str(tmp_path / "yolov5s-seg-state_dict.pt") in msg
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(GradpathError, match="cannot be read") as e:
        read_yolov5_checkpoint(tmp_path / "junk.pt")
    _one_line(e)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(GradpathError, match="holds a list, not a YOLOv5 state dict"):
        read_yolov5_checkpoint(tmp_path / "list.pt")


def test_cli_writes_a_checkpoint_that_val_and_predict_load(theirs, converted, tmp_path, capsys):
    src, out = tmp_path / "yolov5n-seg-sd.pt", tmp_path / "converted.pt"
    torch.save({"model": theirs}, src)
    assert main(["convert", "--from", "yolov5", str(src), "-o", str(out), "--names", "a", "b", "c",
                 "--imgsz", "64"]) == 0
    assert "yolov5l-seg width=0.25 depth=0.33 classes=3" in capsys.readouterr().out
    model, ck = model_from_checkpoint(out, expect_task="segment")
    assert ck["meta"]["names"] == ["a", "b", "c"] and ck["meta"]["imgsz"] == 64
    model.eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for a, b in zip(model(x), converted(x)):
            assert torch.equal(a, b)
    # the public API loads the converted file too, at the stored scale
    import gradpath
    same = gradpath.create_model("yolov5l-seg", weights=out).eval()
    assert same.gradpath_config.width == 0.25 and same.gradpath_config.depth == 0.33
    with torch.no_grad():
        for a, b in zip(same(x), converted(x)):
            assert torch.equal(a, b)
    Image.new("RGB", (80, 60), (120, 30, 200)).save(tmp_path / "im.jpg")
    assert main(["predict", "--weights", str(out), "--source", str(tmp_path / "im.jpg"), "--out",
                 str(tmp_path / "pred"), "--device", "cpu", "--no-images"]) == 0
    assert (tmp_path / "pred" / "predictions.json").is_file()
    capsys.readouterr()
    # a pickled checkpoint or a wrong class count: one line on stderr, exit 2
    torch.save({"model": SegmentationModel()}, tmp_path / "pickled.pt")
    assert main(["convert", "--from", "yolov5", str(tmp_path / "pickled.pt"), "-o", str(out)]) == 2
    assert main(["convert", "--from", "yolov5", str(src), "-o", str(out), "--names", "a"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "weights_only=True" in err[0] and "--names gives 1 names but" in err[1]
