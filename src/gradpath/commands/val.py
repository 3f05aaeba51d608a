"""``gradpath val --weights W --data D``: COCO box and mask AP of a trained detector on a dataset split."""
from __future__ import annotations

import json

from gradpath.commands._format import fmt_num, table
from gradpath.commands._weights import add_weights_args, load_weights


def add_parser(sub) -> None:
    p = sub.add_parser("val", help="evaluate a trained detector with the COCO metric (box and mask AP)",
                       description="Run a checkpoint over a dataset split and score it with pycocotools COCOeval "
                       "(box and mask AP@[.5:.95], AP50, AP75, per class), in original image coordinates.")
    add_weights_args(p)
    p.add_argument("--data", required=True, help="dataset: `shapes` or a dataset yaml")
    p.add_argument("--split", default="val", choices=["val", "train"], help="split to evaluate (default val)")
    p.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    p.add_argument("--conf", type=float, default=0.001, help="confidence threshold (default 0.001, as COCO evaluation wants)")
    p.add_argument("--iou", type=float, default=0.6, help="NMS IoU threshold (default 0.6)")
    p.add_argument("--max-det", type=int, default=300, help="detections kept per image (default 300)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or N (default: CUDA if present, else CPU)")
    p.add_argument("--workers", type=int, default=0, help="data-loader worker processes (default 0)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from torch.utils.data import DataLoader

    from gradpath.engine.utils import check_imgsz, deploy_model, select_device
    from gradpath.errors import GradpathError
    from gradpath.tasks.segment import validate

    if args.batch < 1:
        raise GradpathError(f"--batch must be >= 1, got {args.batch}")
    model, _, imgsz = load_weights(args)
    check_imgsz(imgsz)
    from gradpath.data import build_dataset, collate_fn, load_data_config

    cfg = load_data_config(args.data)
    if cfg.nc != model.num_classes:
        raise GradpathError(f"{args.weights} predicts {model.num_classes} classes but {args.data} has {cfg.nc}")
    ds = build_dataset(cfg, split=args.split, imgsz=imgsz, augment=False)
    if len(ds) == 0:
        raise GradpathError(f"the {args.split} split of {args.data} is empty")
    device = select_device(args.device)
    model = deploy_model(model, device)
    loader = DataLoader(ds, batch_size=args.batch, shuffle=False, num_workers=args.workers, collate_fn=collate_fn)
    m = validate(model, loader, ds, device, conf_thres=args.conf, iou_thres=args.iou, max_det=args.max_det,
                 progress=not args.json)
    if args.json:
        print(json.dumps(m, indent=2))
        return 0
    rows = [["all", sum(c["instances"] for c in m["per_class"])] + [fmt_num(m[k][q], 3) for k in ("box", "mask")
                                                                    for q in ("map50", "map")]]
    for c in m["per_class"]:
        rows.append([c["name"], c["instances"], fmt_num(c["box_map50"], 3), fmt_num(c["box_map"], 3),
                     fmt_num(c["mask_map50"], 3), fmt_num(c["mask_map"], 3)])
    print(f"{args.weights} on {args.data} {args.split} ({m['images']} images, imgsz {imgsz}, {device})")
    print(table(["class", "instances", "box AP50", "box AP", "mask AP50", "mask AP"], rows, "lrrrrr"))
    sp = m["speed_ms"]
    print(f"speed per image: {sp['inference']:.1f} ms inference, {sp['nms']:.1f} ms NMS")
    print(f"box mAP50={m['box']['map50']:.3f} mask mAP50={m['mask']['map50']:.3f}")
    return 0
