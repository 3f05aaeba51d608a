"""The classification task's part of ``gradpath val``, ``predict`` and ``export``: what it runs and prints."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from gradpath.data.classify import ClassifyDataset, classify_collate, eval_transform, load_classify_data
from gradpath.data.images import list_images, read_image
from gradpath.deploy import deploy_model, export_model
from gradpath.engine.checkpoint import model_config_dict, plain
from gradpath.checks import check_device
from gradpath.errors import DataError, GradpathError
from gradpath.formatting import fmt_num, table
from gradpath.tasks.classify.metrics import classification_metrics


def _names(ck: Mapping[str, Any], model: nn.Module) -> list[str]:
    return list((ck.get("meta") or {}).get("names") or [str(i) for i in range(int(model.num_classes))])


def run_val(args: argparse.Namespace, model: nn.Module, ck: Mapping[str, Any], imgsz: int) -> int:
    try:
        data = load_classify_data(args.data)
    except DataError as e:  # often detection data given to a classifier: say which kind of model this is
        raise DataError(f"{args.weights} is a classifier ({ck['model']['name']}); {e}") from None
    names = _names(ck, model)
    if list(data.names) != names:
        raise GradpathError(f"{args.weights} was trained on classes {names[:5]}{'...' if len(names) > 5 else ''} "
                            f"but {args.data} has {list(data.names)[:5]}{'...' if len(data.names) > 5 else ''}")
    ds = ClassifyDataset(data, args.split, imgsz, augment=False)
    if len(ds) == 0:
        raise GradpathError(f"the {args.split} split of {args.data} is empty")
    device = check_device(args.device)
    model = deploy_model(model, device)
    loader = DataLoader(ds, batch_size=args.batch, shuffle=False, num_workers=args.workers, collate_fn=classify_collate)
    logits, labels = [], []
    with torch.no_grad():
        for img, y in tqdm(loader, desc="val", disable=args.json, leave=False):
            logits.append(model(img.to(device).float().div_(255.0)).float().cpu())
            labels.append(y)
    m = classification_metrics(torch.cat(logits), torch.cat(labels), names)
    if args.json:
        print(json.dumps({k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in m.items()}, indent=2))
        return 0
    counts = torch.bincount(torch.cat(labels), minlength=len(names)).tolist()
    rows = [["all", len(ds), fmt_num(m["top1"], 4)]]
    rows += [[n, c, "-" if a is None else fmt_num(a, 4)] for n, c, a in zip(names, counts, m["per_class"])]
    print(f"{args.weights} on {args.data} {args.split} ({len(ds)} images, imgsz {imgsz}, {device})")
    print(table(["class", "images", "accuracy"], rows, "lrr"))
    print(f"top1={m['top1']:.4f} top5={m['top5']:.4f}")
    return 0


def add_predict_args(p: argparse._ArgumentGroup) -> None:
    p.add_argument("--topk", type=int, default=5, help="classify: classes reported per image (default 5)")


def run_predict(args: argparse.Namespace, model: nn.Module, ck: Mapping[str, Any], imgsz: int) -> int:
    """Top-k classes of every image (the validation transform: short side resized, centre crop)."""
    if args.topk < 1:
        raise GradpathError(f"--topk must be >= 1, got {args.topk}")
    names = _names(ck, model)
    device = check_device(args.device)
    model = deploy_model(model, device)
    files = list_images(args.source)
    records = []
    with torch.no_grad():
        for path in tqdm(files, desc="predict", unit="img"):
            img = eval_transform(read_image(path), imgsz)
            x = torch.from_numpy(img.transpose(2, 0, 1).copy())[None].to(device).float().div_(255.0)
            prob = model(x).float().softmax(1)[0].cpu()
            top = prob.topk(min(args.topk, len(names)))
            records.append({"file": str(path), "top": [{"class": int(c), "name": names[int(c)], "score": round(float(s), 5)}
                                                     for s, c in zip(top.values, top.indices)]})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".predictions.json.tmp"
    tmp.write_text(json.dumps(records, indent=1))
    tmp.replace(out / "predictions.json")
    for r in records[:10]:
        print(f"{r['file']}: " + ", ".join(f"{t['name']} {t['score']:.3f}" for t in r["top"][:3]))
    print(f"{len(records)} images → {out / 'predictions.json'}")
    return 0


def export_metadata(model: nn.Module, ck: Mapping[str, Any], imgsz: int) -> dict[str, Any]:
    """Class names, input size and preprocessing, and the registered model name with its resolved config (which
    rebuild the network from a safetensors file)."""
    return {"task": "classify", "model": model.gradpath_name, "config": plain(model_config_dict(model)),
            "imgsz": imgsz, "names": _names(ck, model), "outputs": "logits (1, num_classes)",
            "input": "RGB float in [0, 1], short side resized to imgsz / 0.875 then centre-cropped"}


def run_export(args: argparse.Namespace, model: nn.Module, ck: Mapping[str, Any], imgsz: int, out: Path) -> dict:
    meta = export_metadata(model, ck, imgsz)
    return export_model(model, args.format, out, imgsz=imgsz, metadata=meta, opset=args.opset,
                        output_names=("logits",))
