"""What ``val``, ``predict`` and ``export`` share: a trained checkpoint, and the input size it runs at."""
from __future__ import annotations

from typing import Any


def add_weights_args(p) -> None:
    p.add_argument("--weights", required=True,
                   help="checkpoint written by `gradpath train` (e.g. runs/segment/x/weights/best.pt)")
    p.add_argument("--imgsz", type=int, help="square input size (default: the training size stored in the checkpoint)")


def load_weights(args) -> tuple[Any, dict[str, Any], int]:
    """(model, checkpoint meta {names, imgsz}, input size): ``--imgsz``, else the training size, else the model's."""
    from gradpath.engine.checkpoint import checkpoint_meta, model_from_checkpoint

    model, ck = model_from_checkpoint(args.weights)
    meta = checkpoint_meta(ck)
    imgsz = args.imgsz or meta["imgsz"] or int(getattr(model, "default_imgsz", 640))
    return model, meta, imgsz
