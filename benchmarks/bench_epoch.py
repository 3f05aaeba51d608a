"""One whole training epoch, data loading included: gradpath vs ultralytics at equal FLOPs, each side with its own
trainer and data pipeline on the same ``shapes`` images.

Why: the project's goal is "seg training vs ultralytics yolov8n-seg at equal FLOPs: >= 1.1x for a whole epoch on
``shapes`` with data loading, at the same imgsz, batch and workers". benchmarks/bench_train.py times the training
step alone (same tensors both sides, no loader); this times what a user waits for.

What runs, in a fresh process per side and round (rounds alternate ours, theirs, ours, ...: benchmarks/_peer.py):
- gradpath: ``gradpath.runner.train`` (what ``gradpath train --task segment`` calls) of ``yolor-elan`` at
  ``--width/--depth`` (0.26/0.34: yolov8n-seg's FLOPs at 320, see bench_train.py), AdamW lr0 0.001 (the CLI's
  AdamW default), no pretrained weights, on the ``shapes`` train split read natively (COCO json, polygon and RLE
  masks; ``default_shapes_root(n_train=--n-train)``).
- ultralytics: ``YOLO("yolov8n-seg.yaml").train(...)`` built from its yaml (no weights, ``pretrained=False``),
  ``optimizer="AdamW", lr0=0.001``, on the SAME image files exported to its YOLO-seg layout (symlinked images,
  ``labels/*.txt`` of normalised polygons; an RLE mask, i.e. a circle or an occluded shape, becomes its largest
  external contour: pycocotools + cv2.findContours, done in the peer venv).
- both: the same ``--imgsz``, ``--batch``, ``--workers``, ``--epochs``, ``device=cpu``, seed 0, no image cache
  (``--cache``: both cache in RAM; gradpath is told either way, since it caches the embedded sets by default),
  no plots, AMP off (CPU), each side's default augmentation (both: mosaic 1.0, HSV 0.015/0.7/0.4, translate 0.1,
  scale 0.5, fliplr 0.5, no mixup or copy-paste; albumentations is not in the peer venv). ultralytics gets
  ``close_mosaic=0``: its default 10 switches mosaic off for the last 10 epochs, i.e. for every epoch of a run this
  short, while a real run trains most epochs with it. Validation is never inside a timed epoch: gradpath validates
  only after its last epoch (``val_interval=epochs``), ultralytics has ``val=False`` (it still validates after its
  last epoch and once more with best.pt); both validate on the same 2-image val split to keep that cheap.
- threads: the benchmark starts each process with ``torch.set_num_threads(--threads)``. gradpath's trainer lowers
  that itself to ``cores - workers`` when threads + workers oversubscribe the cores (engine/environment.py
  ``cpu_threads_for``; 2 cores, 1 worker -> 1 thread). ultralytics on its own sets ``OMP_NUM_THREADS=1`` at
  import when unset, ``torch.set_num_threads(min(8, cores - 1))`` in ``select_device``, and ``workers=0`` on CPU in
  ``BaseTrainer.__init__``; an ``on_pretrain_routine_start`` callback (after both) gives it the thread count
  gradpath trains with and ``--workers`` instead (``--peer-cpu-defaults`` keeps ultralytics' own). The counts in
  effect during the epoch are read inside each trainer and printed.

The number: seconds of training epoch 2 (epoch 1 warms caches and the allocator; with ``--epochs`` N, epochs 2..N),
each side's median over all rounds, and images/s = train images / that. gradpath: the ``time_s`` column of its run
folder's results.csv, which the Trainer times around ``_train_epoch`` (seeding, loader iterator start, every batch;
not validation or checkpoints). ultralytics logs only a cumulative ``time`` (results.csv, since training started,
taken after validation), so its epoch is read with ``time.perf_counter`` in its own ``on_train_epoch_start`` and
``on_train_epoch_end`` callbacks: the same span (scheduler step, loader iterator, every batch; not validation or
checkpoints); its results.csv deltas are kept in the JSON for reference.

Differences that remain, by design of each trainer: ultralytics' loader keeps its workers across epochs
(``InfiniteDataLoader``, prefetch 4) and they prepare the next epoch's first batches while the previous epoch
ends, whereas gradpath's loader starts its workers at each epoch start (``persistent_workers=False``, prefetch 2),
inside the timed span; gradpath trains channels-last on CPU, ultralytics NCHW; gradpath snapshots the RNG and BN
buffers before every batch (exact mid-epoch resume); both train with ``torch.use_deterministic_algorithms(True,
warn_only=True)`` (their default), but ultralytics also turns off that mode's NaN fill of every new tensor
(``torch.utils.deterministic.fill_uninitialized_memory = False``) and gradpath does not; gradpath's labels are the
exact visible masks, ultralytics' their polygons, and each side builds its own mask targets. Both accumulate
gradients to a nominal batch of 64 and clip at norm 10 (ultralytics' accumulation warm-up ends with epoch 1 in a
2-epoch run).

ultralytics is NOT a dependency: it runs in its own venv with the same torch (checked, printed), ``--peer-python``
(see bench_train.py). Without a peer only gradpath's numbers are printed. Slow (two trainings per side and round):
run it on an otherwise idle machine. A benchmark, never a timed test.

    .venv/bin/python benchmarks/bench_epoch.py --peer-python /tmp/peers-venv/bin/python --json epoch.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from _peer import Peer, check_torch, row, write_result

# gradpath's worker, run by this interpreter: argv[1] = intra-op threads at start.
OURS = r'''
import csv, torch
torch.set_num_threads(int(sys.argv[1]))
from gradpath import runner
def train(data, imgsz, batch, workers, epochs, width, depth, project, name, cache):
    seen = {}
    def log(msg):
        seen.setdefault("threads", torch.get_num_threads())  # first called inside fit(): its thread setting
        print(msg, flush=True)
    tr = runner.train("segment", "yolor-elan", task_options={"data": data, "imgsz": imgsz, "cache": cache},
                      model_overrides={"width": width, "depth": depth},
                      train_args={"epochs": epochs, "batch": batch, "workers": workers, "device": "cpu",
                                  "optimizer": "adamw", "lr0": 0.001, "val_interval": epochs, "plots": False,
                                  "project": project, "name": name},
                      exist_ok=True, log=log)
    with open(tr.save_dir / "results.csv", newline="") as f:
        epoch_s = [float(r["time_s"]) for r in csv.DictReader(f)]
    print(flush=True)  # end any progress-bar line before the reply
    return {"epoch_s": epoch_s, "threads": seen.get("threads"), "workers": tr.train_loader.num_workers,
            "images": len(tr.train_ds), "params": sum(p.numel() for p in tr.model.parameters())}
_serve({"train": train})
'''

PEER = r'''
import os
os.environ.setdefault("YOLO_OFFLINE", "1")  # no download or online check is attempted (there is no network)
import csv, json, time
from pathlib import Path
import torch
def hello():
    import ultralytics
    return {"torch": torch.__version__, "lib": "ultralytics " + ultralytics.__version__}
def _polygon(seg, h, w):
    import cv2, numpy as np
    from pycocotools import mask as mu
    if isinstance(seg, list):  # COCO polygons: the largest
        polys = [np.asarray(p, np.float32).reshape(-1, 2) for p in seg if len(p) >= 6]
        return max(polys, key=cv2.contourArea, default=None)
    rle = mu.frPyObjects(seg, h, w) if isinstance(seg["counts"], list) else \
        {"size": seg["size"], "counts": seg["counts"].encode()}
    cs, _ = cv2.findContours(mu.decode(rle), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    c = max(cs, key=cv2.contourArea, default=None)
    return None if c is None or len(c) < 3 else c.reshape(-1, 2).astype(np.float32)
def export(ann, images, out, split, limit):
    """A COCO split -> out/images/<split> (symlinks) + out/labels/<split>/*.txt (class x1 y1 x2 y2 ..., 0-1)."""
    d = json.loads(Path(ann).read_text())
    ims = d["images"][:limit] if limit else d["images"]
    cls = {c["id"]: k for k, c in enumerate(d["categories"])}
    anns = {}
    for a in d["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    idir, ldir = Path(out, "images", split), Path(out, "labels", split)
    idir.mkdir(parents=True); ldir.mkdir(parents=True)
    n = {"images": len(ims), "instances": 0, "from_rle": 0, "dropped": 0}
    for im in ims:
        w, h = im["width"], im["height"]
        (idir / im["file_name"]).symlink_to(Path(images, im["file_name"]).resolve())
        lines = []
        for a in anns.get(im["id"], []):
            p = _polygon(a["segmentation"], h, w)
            if p is None:
                n["dropped"] += 1
                continue
            n["instances"] += 1; n["from_rle"] += isinstance(a["segmentation"], dict)
            xy = (p / [w, h]).clip(0, 1).ravel()
            lines.append(" ".join([str(cls[a["category_id"]]), *(f"{v:.6f}" for v in xy)]))
        (ldir / (Path(im["file_name"]).stem + ".txt")).write_text("".join(s + "\n" for s in lines))
    return n
def train(data, model, imgsz, batch, workers, threads, epochs, project, name, cpu_defaults, cache):
    from ultralytics import YOLO
    m = YOLO(model)
    t0, sec, seen = {}, {}, {}
    def setup(tr):  # after BaseTrainer.__init__ set workers=0 and select_device set its threads
        if not cpu_defaults:
            tr.args.workers = workers
            torch.set_num_threads(threads)
    def start(tr):
        seen.setdefault("threads", torch.get_num_threads())
        t0[tr.epoch] = time.perf_counter()
    def end(tr):
        sec[tr.epoch] = time.perf_counter() - t0[tr.epoch]
        seen.update(workers=tr.train_loader.num_workers, images=len(tr.train_loader.dataset),
                    params=sum(p.numel() for p in tr.model.parameters()), csv=str(tr.csv))
    m.add_callback("on_pretrain_routine_start", setup)
    m.add_callback("on_train_epoch_start", start)
    m.add_callback("on_train_epoch_end", end)
    m.train(data=data, imgsz=imgsz, batch=batch, workers=workers, epochs=epochs, device="cpu", optimizer="AdamW",
            lr0=0.001, pretrained=False, val=False, plots=False, amp=False, cache="ram" if cache else False,
            close_mosaic=0, seed=0,
            project=project, name=name, exist_ok=True)
    with open(seen.pop("csv"), newline="") as f:
        cum = [float({k.strip(): v for k, v in r.items()}["time"]) for r in csv.DictReader(f)]
    print(flush=True)
    return {"epoch_s": [sec[e] for e in sorted(sec)], "csv_time_deltas": [b - a for a, b in zip([0.0] + cum, cum)],
            **seen}
_serve({"hello": hello, "export": export, "train": train})
'''


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=1,
                   help="loader worker processes on both sides (default 1: the reference machine has 2 cores, one "
                   "for the worker and one for training; gradpath's trainer then trains with 1 thread)")
    p.add_argument("--threads", type=int, default=2,
                   help="intra-op threads each process starts with; gradpath's trainer lowers it to cores - workers "
                   "when they would oversubscribe the cores, and ultralytics is given what gradpath trains with")
    p.add_argument("--n-train", type=int, default=600, help="shapes train images (600 = the default set)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per run; epochs 2..N are timed")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds (ours, theirs, ...), fresh processes")
    p.add_argument("--width", type=float, default=0.26,
                   help="gradpath yolor-elan width; 0.26 matches yolov8n-seg FLOPs at 320 (bench_train.py)")
    p.add_argument("--depth", type=float, default=0.34)
    p.add_argument("--peer-python", default="/tmp/peers-venv/bin/python", help="python of a venv with ultralytics")
    p.add_argument("--peer-model", default="yolov8n-seg.yaml")
    p.add_argument("--peer-cpu-defaults", action="store_true",
                   help="let ultralytics keep its own CPU settings (workers=0, min(8, cores-1) threads)")
    p.add_argument("--allow-torch-mismatch", action="store_true")
    p.add_argument("--cache", action="store_true",
                   help="both sides keep decoded images in RAM (gradpath cache=True, ultralytics cache='ram'); "
                   "default: neither does, so both decode every epoch (gradpath's own default caches the "
                   "embedded sets, so it is set explicitly here)")
    p.add_argument("--json", metavar="OUT", help="also write the results as JSON (benchmarks/run_all.py reads it)")
    args = p.parse_args()
    if args.epochs < 2:
        p.error("--epochs must be >= 2 (epoch 1 is the warm-up)")

    import torch
    import yaml

    from gradpath.data.shapes import default_shapes_root
    from gradpath.engine.environment import cpu_threads_for

    torch.set_num_threads(args.threads)
    train_threads = cpu_threads_for(args.workers, 1) or args.threads  # what gradpath's trainer will use
    root = default_shapes_root(n_train=args.n_train)
    tmp = tempfile.TemporaryDirectory(prefix="bench_epoch-")
    work = Path(tmp.name)
    # gradpath's data: the shapes train split as is; val = the first 2 val images (validation is outside the timed
    # epoch; it only has to be cheap)
    val = json.loads((root / "annotations" / "instances_val.json").read_text())
    keep = {im["id"] for im in val["images"][:2]}
    val.update(images=val["images"][:2], annotations=[a for a in val["annotations"] if a["image_id"] in keep])
    (work / "val2.json").write_text(json.dumps(val))
    names = [c["name"] for c in val["categories"]]
    ours_yaml = work / "gradpath.yaml"
    ours_yaml.write_text(yaml.safe_dump({
        "path": str(root), "names": names,
        "train": {"images": "images/train", "annotations": "annotations/instances_train.json"},
        "val": {"images": "images/val", "annotations": str(work / "val2.json")}}))

    info: dict = {}
    have_peer = Path(args.peer_python).exists()
    if have_peer:
        with Peer(args.peer_python, PEER, []) as prep:
            info = prep.ask("hello")
            check_torch(torch.__version__, info["torch"], args.allow_torch_mismatch)
            yolo = work / "yolo"
            info["export"] = prep.ask("export", str(root / "annotations" / "instances_train.json"),
                                      str(root / "images" / "train"), str(yolo), "train", 0)
            prep.ask("export", str(root / "annotations" / "instances_val.json"), str(root / "images" / "val"),
                     str(yolo), "val", 2)
        peer_yaml = work / "ultralytics.yaml"
        peer_yaml.write_text(yaml.safe_dump({"path": str(yolo), "train": "images/train", "val": "images/val",
                                             "names": dict(enumerate(names))}))
        e = info["export"]
        print(f"exported {e['images']} train images for ultralytics: {e['instances']} polygons "
              f"({e['from_rle']} from RLE masks), {e['dropped']} instances without a contour dropped")
    else:
        print(f"(no peer at {args.peer_python}: gradpath only)")
    model = args.peer_model.removesuffix(".yaml")
    print(f"shapes {args.n_train} train images ({root}), imgsz {args.imgsz}, batch {args.batch}, workers "
          f"{args.workers}, {args.threads} threads at start, {args.epochs} epochs x {args.rounds} rounds", flush=True)

    def ours(r: int) -> dict:
        with Peer(sys.executable, OURS, [str(args.threads)]) as w:
            return w.ask("train", str(ours_yaml), args.imgsz, args.batch, args.workers, args.epochs, args.width,
                         args.depth, str(work / "runs"), f"gradpath-r{r}", args.cache)

    def theirs(r: int) -> dict:
        with Peer(args.peer_python, PEER, []) as w:
            return w.ask("train", str(peer_yaml), args.peer_model, args.imgsz, args.batch, args.workers,
                         train_threads, args.epochs, str(work / "runs"), f"{model}-r{r}", args.peer_cpu_defaults,
                         args.cache)

    sides = {"gradpath": ours, **({model: theirs} if have_peer else {})}
    runs: dict[str, list[dict]] = {k: [] for k in sides}
    try:
        for r in range(args.rounds):
            for k, fn in sides.items():
                res = fn(r)
                runs[k].append(res)
                timed = res["epoch_s"][1:]
                print(f"round {r + 1} {k}: epoch(s) 2..{args.epochs} " + ", ".join(f"{s:.2f}" for s in timed)
                      + f" s ({res['images'] / statistics.median(timed):.2f} img/s); training threads "
                      f"{res['threads']}, loader workers {res['workers']}", flush=True)
    finally:
        tmp.cleanup()

    sec = {k: statistics.median(s for res in v for s in res["epoch_s"][1:]) for k, v in runs.items()}
    size = {k: {"params": v[0]["params"], "images": v[0]["images"], "threads": v[0]["threads"],
                "workers": v[0]["workers"]} for k, v in runs.items()}
    ips = {k: size[k]["images"] / sec[k] for k in sec}
    print(f"{'side':<28}{'params M':>9}{'images':>8}{'threads':>8}{'workers':>8}{'epoch s':>9}{'img/s':>8}")
    for k, z in size.items():
        print(f"{k:<28}{z['params'] / 1e6:>9.2f}{z['images']:>8}{z['threads']:>8}{z['workers']:>8}{sec[k]:>9.2f}"
              f"{ips[k]:>8.2f}")
    if have_peer:
        g, q = size["gradpath"], size[model]
        if (g["threads"], g["workers"], g["images"]) != (q["threads"], q["workers"], q["images"]):
            print("WARNING: the sides did not train with the same threads / workers / images (see the table)")
        print(f"ratio gradpath/peer: whole-epoch training throughput {ips['gradpath'] / ips[model]:.2f}x "
              "(>1 = gradpath faster)")
    work_txt = (f"seg training epoch with data loading, {args.n_train} shapes images b{args.batch}@{args.imgsz}, "
                f"{args.workers} worker(s), yolor-elan (w {args.width})" + (f" vs {model}" if have_peer else ""))
    rows = [row("seg_epoch", work_txt, ips["gradpath"], ips.get(model), "img/s", True)]
    write_result(args, "epoch", info, rows, sides=size, runs=runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
