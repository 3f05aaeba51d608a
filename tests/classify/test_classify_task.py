"""`gradpath train --task classify` end to end on a tiny image folder: run folder, metrics, resume, val/predict/export."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gradpath.cli import main
from gradpath.engine.checkpoint import load_checkpoint, model_from_checkpoint
from gradpath.errors import GradpathError
from gradpath.tasks.classify.task import ClassifyTask, classify_hyp

COLOURS = [(255, 0, 0), (0, 200, 0), (0, 0, 255)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Three classes told apart by the colour of a square on noise; train/ and val/ in the ImageNet layout."""
    root = tmp_path_factory.mktemp("cls")
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 3)):
        for c, col in enumerate(COLOURS):
            d = root / split / f"class{c}"
            d.mkdir(parents=True)
            for i in range(n):
                a = (rng.random((40, 48, 3)) * 80).astype(np.uint8)
                y, x = rng.integers(0, 15, 2)
                a[y:y + 22, x:x + 22] = col
                Image.fromarray(a).save(d / f"{i}.png")
    return root


ARGS = ["--task", "classify", "--model", "tiny-res", "--imgsz", "32", "--batch", "8", "--workers", "0",
        "--device", "cpu", "--quiet", "--no-ema", "--seed", "1"]


def test_train_val_predict_export(tmp_path, folder, capsys):
    assert main(["train", *ARGS, "--data", str(folder), "--epochs", "12", "--project", str(tmp_path), "--name", "a"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("top1=") and " top5=" in last
    run = tmp_path / "classify" / "a"
    for f in ("args.yaml", "results.csv", "results.png", "confusion_matrix.png", "weights/last.pt", "weights/best.pt"):
        assert (run / f).is_file(), f
    rows = list(csv.DictReader(open(run / "results.csv")))
    assert len(rows) == 12 and {"train/ce", "metrics/top1", "metrics/top5"} <= set(rows[0])
    assert float(rows[-1]["train/ce"]) < float(rows[0]["train/ce"])  # it learns
    ck = load_checkpoint(run / "weights" / "last.pt")
    assert ck["task"] == "classify" and ck["meta"]["names"] == ["class0", "class1", "class2"]
    assert ck["task_options"]["imgsz"] == 32 and ck["model"]["config"]["num_classes"] == 3
    trained_top1 = ck["metrics"]["top1"]
    assert float(rows[-1]["metrics/top1"]) == pytest.approx(trained_top1, abs=1e-6)
    assert trained_top1 >= 2 / 3  # colour squares: 12 short epochs get most of the 9 val images right
    # top-5 with 3 classes is top-3: always a hit
    assert float(rows[-1]["metrics/top5"]) == 1.0

    # val re-evaluates last.pt to the number the run logged (the deploy form: BN folded, channels-last)
    assert main(["val", "--weights", str(run / "weights" / "last.pt"), "--data", str(folder), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["n"] == 9 and m["top1"] == pytest.approx(trained_top1, abs=1e-9)
    assert len(m["per_class"]) == 3 and np.array(m["confusion"]).sum() == 9

    assert main(["predict", "--weights", str(run / "weights" / "last.pt"), "--source", str(folder / "val" / "class2"),
                 "--out", str(tmp_path / "pred"), "--topk", "2"]) == 0
    assert capsys.readouterr().out.strip().endswith(f"3 images → {tmp_path / 'pred' / 'predictions.json'}")
    recs = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert len(recs) == 3 and all(len(r["top"]) == 2 for r in recs)
    model, _ = model_from_checkpoint(run / "weights" / "last.pt")
    model.eval()
    from gradpath.data.classify import eval_transform
    from gradpath.data.images import read_image

    img = eval_transform(read_image(Path(recs[0]["file"])), 32)
    with torch.no_grad():
        p = model(torch.from_numpy(img.transpose(2, 0, 1).copy())[None].float() / 255).softmax(1)[0]
    assert recs[0]["top"][0]["class"] == int(p.argmax()) and recs[0]["top"][0]["score"] == pytest.approx(
        float(p.max()), abs=1e-4)

    out = tmp_path / "m.torchscript"
    assert main(["export", "--weights", str(run / "weights" / "last.pt"), "--format", "torchscript",
                 "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["ok"] and out.is_file()
    loaded = torch.jit.load(str(out))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-4)

    # the safetensors export (weights + metadata, no code) is itself a checkpoint `val` reads
    st = tmp_path / "m.safetensors"
    assert main(["export", "--weights", str(run / "weights" / "last.pt"), "--format", "safetensors",
                 "--out", str(st)]) == 0
    capsys.readouterr()
    assert main(["val", "--weights", str(st), "--data", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["top1"] == pytest.approx(trained_top1, abs=1e-9)


def test_classifier_refuses_detection_data_and_detector(tmp_path, folder, capsys):
    assert main(["train", "--task", "classify", "--model", "yolor-csp", "--data", str(folder), "--imgsz", "64",
                 "--project", str(tmp_path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "is a detector" in err and "\n" not in err.strip()
    assert main(["train", *ARGS, "--data", str(folder), "--hyp", "label_smothing=0.2",
                 "--project", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown classify hyp 'label_smothing'" in err and "label_smoothing" in err
    assert not (tmp_path / "classify").exists()  # refused before a run folder is made


def test_classify_hyp_is_typed():
    assert classify_hyp({"label_smoothing": 0})["label_smoothing"] == 0.0
    with pytest.raises(GradpathError, match="must be a number"):
        classify_hyp({"fliplr": "yes"})
    with pytest.raises(GradpathError, match=r"label_smoothing must be in \[0, 1\)"):
        classify_hyp({"label_smoothing": 1.0})


def test_options_round_trip(folder):
    t = ClassifyTask(str(folder), imgsz=32, hyp={"fliplr": 0.0})
    again = ClassifyTask(**t.options)
    assert again.options == t.options and again.names == ["class0", "class1", "class2"]
    assert t.model_overrides() == {"num_classes": 3}
