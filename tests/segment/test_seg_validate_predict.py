"""validate() end to end (letterbox coordinates back to the original image, RLE masks, COCOeval), predict() and
the val/predict/export CLI."""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from torch import nn

from gradpath.cli import main
from gradpath.engine.checkpoint import make_checkpoint, save_checkpoint
from gradpath.errors import DataError, GradpathError
from gradpath.models import create_model
from gradpath.tasks.segment import validate
from gradpath.data import build_dataset, load_data_config
from gradpath.data.images import letterbox, read_image
from gradpath.tasks.segment.predict import predict

# Two originals letterboxed into 64×64 (gain 0.64): 100 wide × 50 high (16 rows of padding top and bottom) and
# 50 wide × 100 high (16 columns left and right). Boxes as COCO xywh in original pixels, and as the canvas
# cx, cy, w, h a perfect detector predicts: x_canvas = x * 0.64 + pad.
ORIG = {11: (50, 100), 12: (100, 50)}
RATIO_PAD = {11: ((0.64, 0.64), (0.0, 16.0)), 12: ((0.64, 0.64), (16.0, 0.0))}
GT = {11: (3, [10, 10, 40, 30]), 12: (7, [5, 20, 30, 60])}
CANVAS = {11: [19.2, 32.0, 25.6, 19.2], 12: [28.8, 32.0, 19.2, 38.4]}


class _Head:
    nm = 1


class PerfectModel(nn.Module):
    """Returns the exact ground truth (plus a weak false positive) in the detector's eval format; nc = 2, nm = 1."""

    num_classes = 2

    def __init__(self) -> None:
        super().__init__()
        self.head = _Head()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        assert not self.training
        pred = torch.zeros(2, 2, 5 + 2 + 1)
        pred[0, 0] = torch.tensor([*CANVAS[11], 0.95, 0.95, 0.01, 10.0])
        pred[0, 1] = torch.tensor([50.0, 30.0, 8.0, 8.0, 0.3, 0.01, 0.3, 10.0])  # class 1 where there is none
        pred[1, 0] = torch.tensor([*CANVAS[12], 0.95, 0.01, 0.95, 10.0])
        return pred, torch.ones(2, 1, 16, 16)


class FakeDataset:
    class_to_category = [3, 7]

    def coco_gt(self):
        anns = []
        for i, (img, (cat, (x, y, w, h))) in enumerate(GT.items()):
            anns.append({"id": i + 1, "image_id": img, "category_id": cat, "bbox": [x, y, w, h], "area": w * h,
                         "iscrowd": 0, "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]})
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO()
            coco.dataset = {"images": [{"id": i, "height": h, "width": w} for i, (h, w) in ORIG.items()],
                            "categories": [{"id": 3, "name": "a"}, {"id": 7, "name": "b"}], "annotations": anns}
            coco.createIndex()
        return coco


def _batch():
    return {"img": torch.zeros(2, 3, 64, 64, dtype=torch.uint8), "image_ids": [11, 12],
            "orig_shapes": [ORIG[11], ORIG[12]], "ratio_pads": [RATIO_PAD[11], RATIO_PAD[12]],
            "targets": torch.zeros(0, 6), "masks": torch.zeros(0, 16, 16, dtype=torch.uint8)}


def test_validate_maps_back_to_original_coordinates(monkeypatch):
    model = PerfectModel().train()
    captured = {}
    v = importlib.import_module("gradpath.tasks.segment.validate")  # the package's `validate` is the function

    real = v.evaluate_coco

    def spy(coco_gt, preds, **kw):
        captured["preds"] = preds
        return real(coco_gt, preds, **kw)

    monkeypatch.setattr(v, "evaluate_coco", spy)
    m = validate(model, [_batch()], FakeDataset(), "cpu", progress=False)
    assert model.training  # mode restored
    best = {p["image_id"]: p for p in sorted(captured["preds"], key=lambda p: p["score"])}
    for img, (cat, box) in GT.items():
        assert best[img]["category_id"] == cat
        assert best[img]["bbox"] == pytest.approx(box, abs=1e-3)
        rle = dict(best[img]["segmentation"], counts=best[img]["segmentation"]["counts"].encode())
        mask = mask_utils.decode(rle)
        x, y, w, h = box
        assert mask.shape == ORIG[img] and mask.sum() == w * h and mask[y:y + h, x:x + w].all()
    assert m["box"] == {"map": pytest.approx(1.0), "map50": pytest.approx(1.0), "map75": pytest.approx(1.0)}
    assert m["mask"]["map50"] == pytest.approx(1.0) and m["mask"]["map"] > 0.9
    assert [c["category_id"] for c in m["per_class"]] == [3, 7] and m["images"] == 2
    assert set(m["speed_ms"]) == {"inference", "nms"}
    assert "predictions" not in m
    kept = validate(PerfectModel(), [_batch()], FakeDataset(), "cpu", progress=False, keep_predictions=True)
    assert kept["predictions"] == captured["preds"]  # exactly what was scored (`val --save-json` writes it)


def test_letterbox_matches_contract():
    img = torch.randint(0, 255, (50, 100, 3), dtype=torch.uint8).numpy()
    canvas, ratio_pad = letterbox(img, 64)
    assert canvas.shape == (64, 64, 3) and ratio_pad == RATIO_PAD[11]
    assert (canvas[:16] == 114).all() and (canvas[48:] == 114).all() and not (canvas[16:48] == 114).all()


def test_letterbox_reports_the_offset_it_used():
    # 64 wide x 37 high into 64: new 64x37, 27 rows of padding split 13 top / 14 bottom; the reported pad is the
    # integer 13 where the image really starts (not a float 13.5 with the image placed at 13)
    img = torch.randint(0, 100, (37, 64, 3), dtype=torch.uint8).numpy()
    canvas, ((gx, gy), (pw, ph)) = letterbox(img, 64)
    assert (gx, gy, pw, ph) == (1.0, 1.0, 0.0, 13.0)
    assert (canvas[13:50] == img).all() and (canvas[:13] == 114).all() and (canvas[50:] == 114).all()


class _CaptureModel(nn.Module):
    """Records its input; predicts nothing (eval-format output with no boxes above any threshold)."""

    num_classes = 2

    def __init__(self) -> None:
        super().__init__()
        self.head = _Head()
        self.w = nn.Parameter(torch.zeros(()))
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.clone())
        pred = torch.zeros(x.shape[0], 1, 5 + 2 + 1)
        return pred, torch.zeros(x.shape[0], 1, x.shape[2] // 4, x.shape[3] // 4)


def test_predict_and_val_dataset_give_identical_input(tmp_path):
    """The same image file gives the same canvas (bit for bit) and ratio_pad in predict and in the val dataset,
    including an odd size whose padding does not split evenly and an EXIF-rotated JPEG."""
    root = tmp_path / "ds"
    (root / "images" / "val").mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    odd = torch.randint(0, 255, (37, 61, 3), dtype=torch.uint8, generator=g).numpy()
    Image.fromarray(odd).save(root / "images" / "val" / "odd.png")
    rot = Image.fromarray(torch.randint(0, 255, (30, 50, 3), dtype=torch.uint8, generator=g).numpy())
    exif = rot.getexif()
    exif[0x0112] = 6  # stored landscape, displayed portrait (rotate 90 degrees clockwise)
    rot.save(root / "images" / "val" / "rot.jpg", exif=exif.tobytes())
    (root / "data.yaml").write_text("path: .\ntrain: images/val\nval: images/val\nnames: [a, b]\n")
    ds = build_dataset(root / "data.yaml", split="val", imgsz=64)
    items = {ds.records[i].file.name: ds[i] for i in range(len(ds))}
    model = _CaptureModel()
    recs = predict(model, root / "images" / "val", tmp_path / "out", imgsz=64, save_images=False, progress=False)
    assert [r["file"].split("/")[-1] for r in recs] == ["odd.png", "rot.jpg"]
    assert [(r["width"], r["height"]) for r in recs] == [(61, 37), (30, 50)]  # rot.jpg read upright
    for name, x in zip(["odd.png", "rot.jpg"], model.seen):
        assert torch.equal((x[0] * 255).round().to(torch.uint8), items[name]["img"]), name
        assert letterbox(read_image(root / "images" / "val" / name), 64)[1] == items[name]["ratio_pad"]
    # 61x37 -> 64x39 (gain 64/61), 25 rows of padding: 12 on top, and 12 is what is reported
    assert items["odd.png"]["ratio_pad"] == ((64 / 61, 64 / 61), (0.0, 12.0))
    # rot.jpg is 50x30 stored, 30x50 upright -> 38x64 (gain 1.28), 26 columns of padding: 13 left
    assert items["rot.jpg"]["ratio_pad"] == ((1.28, 1.28), (13.0, 0.0))


def _images(folder):
    folder.mkdir()
    a = torch.zeros(50, 100, 3, dtype=torch.uint8)
    a[10:40, 10:50] = 255
    Image.fromarray(a.numpy()).save(folder / "wide.png")
    Image.fromarray(torch.full((70, 40, 3), 90, dtype=torch.uint8).numpy()).save(folder / "tall.jpg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_predict_writes_images_and_json(tmp_path, tiny_model):
    src = _images(tmp_path / "src")
    out = tmp_path / "out"
    recs = predict(tiny_model, src, out, imgsz=64, conf_thres=0.0, max_det=5, names=["x", "y", "z"], progress=False)
    data = json.loads((out / "predictions.json").read_text())
    assert data == recs and [r["file"].split("/")[-1] for r in data] == ["tall.jpg", "wide.png"]
    for r, (w, h) in zip(data, [(40, 70), (100, 50)]):
        assert (r["width"], r["height"]) == (w, h) and len(r["detections"]) == 5
        for d in r["detections"]:
            x1, y1, x2, y2 = d["box"]
            assert 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h and d["name"] == ["x", "y", "z"][d["class"]]
            m = mask_utils.decode(dict(d["segmentation"], counts=d["segmentation"]["counts"].encode()))
            assert m.shape == (h, w)
    assert Image.open(out / "wide.png").size == (100, 50) and Image.open(out / "tall.jpg").size == (40, 70)


def test_predict_errors(tmp_path, tiny_model):
    src = _images(tmp_path / "src")
    with pytest.raises(GradpathError, match="would overwrite"):
        predict(tiny_model, src, src, imgsz=64, progress=False)
    with pytest.raises(GradpathError, match="does not exist"):
        predict(tiny_model, tmp_path / "missing", tmp_path / "o", imgsz=64, progress=False)
    (src / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match="broken.png"):
        predict(tiny_model, src, tmp_path / "o", imgsz=64, progress=False)


def test_cli_predict_export_and_errors(tmp_path, capsys):
    torch.manual_seed(0)
    model = create_model("yolor-csp", num_classes=3, width=0.25, depth=0.34)
    w = tmp_path / "best.pt"
    save_checkpoint(w, make_checkpoint(model, task="segment", meta={"names": ["a", "b", "c"], "imgsz": 64}, epoch=0))
    src = _images(tmp_path / "src")
    assert main(["predict", "--weights", str(w), "--source", str(src / "wide.png"), "--out", str(tmp_path / "p"),
                 "--conf", "0.0", "--max-det", "3"]) == 0
    assert len(json.loads((tmp_path / "p" / "predictions.json").read_text())[0]["detections"]) == 3
    assert main(["export", "--weights", str(w), "--format", "onnx", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert res["ok"] and res["imgsz"] == 64 and (tmp_path / "best.onnx").is_file()
    capsys.readouterr()
    assert main(["val", "--weights", str(tmp_path / "nope.pt"), "--data", "shapes"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gradpath val: error:") and "nope.pt does not exist" in err and "\n" not in err


class ShardModel(PerfectModel):
    """PerfectModel that reads which image it sees from pixel (0, 0) of channel 0 (the image id as a byte)."""

    def forward(self, x):
        pred, proto = super().forward(x)
        rows = [0 if int(v) == 11 else 1 for v in (x[:, 0, 0, 0] * 255).round()]  # validate feeds img / 255
        return pred[rows], proto[rows]


def _shard_batch(ids):
    full = _batch()
    pick = [[11, 12].index(i) for i in ids]
    img = torch.zeros(len(ids), 3, 64, 64, dtype=torch.uint8)
    img[:, 0, 0, 0] = torch.tensor(ids, dtype=torch.uint8)
    return {"img": img, "image_ids": ids, "orig_shapes": [full["orig_shapes"][k] for k in pick],
            "ratio_pads": [full["ratio_pads"][k] for k in pick]}


def _ddp_worker(rank, world, init, out):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        # rank 1 also gets image 11 again, as a padding DistributedSampler would hand it
        shard = [11] if rank == 0 else [12, 11]
        m = validate(ShardModel().eval(), [_shard_batch(shard)], FakeDataset(), "cpu", progress=False)
        (out / f"{rank}.json").write_text(json.dumps({k: m[k] for k in ("box", "mask", "images")}))
    finally:
        dist.destroy_process_group()


def test_validate_gathers_across_ranks(tmp_path):
    import torch.multiprocessing as mp

    ctx = mp.start_processes(_ddp_worker, args=(2, f"file://{tmp_path / 'store'}", tmp_path), nprocs=2, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + 300  # a hang guard, not a timing assertion: the ranks finish in seconds
    while not ctx.join(timeout=0.5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            raise AssertionError("the 2-rank validation did not finish within 300 s (hang?)")
    r0, r1 = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    assert r0 == r1  # every rank computes the same numbers from the gathered predictions
    assert r0["images"] == 2 and r0["box"]["map"] == pytest.approx(1.0) and r0["mask"]["map50"] == pytest.approx(1.0)


def _coco_dataset(root):
    """Two images and a COCO instances json (category ids 4 and 9 → classes 0 and 1), plus the dataset yaml."""
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    Image.fromarray(torch.full((48, 64, 3), 60, dtype=torch.uint8).numpy()).save(root / "images" / "a.png")
    Image.fromarray(torch.full((64, 40, 3), 160, dtype=torch.uint8).numpy()).save(root / "images" / "b.png")
    poly = lambda x, y, w, h: [[x, y, x + w, y, x + w, y + h, x, y + h]]  # noqa: E731
    anns = [(1, 1, 4, [5, 5, 20, 15]), (2, 1, 9, [30, 20, 20, 20]), (3, 2, 9, [4, 10, 30, 40])]
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48},
                       {"id": 2, "file_name": "b.png", "width": 40, "height": 64}],
            "categories": [{"id": 4, "name": "cat4"}, {"id": 9, "name": "cat9"}],
            "annotations": [{"id": i, "image_id": im, "category_id": c, "bbox": b, "area": b[2] * b[3],
                             "iscrowd": 0, "segmentation": poly(*b)} for i, im, c, b in anns]}
    (root / "annotations" / "val.json").write_text(json.dumps(coco))
    (root / "data.yaml").write_text(
        f"path: {root}\n"
        "train: {images: images, annotations: annotations/val.json}\n"
        "val: {images: images, annotations: annotations/val.json}\n")
    return root / "data.yaml"


def test_cli_val_on_a_coco_split(tmp_path, capsys):
    data = _coco_dataset(tmp_path / "ds")
    torch.manual_seed(0)
    w = tmp_path / "w.pt"
    save_checkpoint(w, make_checkpoint(create_model("yolor-csp", num_classes=2, width=0.25, depth=0.34),
                                       task="segment", meta={"names": ["cat4", "cat9"], "imgsz": 64}))
    assert main(["val", "--weights", str(w), "--data", str(data), "--batch", "2", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert set(m["box"]) == set(m["mask"]) == {"map", "map50", "map75"} and m["images"] == 2
    assert [(c["name"], c["category_id"], c["instances"]) for c in m["per_class"]] == [("cat4", 4, 1), ("cat9", 9, 2)]
    # --save-json: the scored detections in the COCO results format; pycocotools scores them to val's number
    saved = tmp_path / "out" / "dets.json"
    assert main(["val", "--weights", str(w), "--data", str(data), "--batch", "2", "--json",
                 "--save-json", str(saved)]) == 0
    assert json.loads(capsys.readouterr().out)["box"] == m["box"]
    from pycocotools.cocoeval import COCOeval
    gt = build_dataset(load_data_config(str(data)), split="val", imgsz=64, augment=False).coco_gt()
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(json.loads(saved.read_text())), "bbox")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    assert ev.stats[0] == pytest.approx(max(m["box"]["map"], 0.0))
    assert main(["val", "--weights", str(w), "--data", str(data), "--save-json", str(tmp_path)]) == 2
    assert "--save-json" in capsys.readouterr().err
    save_checkpoint(w, make_checkpoint(create_model("yolor-csp", num_classes=3, width=0.25, depth=0.34),
                                       task="segment"))
    assert main(["val", "--weights", str(w), "--data", str(data)]) == 2
    assert "predicts 3 classes but" in capsys.readouterr().err


class _Rec:
    def __init__(self, file: str, image_id: int) -> None:
        self.file, self.image_id = Path(file), image_id


class FakeYoloDataset(FakeDataset):
    """The same two images as a YOLO-label split would number them (ids 11, 12, classes -> 1, 2), with the
    file names an official annotation file knows them by."""

    class_to_category = [1, 2]
    records = [_Rec("/data/images/val/000000397133.jpg", 11), _Rec("/data/images/val/5.png", 12)]

    def coco_gt(self):
        raise AssertionError("validate(coco_json=...) must not use the split's own labels")


def _official_json(path, cats=((1, "a"), (90, "b"))):
    """Official ids: image 397133 by file name, image 5 only by its numeric stem; categories 1 and 90."""
    to_cat = {3: cats[0][0], 7: cats[-1][0]}
    anns = [{"id": k + 1, "image_id": {11: 397133, 12: 5}[img], "category_id": to_cat[cat], "bbox": [x, y, w, h],
             "area": w * h, "iscrowd": 0, "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]}
            for k, (img, (cat, (x, y, w, h))) in enumerate(GT.items())]
    images = [{"id": 397133, "file_name": "000000397133.jpg", "height": 50, "width": 100},
              {"id": 5, "file_name": "elsewhere/named-otherwise.png", "height": 100, "width": 50},
              {"id": 6, "file_name": "not-in-split.png", "height": 10, "width": 10}]
    path.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": c, "name": n} for c, n in cats]}))
    return path


def test_validate_against_an_official_annotation_file(tmp_path, monkeypatch):
    """Predictions of a YOLO-label split scored against an official json: images matched by file name or numeric
    stem, classes by rank of the official category ids (class 1 -> category 90). The perfect model scores 1.0
    exactly as against the split's own labels; image 6 of the json is not in the split and is not scored."""
    v = importlib.import_module("gradpath.tasks.segment.validate")
    captured = {}
    real = v.evaluate_coco

    def spy(coco_gt, preds, **kw):
        captured.update(preds=preds, kw=kw)
        return real(coco_gt, preds, **kw)

    monkeypatch.setattr(v, "evaluate_coco", spy)
    m = validate(PerfectModel(), [_batch()], FakeYoloDataset(), "cpu", progress=False,
                 coco_json=_official_json(tmp_path / "instances_val.json"))
    assert m["box"] == {"map": pytest.approx(1.0), "map50": pytest.approx(1.0), "map75": pytest.approx(1.0)}
    assert sorted(captured["kw"]["img_ids"]) == [5, 397133] and captured["kw"]["class_to_category"] == [1, 90]
    best = {p["image_id"]: p for p in sorted(captured["preds"], key=lambda p: p["score"])}
    assert best[397133]["category_id"] == 1 and best[5]["category_id"] == 90


def test_official_annotation_file_mismatches_are_one_line_errors(tmp_path):
    three = _official_json(tmp_path / "three.json", cats=((1, "a"), (2, "b"), (90, "c")))
    with pytest.raises(GradpathError, match=r"three.json: has 3 categories but the model's dataset has 2 classes"):
        validate(PerfectModel(), [_batch()], FakeYoloDataset(), "cpu", progress=False, coco_json=three)
    ds = FakeYoloDataset()
    ds.records = [_Rec("/data/images/val/000000397133.jpg", 11), _Rec("/data/images/val/zebra.png", 12)]
    with pytest.raises(GradpathError, match=r"instances_val.json: no image named zebra.png \(nor with id zebra\)"):
        validate(PerfectModel(), [_batch()], ds, "cpu", progress=False,
                 coco_json=_official_json(tmp_path / "instances_val.json"))
    with pytest.raises(GradpathError, match=r"missing.json: annotation file not found"):
        validate(PerfectModel(), [_batch()], ds, "cpu", progress=False, coco_json=tmp_path / "missing.json")
