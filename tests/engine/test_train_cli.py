"""`gradpath train` end to end on a tiny shapes set, and its one-line errors for user mistakes."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gradpath.cli import main
from gradpath.data import generate_shapes
from gradpath.engine.checkpoint import load_checkpoint, save_checkpoint

TINY = ["--model", "yolor-elan", "--set", "width=0.0625", "--set", "depth=0.34", "--imgsz", "64", "--batch", "2",
        "--workers", "0", "--device", "cpu", "--quiet", "--warmup-epochs", "0"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = generate_shapes(tmp_path_factory.mktemp("data") / "shapes", n_train=4, n_val=2, size=64,
                           object_size=(16, 40), objects=(1, 2))
    return root / "data.yaml"


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gradpath train: error:") and "\n" not in err and "Traceback" not in err, err
    return err


def test_train_writes_run_folder_and_prints_metrics(tmp_path, tiny_data, capsys):
    rc = main(["train", *TINY, "--data", str(tiny_data), "--epochs", "2", "--project", str(tmp_path), "--name", "t"])
    out = capsys.readouterr().out
    assert rc == 0
    run = tmp_path / "segment" / "t"
    for f in ("args.yaml", "results.csv", "results.png", "val_predictions.png", "weights/last.pt", "weights/best.pt"):
        assert (run / f).is_file(), f
    rows = list(csv.DictReader(open(run / "results.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert {"train/box", "train/seg", "train/obj", "train/cls", "metrics/box_map50", "metrics/mask_map50"} <= set(rows[0])
    assert out.strip().splitlines()[-1].startswith("box mAP50=") and " mask mAP50=" in out.strip().splitlines()[-1]
    ck = load_checkpoint(run / "weights" / "last.pt")
    assert ck["epoch"] == 1 and ck["run_info"]["model"] == "yolor-elan" and ck["run_info"]["names"]
    # The same name again gets a fresh numbered folder; nothing is overwritten.
    from gradpath.tasks.segment.task import next_run_dir

    assert next_run_dir(tmp_path, "segment", "t") == tmp_path / "segment" / "t2"

    # --resume of that finished run: one line, nothing trained or written.
    before = (run / "weights" / "last.pt").stat().st_mtime_ns
    err = _one_line_error(capsys, ["train", "--resume", str(run)])
    assert "already finished all 2 epochs" in err
    assert (run / "weights" / "last.pt").stat().st_mtime_ns == before


def _fake_ckpt(path: Path, epoch: int, epochs: int, model: str = "yolor-elan") -> Path:
    save_checkpoint(path, {"epoch": epoch, "optimizer": {}, "train_args": {"epochs": epochs},
                           "run_info": {"task": "segment", "model": model}, "model": {}})
    return path


def test_resume_errors_are_one_line(tmp_path, capsys):
    err = _one_line_error(capsys, ["train", "--resume", str(tmp_path / "nope.pt")])
    assert "no checkpoint" in err
    ck = _fake_ckpt(tmp_path / "a" / "weights" / "last.pt", epoch=0, epochs=5)
    err = _one_line_error(capsys, ["train", "--resume", str(ck), "--model", "yolor-csp"])
    assert "checkpoint of model 'yolor-elan', not 'yolor-csp'" in err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    err = _one_line_error(capsys, ["train", "--resume", str(tmp_path / "junk.pt")])
    assert "cannot be read" in err
    torch.save({"model": {}}, tmp_path / "weights_only.pt")
    err = _one_line_error(capsys, ["train", "--resume", str(tmp_path / "weights_only.pt")])
    assert "not a training checkpoint" in err


def test_bad_arguments_are_one_line(tmp_path, capsys, tiny_data):
    err = _one_line_error(capsys, ["train", "--model", "yolor-elam", "--data", str(tiny_data)])
    assert "Did you mean: yolor-elan" in err
    err = _one_line_error(capsys, ["train", "--data", str(tiny_data)])
    assert "--model is required" in err
    err = _one_line_error(capsys, ["train", *TINY[:6], "--imgsz", "70", "--data", str(tiny_data),
                                   "--project", str(tmp_path)])
    assert "multiple of 32" in err
    err = _one_line_error(capsys, ["train", "--model", "yolor-elan", "--data", str(tmp_path / "missing.yaml")])
    assert "missing.yaml" in err
    err = _one_line_error(capsys, ["train", "--model", "resnet50", "--data", str(tiny_data), "--imgsz", "64",
                                   "--project", str(tmp_path), "--device", "cpu"])
    assert "no segmentation head" in err
    empty = tmp_path / "empty"
    (empty / "images" / "train").mkdir(parents=True)
    (empty / "images" / "val").mkdir(parents=True)
    (empty / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: [a]\n")
    err = _one_line_error(capsys, ["train", *TINY, "--data", str(empty / "data.yaml"), "--project", str(tmp_path)])
    assert "empty" in err and not (tmp_path / "segment").exists()  # refused before a run folder is made
    with pytest.raises(SystemExit) as e:
        main(["train", "--optimiser", "sgd"])
    assert e.value.code == 2
    assert "--optimizer" in capsys.readouterr().err


def test_torchrun_two_process_gloo_train(tmp_path, tiny_data):
    """`torchrun --nproc_per_node 2 -m gradpath.cli train` on the CPU: gloo, sharded val, no hang."""
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", str(29500 + os.getpid() % 1000),
           "-m", "gradpath.cli", "train", *TINY, "--data", str(tiny_data), "--epochs", "1",
           "--project", str(tmp_path), "--name", "ddp"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "cpu x2" in r.stdout  # two ranks trained
    assert r.stdout.count("box mAP50=") == 1  # only rank 0 reports
    assert (tmp_path / "segment" / "ddp" / "weights" / "last.pt").is_file()
