"""``gradpath predict --weights W --source IMG|DIR``: annotated images and a JSON of boxes and masks."""
from __future__ import annotations

from gradpath.commands._weights import add_weights_args, load_weights


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="detect and segment objects in images with a trained detector",
                       description="Letterbox each image, run the checkpoint, decode masks at the original "
                       "resolution; write annotated images and predictions.json (boxes in pixels, masks as COCO "
                       "RLE) to --out.")
    add_weights_args(p)
    p.add_argument("--source", required=True, help="an image file or a folder of images")
    p.add_argument("--out", default="runs/segment/predict", help="output folder (default runs/segment/predict)")
    p.add_argument("--conf", type=float, default=0.25, help="confidence threshold (default 0.25)")
    p.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold (default 0.45)")
    p.add_argument("--max-det", type=int, default=300, help="detections kept per image (default 300)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or N (default: CUDA if present, else CPU)")
    p.add_argument("--no-images", action="store_true", help="write predictions.json only")
    p.set_defaults(func=run)


def run(args) -> int:
    from gradpath.engine.utils import deploy_model, select_device
    from gradpath.tasks.segment.predict import predict

    model, meta, imgsz = load_weights(args)
    device = select_device(args.device)
    recs = predict(deploy_model(model, device), args.source, args.out, imgsz=imgsz, conf_thres=args.conf, iou_thres=args.iou,
                   max_det=args.max_det, names=meta["names"], device=device, save_images=not args.no_images)
    n = sum(len(r["detections"]) for r in recs)
    print(f"{len(recs)} images, {n} detections → {args.out}/predictions.json")
    return 0
