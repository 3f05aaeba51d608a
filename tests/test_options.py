"""Every documented CLI option of train/val/predict/export/reproduce/profile, exercised through `gradpath.cli.main`.

Each test would fail if its option were silently ignored: it compares against the run without the option, or
against a value computed by hand. The runs are tiny (a 0.14 M-param yolor-elan, 64 px, 4 train images, seeded),
so the whole file takes well under two minutes on two shared cores.
"""
from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml

from gradpath.cli import main

TINY = ["--model", "yolor-elan", "--set", "width=0.0625", "--set", "depth=0.34", "--imgsz", "64", "--batch", "2",
        "--nbs", "2", "--workers", "0", "--device", "cpu", "--quiet", "--warmup-epochs", "0", "--no-plots",
        "--seed", "0", "--schedule", "cosine"]  # a later --schedule on a command line wins
EPOCHS = 3
LR0, LRF = 0.01, 0.01  # the sgd defaults the runs below use


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: on a shared 2-core machine intra-op threads only add contention. Module-scoped, so the
    reference run of ``env`` and every run compared with it use the same thread count (float sums in another
    order would make 'equal weights' comparisons fail)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def _ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _json_out(capsys, argv: list[str]) -> dict:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_shapes):
    """Data yamls and the reference run every test compares against: 3 epochs, sgd, cosine, EMA, eval each epoch.

    ``selfval.yaml`` validates on the training images, so a tiny model scores more than nothing there."""
    d = tmp_path_factory.mktemp("options")
    selfval = d / "selfval.yaml"
    selfval.write_text(yaml.safe_dump({
        "path": str(tiny_shapes), "names": ["circle", "square", "triangle"],
        "train": {"images": "images/train", "annotations": "annotations/instances_train.json"},
        "val": {"images": "images/train", "annotations": "annotations/instances_train.json"}}))
    project = d / "runs"
    assert main(["train", *TINY, "--data", str(selfval), "--epochs", str(EPOCHS), "--project", str(project),
                 "--name", "base"]) == 0
    return {"data": tiny_shapes / "data.yaml", "selfval": selfval, "project": project,
            "base": project / "segment" / "base", "root": tiny_shapes}


def _train(env, name: str, *extra: str, epochs: int = EPOCHS) -> Path:
    assert main(["train", *TINY, "--data", str(env["selfval"]), "--epochs", str(epochs),
                 "--project", str(env["project"]), "--name", name, *extra]) == 0
    return env["project"] / "segment" / name


# ---------------------------------------------------------------------------------------------------- train
@pytest.fixture(scope="module")
def reused(env):
    """`reuse` trained once (1 epoch), the same name again (numbered), then --exist-ok with 2 epochs."""
    _train(env, "reuse", epochs=1)
    _train(env, "reuse", epochs=1)
    _train(env, "reuse", "--exist-ok", epochs=2)
    return env["project"] / "segment"


def test_exist_ok_reuses_the_folder(reused):
    assert sorted(p.name for p in reused.iterdir() if p.name.startswith("reuse")) == ["reuse", "reuse2"]
    args = yaml.safe_load((reused / "reuse" / "args.yaml").read_text())
    assert args["train"]["epochs"] == 2  # the folder now holds the --exist-ok run
    assert _ckpt(reused / "reuse" / "weights" / "last.pt")["epoch"] == 1
    assert [r["epoch"] for r in _rows(reused / "reuse2")] == ["0"]


def test_exist_ok_run_starts_a_fresh_results_csv(reused):
    assert [r["epoch"] for r in _rows(reused / "reuse")] == ["0", "1"]


def test_val_interval(env):
    """--val-interval 2 over 3 epochs: evaluated after epoch 2 and after the last (3), not after epoch 1."""
    run = _train(env, "every2", "--val-interval", "2")
    has_metrics = [r["metrics/box_map50"] != "" for r in _rows(run)]
    assert has_metrics == [False, True, True]
    assert [r["metrics/box_map50"] != "" for r in _rows(env["base"])] == [True, True, True]


def test_no_ema(env):
    """Without EMA the evaluated/deployed weights are the raw weights: exactly the raw weights of the same seeded
    run with EMA (EMA does not change training), which are not its evaluated weights."""
    ck = _ckpt(_train(env, "noema", "--no-ema", epochs=1) / "weights" / "last.pt")
    assert ck["train"]["ema"] is None
    with_ema = _ckpt(_train(env, "ema1", epochs=1) / "weights" / "last.pt")
    assert with_ema["train"]["ema"]["updates"] == 2  # 2 batches of 2 images, a step each
    raw = with_ema["train"]["model"]
    assert ck["weights"].keys() == raw.keys()
    for k, v in ck["weights"].items():
        assert torch.equal(v, raw[k]), k
    assert any(not torch.equal(v, raw[k]) for k, v in with_ema["weights"].items() if v.is_floating_point())


def test_no_channels_last(env, monkeypatch):
    """On CPU the trainer stores the weights channels-last unless --no-channels-last: then they stay NCHW (the
    same network and parameters; recorded in args.yaml so a resumed run keeps the layout)."""
    import gradpath.engine.trainer as trainer_module

    layouts = []
    real = trainer_module.to_channels_last

    def spy(model):
        layouts.append("channels_last")
        return real(model)

    monkeypatch.setattr(trainer_module, "to_channels_last", spy)
    run = _train(env, "nchw", "--no-channels-last", epochs=1)
    assert layouts == []
    assert yaml.safe_load((run / "args.yaml").read_text())["train"]["channels_last"] is False
    _train(env, "nhwc", epochs=1)
    assert layouts == ["channels_last"]


def _lr_column(run: Path) -> list[float]:
    return [float(r["lr/pg0"]) for r in _rows(run)]


def test_schedule_linear_vs_cosine(env):
    """The lr column holds the rate after each epoch's last step, i.e. at progress x = (epoch + 1) / epochs:
    cosine lr0·((1 − cos πx)/2·(lrf − 1) + 1), linear lr0·((1 − x)(1 − lrf) + lrf) (no warm-up here)."""
    xs = [(e + 1) / EPOCHS for e in range(EPOCHS)]
    cosine = [LR0 * ((1 - math.cos(math.pi * x)) / 2 * (LRF - 1) + 1) for x in xs]  # 0.007525, 0.002575, 0.0001
    linear = [LR0 * ((1 - x) * (1 - LRF) + LRF) for x in xs]  # 0.0067, 0.0034, 0.0001
    assert _lr_column(env["base"]) == pytest.approx(cosine, rel=1e-5)
    assert _lr_column(_train(env, "linear", "--schedule", "linear")) == pytest.approx(linear, rel=1e-5)
    assert abs(cosine[0] - linear[0]) > 1e-4  # the two schedules are told apart


def test_optimizer_adamw(env):
    ck = _ckpt(_train(env, "adamw", "--optimizer", "adamw", epochs=1) / "weights" / "last.pt")
    opt = ck["train"]["optimizer"]
    assert {"exp_avg", "exp_avg_sq", "step"} <= set(opt["state"][0])
    assert all("betas" in g and g["initial_lr"] == pytest.approx(0.001) for g in opt["param_groups"])  # adamw lr0
    sgd = _ckpt(env["base"] / "weights" / "last.pt")["train"]["optimizer"]
    assert set(sgd["state"][0]) == {"momentum_buffer"}
    assert all(g["nesterov"] and g["initial_lr"] == pytest.approx(LR0) for g in sgd["param_groups"])


def test_resume_segmentation_run_end_to_end(env, monkeypatch, capsys):
    """A 3-epoch run killed while saving epoch 2, then `train --resume RUN`, ends with the same weights, EMA and
    results.csv as the uninterrupted run."""
    real_save = torch.save

    def killed_at_epoch_2(obj, f, *a, **k):
        if isinstance(obj, dict) and obj.get("epoch") == 1:
            raise KeyboardInterrupt  # as if Ctrl-C arrived while epoch 2's checkpoint was being written
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", killed_at_epoch_2)
    assert main(["train", *TINY, "--data", str(env["selfval"]), "--epochs", str(EPOCHS),
                 "--project", str(env["project"]), "--name", "interrupted"]) == 130
    monkeypatch.setattr(torch, "save", real_save)
    run = env["project"] / "segment" / "interrupted"
    after_epoch_1 = _ckpt(run / "weights" / "last.pt")
    assert after_epoch_1["epoch"] == 0
    assert main(["train", "--resume", str(run)]) == 0
    assert "resum" in capsys.readouterr().out

    got, ref = _ckpt(run / "weights" / "last.pt"), _ckpt(env["base"] / "weights" / "last.pt")
    assert got["epoch"] == ref["epoch"] == EPOCHS - 1
    for part in ("weights", "model"):
        a = got["weights"] if part == "weights" else got["train"]["model"]
        b = ref["weights"] if part == "weights" else ref["train"]["model"]
        assert a.keys() == b.keys()
        for k in a:
            assert torch.allclose(a[k].double(), b[k].double(), rtol=0, atol=1e-6), (part, k)
    moved = [k for k, v in got["train"]["model"].items()  # resuming did train: weights moved after epoch 1
             if v.is_floating_point() and not torch.equal(v, after_epoch_1["train"]["model"][k])]
    assert moved
    strip = [{k: v for k, v in r.items() if k != "time_s"} for r in _rows(run)]
    assert strip == [{k: v for k, v in r.items() if k != "time_s"} for r in _rows(env["base"])]


# ------------------------------------------------------------------------------------------ val / predict
def test_val_split(env, capsys):
    """--split train scores the 4 training images, the default the 2 val images; per-class instance counts equal
    the annotations of that split's COCO file."""
    w = str(env["base"] / "weights" / "last.pt")
    for split, n_images in (("val", 2), ("train", 4)):
        argv = ["val", "--weights", w, "--data", str(env["data"]), "--json", "--batch", "2"]
        res = _json_out(capsys, argv + (["--split", split] if split == "train" else []))
        assert res["images"] == n_images
        coco = json.loads((env["root"] / "annotations" / f"instances_{split}.json").read_text())
        want = Counter(a["category_id"] for a in coco["annotations"])
        assert {c["category_id"]: c["instances"] for c in res["per_class"] if c["instances"]} == dict(want)


def test_val_matches_the_trainers_evaluation(env, capsys):
    """`val` of best.pt scores exactly what the trainer logged for that epoch (same weights, same data)."""
    best = env["base"] / "weights" / "best.pt"
    row = _rows(env["base"])[_ckpt(best)["epoch"]]
    res = _json_out(capsys, ["val", "--weights", str(best), "--data", str(env["selfval"]), "--json"])
    for kind in ("box", "mask"):
        for m in ("map50", "map", "map75"):
            assert res[kind][m] == pytest.approx(float(row[f"metrics/{kind}_{m}"]), rel=1e-5, abs=1e-9), (kind, m)


def test_predict_no_images(env, tmp_path, capsys):
    w = str(env["base"] / "weights" / "last.pt")
    src = env["root"] / "images" / "val"
    names = sorted(p.name for p in src.iterdir())
    for flag, out in (([], tmp_path / "with"), (["--no-images"], tmp_path / "without")):
        assert main(["predict", "--weights", w, "--source", str(src), "--out", str(out), *flag]) == 0
        preds = json.loads((out / "predictions.json").read_text())
        assert sorted(Path(p["file"]).name for p in preds) == names
    assert sorted(p.name for p in (tmp_path / "without").iterdir()) == ["predictions.json"]
    assert sorted(p.name for p in (tmp_path / "with").iterdir() if p.name != "predictions.json") == names


# ---------------------------------------------------------------------------------------------------- export
def test_export_torchscript_through_cli(env, tmp_path, capsys):
    out = tmp_path / "m.torchscript"
    res = _json_out(capsys, ["export", "--weights", str(env["base"] / "weights" / "last.pt"), "--format",
                             "torchscript", "--out", str(out), "--json"])
    assert res["ok"] and res["format"] == "torchscript" and Path(res["path"]) == out
    extra = {"config.json": ""}
    m = torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(json.loads(extra["config.json"])["names"]) == ["circle", "square", "triangle"]
    pred, proto = m(torch.rand(1, 3, 64, 64))
    # 3 anchors × (8² + 4² + 2²) cells at strides 8/16/32; 5 box/obj + 3 classes + 32 mask coefficients
    assert pred.shape == (1, 3 * (8 * 8 + 4 * 4 + 2 * 2), 5 + 3 + 32) and proto.shape == (1, 32, 16, 16)


def test_export_onnx_opset(env, tmp_path, capsys):
    import onnx  # optional dependency (the export extra)

    out = tmp_path / "m.onnx"
    _json_out(capsys, ["export", "--weights", str(env["base"] / "weights" / "last.pt"), "--format", "onnx",
                       "--opset", "13", "--out", str(out), "--json"])
    assert [o.version for o in onnx.load(str(out)).opset_import if o.domain in ("", "ai.onnx")] == [13]


def test_export_fails_on_parity_mismatch(env, tmp_path, monkeypatch, capsys):
    """An exported file whose outputs differ from PyTorch (here: the loaded TorchScript adds 0.01) is an error."""
    real_load = torch.jit.load

    class Off:
        def __init__(self, m):
            self.m = m

        def __call__(self, x):
            return tuple(t + 0.01 for t in self.m(x))

    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: Off(real_load(*a, **k)))
    capsys.readouterr()
    out = tmp_path / "bad.torchscript"
    assert main(["export", "--weights", str(env["base"] / "weights" / "last.pt"), "--format", "torchscript",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("gradpath export: error:") and "\n" not in err
    assert "differs from PyTorch" in err and str(out) in err


# ------------------------------------------------------------------------------------ reproduce / profile
def test_reproduce_flops_exits_1_on_a_miss(monkeypatch, capsys):
    from dataclasses import replace

    from gradpath.experiments import zoo

    assert main(["reproduce", "flops", "--table", "2"]) == 0
    real_get_entry = zoo.get_entry
    entry = real_get_entry("resnet50")
    typo = replace(entry, paper=replace(entry.paper, gflops=round(entry.paper.gflops * 1.01, 2)))  # a 1% typo
    monkeypatch.setattr(zoo, "get_entry", lambda name: typo if name == "resnet50" else real_get_entry(name))
    capsys.readouterr()
    assert main(["reproduce", "flops", "--table", "2"]) == 1
    out = capsys.readouterr().out
    bad = [line for line in out.splitlines() if " resnet50 " in line]
    assert len(bad) == 1 and "OFF" in bad[0] and "9.84" in bad[0]


def test_profile_batch_device_and_list_override(capsys):
    one = _json_out(capsys, ["profile", "tiny-prn", "--iters", "0", "--json"])
    two = _json_out(capsys, ["profile", "tiny-prn", "--iters", "1", "--warmup", "0", "--batch", "2",
                             "--device", "cpu", "--json"])
    assert two["batch"] == 2 and two["gflops"] == pytest.approx(2 * one["gflops"], rel=1e-12)
    assert two["params"] == one["params"] and two["latency_device"] == "cpu"
    # --set key=[list]: ELAN-{1,1}s through an override is the registered yolor-elan-11
    a = _json_out(capsys, ["profile", "yolor-elan", "--set", "elan_stack=[1,1]", "--imgsz", "64", "--iters", "0",
                           "--json"])
    b = _json_out(capsys, ["profile", "yolor-elan-11", "--imgsz", "64", "--iters", "0", "--json"])
    c = _json_out(capsys, ["profile", "yolor-elan", "--imgsz", "64", "--iters", "0", "--json"])
    assert (a["params"], a["gflops"]) == (b["params"], b["gflops"]) and a["params"] != c["params"]


def test_train_leaves_process_state_as_found(env):
    """A library/CLI call must not leave thread counts, determinism flags or a process group behind."""
    torch.set_num_threads(1)
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
              torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.is_grad_enabled())
    _train(env, "state", epochs=1)
    after = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.is_grad_enabled())
    assert after == before and not torch.distributed.is_initialized()
