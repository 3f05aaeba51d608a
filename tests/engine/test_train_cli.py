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
from gradpath.engine.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from gradpath.models import create_model

TINY = ["--model", "yolor-elan", "--set", "width=0.0625", "--set", "depth=0.34", "--imgsz", "64", "--batch", "2",
        "--workers", "0", "--device", "cpu", "--quiet", "--warmup-epochs", "0"]
#: Hang guard for the two-process torchrun run (it takes well under a minute): fail instead of stalling the suite.
TORCHRUN_DEADLINE_S = 300


@pytest.fixture
def tiny_data(tiny_shapes) -> Path:
    return tiny_shapes / "data.yaml"


def _rows_without_time(run: Path) -> list[dict[str, str]]:
    with open(run / "results.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k != "time_s"} for r in csv.DictReader(f)]


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gradpath train: error:") and "\n" not in err and "Traceback" not in err, err
    return err


def test_train_writes_run_folder_and_prints_metrics(tmp_path, tiny_data, capsys):
    def train(name: str, seed: int) -> tuple[Path, str]:
        rc = main(["train", *TINY, "--nbs", "2", "--seed", str(seed), "--data", str(tiny_data), "--epochs", "2",
                   "--project", str(tmp_path), "--name", name])
        assert rc == 0
        return tmp_path / "segment" / name, capsys.readouterr().out

    run, out = train("t", seed=0)
    for f in ("args.yaml", "results.csv", "results.png", "val_predictions.png", "weights/last.pt", "weights/best.pt"):
        assert (run / f).is_file(), f
    rows = _rows_without_time(run)
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert {"train/box", "train/seg", "train/obj", "train/cls", "metrics/box_map50", "metrics/mask_map50"} <= set(rows[0])
    # The closing line reports the last evaluation, the one results.csv logged for the last epoch.
    last = out.strip().splitlines()[-1]
    assert last == (f"box mAP50={float(rows[-1]['metrics/box_map50']):.4f} "
                    f"mask mAP50={float(rows[-1]['metrics/mask_map50']):.4f}"), last
    ck = load_checkpoint(run / "weights" / "last.pt")
    assert ck["epoch"] == 1 and ck["model"]["name"] == "yolor-elan" and ck["task"] == "segment"
    assert ck["meta"]["names"] == ["circle", "square", "triangle"]

    # Seeded: the same seed reproduces every logged loss/metric and every weight exactly; another seed does not.
    again, _ = train("t_again", seed=0)
    assert _rows_without_time(again) == rows
    ck2 = load_checkpoint(again / "weights" / "last.pt")
    assert all(torch.equal(v, ck2["weights"][k]) for k, v in ck["weights"].items())
    other, _ = train("t_seed1", seed=1)
    assert [r["train/box"] for r in _rows_without_time(other)] != [r["train/box"] for r in rows]

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
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    err = _one_line_error(capsys, ["train", "--resume", str(tmp_path / "foreign.pt")])
    assert "not a gradpath checkpoint" in err
    net = create_model("yolor-elan", width=0.0625, depth=0.34, num_classes=3)
    save_checkpoint(tmp_path / "deploy.pt", make_checkpoint(net, task="segment", epoch=0, epochs=5))
    err = _one_line_error(capsys, ["train", "--resume", str(tmp_path / "deploy.pt")])
    assert "not a training checkpoint" in err  # weights without optimizer state cannot continue a run


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
    err = _one_line_error(capsys, ["train", "--task", "segment", "--model", "resnet50", "--data", str(tiny_data),
                                   "--imgsz", "64",
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


def test_torchrun_two_process_gloo_train(tmp_path, tiny_data, free_port):
    """`torchrun --nproc_per_node 2 -m gradpath.cli train` on the CPU: gloo, sharded val, no hang."""
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", str(free_port),
           "-m", "gradpath.cli", "train", *TINY, "--data", str(tiny_data), "--epochs", "1",
           "--project", str(tmp_path), "--name", "ddp"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=TORCHRUN_DEADLINE_S, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    assert sum("cpu x2" in line for line in lines) == 1  # two ranks trained, one header (rank 0 logs)
    assert sum(line.startswith("box mAP50=") for line in lines) == 1  # only rank 0 reports
    assert (tmp_path / "segment" / "ddp" / "weights" / "last.pt").is_file()
