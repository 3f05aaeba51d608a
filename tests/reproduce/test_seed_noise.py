"""scripts/seed_noise.py's summary from made-up results.csv files: per evaluated epoch, mean ± std over the seeds
of each metric of the task, and each seed's class loss; epochs without validation are skipped."""
from __future__ import annotations

import argparse
import importlib.util
import statistics
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "seed_noise.py"
spec = importlib.util.spec_from_file_location("seed_noise", SCRIPT)
seed_noise = importlib.util.module_from_spec(spec)
spec.loader.exec_module(seed_noise)


def _write(folder: Path, header: list[str], rows: list[list[str]]) -> Path:
    folder.mkdir(parents=True)
    (folder / "results.csv").write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    return folder


def test_segment_summary(tmp_path):
    header = ["epoch", "train/cls", "metrics/box_map", "metrics/box_map50", "metrics/mask_map", "time_s"]
    runs = [_write(tmp_path / f"m-seed{s}", header, [["0", f"0.{s + 2}", "", "", "", "10"],
                                                     ["1", f"0.{s + 1}", f"0.{s + 4}", "0.8", "0.3", "12"]])
            for s in range(3)]
    out = seed_noise.summarise(runs, "segment")
    assert [e["epoch"] for e in out["epochs"]] == [2]          # only the validated epoch, 1-based
    box = out["epochs"][0]["box_map"]
    assert box["values"] == [0.4, 0.5, 0.6]
    assert box["mean"] == pytest.approx(0.5) and box["std"] == pytest.approx(statistics.stdev([0.4, 0.5, 0.6]))
    assert out["epochs"][0]["cls_loss"] == [0.1, 0.2, 0.3]
    assert out["train_seconds"] == {"m-seed0": 22.0, "m-seed1": 22.0, "m-seed2": 22.0}
    md = seed_noise._markdown(out, {"train": {}}, jobs=3)
    assert "| 2 | 50.0 ± 10.0 | 80.0 ± 0.0 | 30.0 ± 0.0 | 40.0 / 50.0 / 60.0 | 0.100 / 0.200 / 0.300 |" in md


def test_classify_summary_uses_top1_and_the_ce_loss(tmp_path):
    header = ["epoch", "train/ce", "metrics/top1", "metrics/top5", "time_s"]
    runs = [_write(tmp_path / f"c-seed{s}", header, [["0", "1.5", f"0.{s + 5}", "0.9", "3"]]) for s in range(2)]
    out = seed_noise.summarise(runs, "classify")
    e = out["epochs"][0]
    assert e["top1"]["values"] == [0.5, 0.6] and e["top5"]["mean"] == pytest.approx(0.9)
    assert e["cls_loss"] == [1.5, 1.5]
    md = seed_noise._markdown(out, {"train": {}}, jobs=1)
    assert "top-1 (mean ± std, %)" in md and "| 1 | 55.0 ± 7.1 | 90.0 ± 0.0 | 50.0 / 60.0 | 1.500 / 1.500 |" in md


def test_recipe_options_change_only_what_they_name():
    """A probe of a candidate recipe starts from the task's default and changes only the options given."""
    base = seed_noise.small_recipe("classify", "default")
    args = argparse.Namespace(task="classify", val_interval=5, epochs=0, ema_decay=0.0, imgsz=0, n_train=0,
                              width=0.125, depth=0.0, lr0=0.002, warmup_epochs=3.0, optimizer="adamw")
    recipe = seed_noise._recipe(args)
    assert recipe["model_overrides"] == {**base.model_overrides, "width": 0.125}
    assert recipe["train"] == {**base.train, "val_interval": 5, "lr0": 0.002, "warmup_epochs": 3.0,
                               "optimizer": "adamw"}
    assert recipe["data"] == base.data and recipe["task_options"] == base.task_options
    unchanged = seed_noise._recipe(argparse.Namespace(**{**vars(args), "width": 0.0, "lr0": 0.0,
                                                         "warmup_epochs": None, "optimizer": ""}))
    assert unchanged["model_overrides"] == base.model_overrides
    assert unchanged["train"] == {**base.train, "val_interval": 5}


def test_every_changed_option_names_its_folder():
    """Runs are reused by folder, so two different recipes must never get the same tag."""
    args = argparse.Namespace(task="classify", val_interval=5, epochs=0, ema_decay=0.0, imgsz=0, n_train=0,
                              width=0.0, depth=0.0, lr0=0.0, warmup_epochs=None, optimizer="")
    base = seed_noise._tag(args, seed_noise._recipe(args))
    epochs = seed_noise.small_recipe("classify", "default").train["epochs"]
    assert base == f"e{epochs}-i64-ndefault-ema0.997-data3"
    changes = {"width": 0.25, "lr0": 0.002, "warmup_epochs": 0.0, "optimizer": "adamw", "epochs": epochs + 30}
    tags = {k: seed_noise._tag(a, seed_noise._recipe(a))
            for k, a in ((k, argparse.Namespace(**{**vars(args), k: v})) for k, v in changes.items())}
    assert len(set(tags.values()) | {base}) == len(changes) + 1
    assert tags["warmup_epochs"].endswith("-wu0.0-data3") and tags["optimizer"].endswith("-adamw-data3")
    segment = argparse.Namespace(**{**vars(args), "task": "segment"})
    assert seed_noise._tag(segment, seed_noise._recipe(segment)).endswith("-data1")


def test_class_loss_milestone_per_seed(tmp_path):
    header = ["epoch", "train/cls", "metrics/box_map", "metrics/box_map50", "metrics/mask_map", "time_s"]
    losses = {0: ["0.21", "0.16", "0.09", "0.08"], 1: ["0.21", "0.18", "0.15", "0.11"], 2: ["0.2", "0.19", "0.18", "0.17"]}
    runs = [_write(tmp_path / f"m-seed{s}", header, [[str(e), v, "", "", "", "1"] for e, v in enumerate(vals)])
            for s, vals in losses.items()]
    out = seed_noise.summarise(runs, "segment")
    assert out["cls_loss_by_epoch"]["m-seed1"] == [0.21, 0.18, 0.15, 0.11]
    assert seed_noise.milestones(out, 0.12) == {"m-seed0": 3, "m-seed1": 4, "m-seed2": None}
    md = seed_noise._markdown(out, {"train": {}}, jobs=3, milestone=0.12)
    assert "First epoch with the cls loss below 0.12: m-seed0 3, m-seed1 4, m-seed2 never" in md
    assert "below" not in seed_noise._markdown(out, {"train": {}}, jobs=3)  # only when asked
