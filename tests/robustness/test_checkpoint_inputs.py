"""Bad checkpoints given to `val` / `predict` / `export` / `train --resume`: one line naming the file, exit 2.

Each case is a small file made here; ``CASES`` is also rendered into the README ("When things go wrong") by
``scripts/gen_readme.py``: (id, the file, the command with ``{w}`` for it, exit code, message fragment).
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from gradpath.cli import main
from gradpath.engine.checkpoint import make_checkpoint, save_checkpoint
from gradpath.models import create_model


class _Payload:
    """What a malicious pickle carries: unpickling it would run a shell command."""

    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/gradpath-pwned",))


def _write(kind: str, d: Path) -> Path:
    p = d / f"{kind}.pt"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "garbage":
        p.write_bytes(bytes(range(256)) * 4)
    elif kind == "malicious-pickle":
        p.write_bytes(pickle.dumps({"model": _Payload()}))
    elif kind == "not-a-checkpoint":
        torch.save({"epoch": 3, "note": "a dict, but no model"}, p)
    elif kind in ("truncated", "other-models-weights", "classifier"):
        torch.manual_seed(0)
        name, kw = ("tiny-res", {"num_classes": 3}) if kind == "classifier" else (
            "yolor-elan", {"num_classes": 3, "width": 0.0625, "depth": 0.34})
        model = create_model(name, **kw)
        ck = make_checkpoint(model, task="classify" if kind == "classifier" else "segment",
                             meta={"names": ["a", "b", "c"], "imgsz": 64})
        if kind == "other-models-weights":  # the weights of another network under this model's name
            ck["weights"] = create_model("yolor-csp", num_classes=3, width=0.0625, depth=0.34).state_dict()
        save_checkpoint(p, ck)
        if kind == "truncated":
            data = p.read_bytes()
            p.write_bytes(data[: len(data) // 2])
    elif kind == "folder":
        p = d / "run"
        p.mkdir()
    return p


CASES = [
    ("empty", "a 0-byte .pt", ["val", "--weights", "{w}", "--data", "shapes"], 2, "is empty (0 bytes)"),
    ("garbage", "random bytes", ["predict", "--weights", "{w}", "--source", "{d}"], 2, "cannot be read"),
    ("truncated", "a checkpoint cut in half", ["export", "--weights", "{w}", "--format", "onnx"], 2,
     "cannot be read"),
    ("malicious-pickle", "a pickle whose loading would run a shell command", ["val", "--weights", "{w}",
                                                                                "--data", "shapes"], 2,
     "cannot be read"),
    ("not-a-checkpoint", "a torch file holding a dict without a model", ["val", "--weights", "{w}", "--data",
                                                                         "shapes"], 2,
     "not a gradpath checkpoint"),
    ("other-models-weights", "another network's weights under a model's name", ["export", "--weights", "{w}",
                                                                                 "--format", "torchscript"], 2,
     "its weights do not fit model 'yolor-elan'"),
    ("classifier", "a classifier's checkpoint validated on detection data", ["val", "--weights", "{w}", "--data",
                                                                             "shapes"], 2,
     "is a classifier (tiny-res); dataset 'shapes' not found: give an ImageNet-layout folder"),
    ("classifier-resume", "a finished classifier's weights given to train --resume", ["train", "--resume", "{w}"],
     2, "not a training checkpoint with optimizer state"),
    ("folder", "a run folder instead of a weights file", ["val", "--weights", "{w}", "--data", "shapes"], 2,
     "is a folder; pass a weights file"),
]


@pytest.mark.parametrize("case_id,what,argv,code,message", CASES, ids=[c[0] for c in CASES])
def test_bad_checkpoint_is_one_line(case_id, what, argv, code, message, tmp_path, capsys):
    kind = "classifier" if case_id == "classifier-resume" else case_id
    w = _write(kind, tmp_path)
    args = [a.replace("{w}", str(w)).replace("{d}", str(tmp_path)) for a in argv]
    assert main(args) == code
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert message in err and str(w.name) in err, err
    assert not Path("/tmp/gradpath-pwned").exists()  # nothing in the file was executed
