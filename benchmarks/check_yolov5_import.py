"""Check the YOLOv5 weight import against the real YOLOv5 code: their model and our converted one must give the
same outputs on the same input.

Two Python environments, never mixed: the *peer* venv has the ``yolov5`` pip package (7.0.x) or a clone of
ultralytics/yolov5 v7.0 (``--peer-repo``), ours has gradpath. This script runs itself in the peer venv
(``--peer-python``) as a subprocess to build their ``yolov5s-seg`` (or ``--model``), randomise its BatchNorm
statistics (or load ``--yolov5-weights``), and save its plain state dict, one input and their eval outputs
``(pred, proto)`` as tensor files in a work folder. Back here, gradpath converts the state dict (the library call
and ``gradpath convert``) and compares. gradpath is imported only on our side and yolov5 only on theirs.

Run (from the repository root, in gradpath's venv)::

    python -m venv /tmp/y5 && /tmp/y5/bin/pip install 'yolov5==7.0.*'
    .venv/bin/python benchmarks/check_yolov5_import.py --peer-python /tmp/y5/bin/python [--model yolov5s-seg]

Exit code 0 when every output agrees within --tol (absolute and relative, torch.allclose), 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

MODELS = ("yolov5n-seg", "yolov5s-seg", "yolov5m-seg", "yolov5l-seg", "yolov5x-seg")


# ------------------------------------------------------------------------------------------- their side (peer)
def run_peer(args: argparse.Namespace) -> int:
    """In the peer venv: build YOLOv5's SegmentationModel, save state dict, input and outputs under --workdir."""
    # the YOLOv5 code exists only in the peer environment, so it is imported here and nowhere else
    if args.peer_repo:
        sys.path.insert(0, args.peer_repo)
        from models.yolo import SegmentationModel  # a clone of ultralytics/yolov5
        cfg = Path(args.peer_repo) / "models" / "segment" / f"{args.model}.yaml"
    else:
        import yolov5  # the pip package (7.0.x)
        from yolov5.models.yolo import SegmentationModel
        cfg = Path(yolov5.__file__).parent / "models" / "segment" / f"{args.model}.yaml"
    work = Path(args.workdir)
    torch.manual_seed(args.seed)
    if args.yolov5_weights:
        # their own checkpoint pickles their classes: it can only be read with weights_only=False, in their
        # environment. Use it only with a file you trust.
        ck = torch.load(args.yolov5_weights, map_location="cpu", weights_only=False)
        model = (ck.get("ema") or ck["model"]).float()
    else:
        model = SegmentationModel(str(cfg), nc=args.nc)
        with torch.no_grad():  # BN statistics and affine parameters away from the identity a new model has
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.normal_(0.0, 0.2)
                    m.running_var.uniform_(0.5, 2.0)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0.0, 0.2)
    model.eval()
    x = torch.rand(1, 3, args.imgsz, args.imgsz, generator=torch.Generator().manual_seed(args.seed))
    with torch.no_grad():
        out = model(x)  # eval, not export: (pred, proto, raw level outputs)
    pred, proto = out[0], out[1]
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, work / "yolov5_state_dict.pt")
    torch.save({"x": x, "pred": pred, "proto": proto, "torch": str(torch.__version__),
                "nc": int(model.model[-1].nc)}, work / "yolov5_io.pt")
    return 0


# ----------------------------------------------------------------------------------------------- our side
def compare(name: str, ours: torch.Tensor, theirs: torch.Tensor, tol: float) -> dict:
    if ours.shape != theirs.shape:
        return {"output": name, "ok": False, "shape": [list(ours.shape), list(theirs.shape)]}
    d = (ours - theirs).abs()
    return {"output": name, "ok": bool(torch.allclose(ours, theirs, rtol=tol, atol=tol)), "shape": list(ours.shape),
            "max_abs_diff": float(d.max()), "max_rel_diff": float((d / theirs.abs().clamp_min(1.0)).max())}


def run_local(args: argparse.Namespace) -> int:
    # gradpath is imported on our side only: the same file runs in the peer venv, where gradpath is absent
    from gradpath.cli import main as gradpath_main
    from gradpath.engine.checkpoint import model_from_checkpoint
    from gradpath.models.convert_yolov5 import load_yolov5_seg

    with tempfile.TemporaryDirectory(prefix="yolov5-import-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        cmd = [args.peer_python, str(Path(__file__).resolve()), "--peer", "--workdir", str(work), "--model",
               args.model, "--nc", str(args.nc), "--imgsz", str(args.imgsz), "--seed", str(args.seed)]
        if args.peer_repo:
            cmd += ["--peer-repo", args.peer_repo]
        if args.yolov5_weights:
            cmd += ["--yolov5-weights", args.yolov5_weights]
        subprocess.run(cmd, check=True)  # a list, no shell
        io = torch.load(work / "yolov5_io.pt", map_location="cpu", weights_only=True)
        model = load_yolov5_seg(work / "yolov5_state_dict.pt").eval()
        out = work / "converted.pt"
        if gradpath_main(["convert", "--from", "yolov5", str(work / "yolov5_state_dict.pt"), "-o", str(out),
                          "--imgsz", str(args.imgsz)]) != 0:
            return 1
        from_ck, _ = model_from_checkpoint(out, expect_task="segment")
        rows = []
        with torch.no_grad():
            for label, m in (("library", model), ("gradpath convert", from_ck.eval())):
                pred, proto = m(io["x"])
                rows += [dict(compare("pred", pred, io["pred"], args.tol), path=label),
                         dict(compare("proto", proto, io["proto"], args.tol), path=label)]
        cfg = model.gradpath_config
        summary = {"yolov5_model": args.yolov5_weights or args.model, "gradpath_model": model.gradpath_name,
                   "width": cfg.width, "depth": cfg.depth, "num_classes": cfg.num_classes, "imgsz": args.imgsz,
                   "peer_torch": io["torch"], "torch": str(torch.__version__), "tol": args.tol, "results": rows}
        print(json.dumps(summary, indent=2))
        ok = all(r["ok"] for r in rows)
        print("OK: outputs agree" if ok else "MISMATCH: see the rows with ok=false")
        return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peer-python", help="python of the venv that has yolov5 (7.0.x) installed")
    p.add_argument("--peer-repo", help="use a clone of ultralytics/yolov5 v7.0 at this path instead of the pip package")
    p.add_argument("--model", default="yolov5s-seg", choices=MODELS, help="their config (default yolov5s-seg)")
    p.add_argument("--yolov5-weights", help="their trained .pt (read by the peer with weights_only=False: trusted "
                   "files only) instead of a randomised model")
    p.add_argument("--nc", type=int, default=80, help="classes of the randomised model (default 80)")
    p.add_argument("--imgsz", type=int, default=320, help="square input size (default 320)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol", type=float, default=1e-4, help="absolute and relative tolerance (default 1e-4)")
    p.add_argument("--workdir", help="keep the exchanged files here (default: a temporary folder)")
    p.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)  # set when run as the peer subprocess
    args = p.parse_args(argv)
    if args.peer:
        return run_peer(args)
    if not args.peer_python:
        p.error("--peer-python is required")
    return run_local(args)


if __name__ == "__main__":
    sys.exit(main())
