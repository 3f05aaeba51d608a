"""``build_dataset`` / ``collate_fn``: the detection + instance-segmentation samples.

Each item is one letterboxed (validation) or augmented (training: mosaic, affine, HSV, flip) image with its
instances as contiguous class ids, normalized cxcywh boxes and binary masks at ``imgsz // 4`` (the resolution of
the YOLOv5-seg prototype masks). ``coco_gt()`` gives the split in original image coordinates for pycocotools,
crowd regions included, which is what the paper's COCO numbers are computed against.
"""
from __future__ import annotations

import contextlib
import io
import math
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from torch.utils.data import Dataset

from gradpath.data import augment as aug
from gradpath.data.coco import parse_coco_split
from gradpath.data.config import DataConfig, load_data_config
from gradpath.data.images import image_size, letterbox_params, place_on_canvas, read_image, resize_long_side
from gradpath.data.records import ImageRecord, Problems
from gradpath.data.yolo import parse_yolo_split
from gradpath.errors import DataError, GradpathError, GradpathWarning
from gradpath.hyp import SegmentHyp, segment_hyp


def decode_masks(rec: ImageRecord, h0: int, w0: int, boxes: np.ndarray) -> np.ndarray:
    """(h0, w0, n) uint8 instance masks at original resolution; a box-only instance's mask is its box."""
    n = len(rec.segments)
    out = np.zeros((h0, w0, n), np.uint8)
    rles, idx = [], []
    for k, seg in enumerate(rec.segments):
        if seg is None:
            x1, y1, x2, y2 = boxes[k]
            out[max(int(math.floor(y1)), 0):int(math.ceil(y2)), max(int(math.floor(x1)), 0):int(math.ceil(x2)), k] = 1
            continue
        if isinstance(seg, list):
            polys = [list(np.asarray(p, np.float64) * np.tile([w0, h0], len(p) // 2)) if rec.normalized else p
                     for p in seg]
            rles.append(mask_utils.merge(mask_utils.frPyObjects(polys, h0, w0)))
        else:
            rles.append(seg)
        idx.append(k)
    if rles:
        out[..., idx] = mask_utils.decode(rles)
    return out


class DetectionDataset(Dataset):
    """Images + instances of one split. Randomness comes from Python's ``random`` module, which DataLoader
    seeds per worker (a per-dataset generator would be copied into every worker and repeat itself)."""

    def __init__(self, records: list[ImageRecord], names: list[str], class_to_category: list[int], imgsz: int,
                 augment: bool, hyp: SegmentHyp | dict | None, gt_source: dict, root: Path | None = None,
                 cache: bool = False, rect: bool = False, batch_size: int = 16) -> None:
        if imgsz % 32 or imgsz <= 0:
            raise GradpathError(f"imgsz must be a positive multiple of 32, got {imgsz}")
        if rect and augment:
            raise GradpathError("rect batches are for validation: they cannot be combined with augmentation")
        if rect and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            raise GradpathError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.rect = rect
        self.shapes: list[tuple[int, int]] | None = None
        if rect:
            records, self.shapes = rect_batches(records, imgsz, batch_size)
        self.records = records
        self.names = list(names)
        self.class_to_category = list(class_to_category)
        self.imgsz = imgsz
        self.augment = augment
        self.hyp = segment_hyp(hyp)
        self.root = root
        self._gt_source = gt_source
        self._coco = None
        self.cache = cache
        self._cache: dict[int, tuple] = {}
        if cache:  # up front, in this process: see load()
            for i in range(len(self.records)):
                self._cache[i] = self._decode(i)

    def __len__(self) -> int:
        return len(self.records)

    def __getstate__(self) -> dict:  # keep worker pickles small: the COCO index is rebuilt on demand
        state = dict(self.__dict__)
        state["_coco"] = None
        return state

    # -- loading ---------------------------------------------------------------------------------------------
    def load(self, i: int) -> tuple:
        """Image resized (long side = imgsz), original-pixel xyxy boxes, class ids, (h0, w0, n) masks, which
        instances have a real mask, original (h0, w0), letterbox parameters.

        With ``cache`` every image was decoded once when the dataset was built: a mosaic reads 4 images per
        sample, and decoding was then most of an item's cost (``shapes`` at 160 px: 19.6 ms an item decoding,
        5.0 ms from the cache). Not lazily: the training loader's workers live one epoch, so a cache they filled
        died with them; filled here it reaches every worker (inherited on fork, pickled with the dataset on spawn).
        """
        return self._cache[i] if self.cache else self._decode(i)

    def _decode(self, i: int) -> tuple:
        rec = self.records[i]
        img = read_image(rec.file)
        h0, w0 = img.shape[:2]
        if rec.height is not None and (rec.height, rec.width) != (h0, w0):
            raise DataError(f"{rec.file}: image is {w0}x{h0} but its annotations say {rec.width}x{rec.height}")
        boxes = rec.boxes * np.array([w0, h0, w0, h0], np.float32) if rec.normalized else rec.boxes
        masks = decode_masks(rec, h0, w0, boxes)
        has_seg = np.array([s is not None for s in rec.segments], bool)
        lb = letterbox_params(h0, w0, self.imgsz)
        img = resize_long_side(img, lb[1], lb[2])
        return img, boxes, rec.cls, masks, has_seg, (h0, w0), lb

    def __getitem__(self, i: int) -> dict[str, Any]:
        S = self.imgsz
        rng = random
        hyp = self.hyp
        # YOLOv5 applies copy-paste and mixup to mosaic samples only; so does this
        mosaic = self.augment and hyp.mosaic > 0 and rng.random() < hyp.mosaic
        img, boxes, cls, masks, shape0, lb = self._compose(i, mosaic, rng)
        H, W = img.shape[:2]
        if mosaic and hyp.mixup > 0 and rng.random() < hyp.mixup:
            img2, boxes2, cls2, masks2, _, _ = self._compose(rng.randrange(len(self)), True, rng)
            img = aug.mixup(img, img2, rng)
            boxes, cls, masks = (np.concatenate(pair) for pair in ((boxes, boxes2), (cls, cls2), (masks, masks2)))
        masks_t = torch.from_numpy(masks)
        if self.augment:
            if hyp.flipud > 0 and rng.random() < hyp.flipud:  # no draw when off: seeded runs keep their stream
                img = img[::-1]
                masks_t = masks_t.flip(-2)
                boxes = np.stack([boxes[:, 0], S - boxes[:, 3], boxes[:, 2], S - boxes[:, 1]], 1)
            if rng.random() < hyp.fliplr:
                img = img[:, ::-1]
                masks_t = masks_t.flip(-1)
                boxes = np.stack([S - boxes[:, 2], boxes[:, 1], S - boxes[:, 0], boxes[:, 3]], 1)
            img = aug.hsv_jitter(img, hyp.hsv_h, hyp.hsv_s, hyp.hsv_v, rng)
        b = torch.from_numpy(boxes).float() / torch.tensor([W, H, W, H], dtype=torch.float32)
        cxcywh = torch.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)
        r, _, _, left, top = lb
        return {
            "img": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))),
            "cls": torch.from_numpy(cls).float(),
            "boxes": cxcywh.reshape(-1, 4),
            "masks": masks_t.contiguous(),
            "image_id": int(self.records[i].image_id),
            "orig_shape": (int(shape0[0]), int(shape0[1])),
            "ratio_pad": ((r, r), (float(left), float(top))),
        }

    def _compose(self, i: int, mosaic: bool, rng: Any) -> tuple:
        """Image ``i`` letterboxed (or a mosaic around it), through the random affine when augmenting, with its
        surviving instances, and copy-paste on mosaics: ``(img (S, S, 3), xyxy boxes in canvas pixels, cls,
        masks (n, S/4, S/4), original shape, letterbox parameters)``."""
        S = self.imgsz
        hyp = self.hyp
        first = self.load(i)
        img0, boxes0, cls0, masks0, has_seg0, shape0, lb = first
        r, nh, nw, left, top = lb
        out_hw: int | tuple[int, int] = S
        if mosaic:
            canvas, parts = self._mosaic(i, first, rng)
        else:
            if self.shapes is not None:  # rect validation: this batch's canvas, the image centred in it
                out_hw = self.shapes[i]
                left, top = (out_hw[1] - nw) // 2, (out_hw[0] - nh) // 2
                lb = (r, nh, nw, left, top)
            canvas = place_on_canvas(img0, out_hw, left, top)
            A = aug.scale_translate(1.0, left, top) @ np.diag([nw / shape0[1], nh / shape0[0], 1.0])
            parts = [(boxes0, cls0, masks0, has_seg0, aug.Placement(A, (left, top, left + nw, top + nh)))]
        if self.augment:
            M, rotated = aug.random_affine(canvas.shape[:2], S, hyp, rng)
            img = aug.warp_image(canvas, M, S)
        else:
            M, rotated = np.eye(3), False
            img = canvas

        all_boxes, before, all_cls, all_masks, all_seg, origin = [], [], [], [], [], []
        for k, (boxes, cls, masks, has_seg, place) in enumerate(parts):
            after, _ = aug.instance_boxes(boxes, has_seg, masks, place, M, out_hw, rotated)
            all_boxes.append(after)
            before.append(aug.candidate_reference(boxes, place, canvas.shape[:2], M))
            all_cls.append(cls)
            all_masks.append(aug.sample_masks(masks, place, M, out_hw, aug.MASK_STRIDE))
            all_seg.append(has_seg)
            origin += [(k, j) for j in range(len(boxes))]
        boxes = np.concatenate(all_boxes)
        cls = np.concatenate(all_cls)
        masks = np.concatenate(all_masks)
        has_seg = np.concatenate(all_seg)
        if self.augment:
            area_thr = np.where(has_seg, aug.SEGMENT_AREA_THR, aug.BOX_AREA_THR)
            keep = aug.box_candidates(np.concatenate(before), boxes, area_thr=area_thr)
        else:
            keep = ((boxes[:, 2] - boxes[:, 0]) >= 1) & ((boxes[:, 3] - boxes[:, 1]) >= 1)
        boxes, cls, masks, has_seg = boxes[keep], cls[keep], masks[keep], has_seg[keep]
        origin = [o for o, kept in zip(origin, keep) if kept]
        if mosaic and hyp.copy_paste > 0:
            def full_mask(j: int) -> np.ndarray:  # instance j's mask at output resolution, only when pasted
                k, local = origin[j]
                m, place = parts[k][2], parts[k][4]
                return aug.sample_masks(m[:, :, local:local + 1], place, M, S, 1)[0].astype(bool)

            img, boxes, cls, masks = aug.copy_paste(img, boxes, cls, masks, has_seg, full_mask, hyp.copy_paste, rng)
        return img, boxes, cls, masks, shape0, lb

    def _mosaic(self, i: int, first: tuple, rng: Any) -> tuple[np.ndarray, list]:
        """Four images around a random centre of a 2S canvas (tiles cropped at the canvas edge)."""
        S = self.imgsz
        xc, yc = (int(rng.uniform(S / 2, 3 * S / 2)) for _ in range(2))
        idx = [i] + [rng.randrange(len(self)) for _ in range(3)]
        canvas = np.full((2 * S, 2 * S, 3), aug.FILL, dtype=np.uint8)
        parts = []
        for k, j in enumerate(idx):
            img, boxes, cls, masks, has_seg, shape0, lb = first if k == 0 else self.load(j)
            h, w = img.shape[:2]
            if k == 0:
                x1a, y1a, x2a, y2a = max(xc - w, 0), max(yc - h, 0), xc, yc
                x1b, y1b = w - (x2a - x1a), h - (y2a - y1a)
            elif k == 1:
                x1a, y1a, x2a, y2a = xc, max(yc - h, 0), min(xc + w, 2 * S), yc
                x1b, y1b = 0, h - (y2a - y1a)
            elif k == 2:
                x1a, y1a, x2a, y2a = max(xc - w, 0), yc, xc, min(2 * S, yc + h)
                x1b, y1b = w - (x2a - x1a), 0
            else:
                x1a, y1a, x2a, y2a = xc, yc, min(xc + w, 2 * S), min(2 * S, yc + h)
                x1b, y1b = 0, 0
            canvas[y1a:y2a, x1a:x2a] = img[y1b:y1b + (y2a - y1a), x1b:x1b + (x2a - x1a)]
            A = aug.scale_translate(1.0, x1a - x1b, y1a - y1b) @ np.diag([w / shape0[1], h / shape0[0], 1.0])
            parts.append((boxes, cls, masks, has_seg, aug.Placement(A, (x1a, y1a, x2a, y2a))))
        return canvas, parts

    # -- evaluation ground truth -----------------------------------------------------------------------------
    def coco_gt(self):
        """``pycocotools.coco.COCO`` of this split in original image coordinates (crowd regions kept)."""
        if self._coco is None:
            src = self._gt_source
            if src["format"] == "coco":
                _, gt = parse_coco_split(src["annotations"], src["images"], self.class_to_category,
                                         Problems(strict=True, root=self.root), check_files=False)
            else:
                gt = self._yolo_gt()
            coco = COCO()
            coco.dataset = gt
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
                coco.createIndex()
            self._coco = coco
        return self._coco

    def _yolo_gt(self) -> dict:
        images, anns = [], []
        for rec in self.records:
            if rec.height is None:
                h0, w0 = image_size(rec.file)
            else:
                h0, w0 = rec.height, rec.width
            images.append({"id": rec.image_id, "file_name": str(rec.file), "height": h0, "width": w0})
            scale = np.array([w0, h0, w0, h0]) if rec.normalized else np.ones(4)
            for k in range(len(rec.cls)):
                x1, y1, x2, y2 = (float(v) for v in rec.boxes[k] * scale)
                seg = rec.segments[k]
                if seg is None:
                    polys = [[x1, y1, x2, y1, x2, y2, x1, y2]]
                else:
                    polys = [[float(v) * (w0 if j % 2 == 0 else h0) if rec.normalized else float(v)
                              for j, v in enumerate(p)] for p in seg]
                area = float(mask_utils.area(mask_utils.merge(mask_utils.frPyObjects(polys, h0, w0))))
                anns.append({"id": len(anns) + 1, "image_id": rec.image_id,
                             "category_id": self.class_to_category[int(rec.cls[k])],
                             "bbox": [x1, y1, x2 - x1, y2 - y1], "area": area, "iscrowd": 0,
                             "segmentation": polys})
        cats = [{"id": c, "name": n} for c, n in zip(self.class_to_category, self.names)]
        return {"images": images, "annotations": anns, "categories": cats}


RECT_STRIDE, RECT_PAD = 32, 0.5  # rect canvases are multiples of the largest stride, with half a stride of margin


def rect_batches(records: list[ImageRecord], imgsz: int, batch_size: int) -> tuple[list[ImageRecord],
                                                                                    list[tuple[int, int]]]:
    """YOLOv5's rectangular validation batches: records sorted by aspect ratio (h / w), and per record the
    (H, W) canvas of its batch — the batch's extreme aspect ratio at long side ``imgsz``, rounded up to a
    multiple of 32 after adding half a stride (``pad`` 0.5). Less padding than a square canvas, so less compute
    and the same boxes. Batches must be taken in order with this ``batch_size`` (``collate_fn`` pads any other
    grouping to a common size, which keeps results correct)."""
    sizes = [(r.height, r.width) if r.height is not None else image_size(r.file) for r in records]
    ar = np.array([h / w for h, w in sizes], np.float64)
    order = np.argsort(ar, kind="stable")
    ar = ar[order]
    shapes: list[tuple[int, int]] = []
    for start in range(0, len(order), batch_size):
        lo, hi = ar[start:start + batch_size].min(), ar[start:start + batch_size].max()
        rel = (hi, 1.0) if hi < 1 else (1.0, 1.0 / lo) if lo > 1 else (1.0, 1.0)
        hw = tuple(int(math.ceil(v * imgsz / RECT_STRIDE + RECT_PAD) * RECT_STRIDE) for v in rel)
        shapes += [hw] * len(ar[start:start + batch_size])
    return [records[k] for k in order], shapes


def parse_split(cfg: DataConfig, split: str, problems: Problems) -> tuple[list[ImageRecord], dict]:
    """Records of one split and where its evaluation ground truth comes from."""
    spec = cfg.split(split)
    if spec.format == "coco":
        records, _ = parse_coco_split(spec.annotations, spec.images[0], cfg.category_ids, problems)
        return records, {"format": "coco", "annotations": spec.annotations, "images": spec.images[0]}
    records = parse_yolo_split(spec.images, spec.labels, cfg.nc, problems)
    return records, {"format": "yolo"}


def build_dataset(cfg: DataConfig | str | Path, split: str = "train", imgsz: int = 640, augment: bool = False,
                  hyp: SegmentHyp | dict | None = None, cache: bool = False, rect: bool = False,
                  batch_size: int = 16) -> DetectionDataset:
    """The dataset of one split. Errors in the labels raise a one-line ``DataError`` naming the file; warnings
    (degenerate boxes, empty label files) are summarised once, ``gradpath check-data`` lists them all.
    ``cache=True`` decodes every image and its masks once, now, and keeps them in RAM (about 0.3 MB per 256 px
    image: fine for ``shapes``).
    ``rect=True`` (validation only) letterboxes each batch of ``batch_size`` images to its own rectangular canvas
    (``rect_batches``), as YOLOv5's validation does; iterate it in order with that batch size."""
    hyp = segment_hyp(hyp)  # a typo in a hyp key fails before any label is parsed
    cfg = load_data_config(cfg)
    problems = Problems(strict=True, root=cfg.root)
    records, gt_source = parse_split(cfg, split, problems)
    if not records:
        raise DataError(f"{cfg.file or cfg.root}: empty dataset: split {split!r} has no images")
    if problems.warnings:
        first = problems.warnings[0]
        n_poly = problems.counts["degenerate_polygons"]
        dropped = f" ({n_poly} polygon(s) with fewer than 3 points dropped, boxes kept)" if n_poly else ""
        warnings.warn(f"{len(problems.warnings)} data warning(s) in split {split!r}{dropped}, first: {first}; "
                      "run `gradpath check-data` to list them", GradpathWarning, stacklevel=2)
    c2c = cfg.category_ids if cfg.category_ids is not None else [k + 1 for k in range(cfg.nc)]
    return DetectionDataset(records, cfg.names, c2c, imgsz, augment, hyp, gt_source, cfg.root, cache=cache,
                            rect=rect, batch_size=batch_size)


def collate_fn(batch: list[dict]) -> dict[str, Any]:
    """Stack images; concatenate instances as ``targets`` rows ``[batch_idx, cls, cx, cy, w, h]``.

    Images of different sizes (rect batches grouped differently from ``rect_batches``) are padded at the bottom
    and right to the largest, so their letterbox offsets stay valid; boxes are renormalised to that canvas."""
    H = max((b["img"].shape[1] for b in batch), default=0)
    W = max((b["img"].shape[2] for b in batch), default=0)
    if any(tuple(b["img"].shape[1:]) != (H, W) for b in batch):
        batch = [_pad_item(b, H, W) for b in batch]
    imgs = torch.stack([b["img"] for b in batch])
    targets = torch.cat([torch.cat([torch.full((len(b["cls"]), 1), float(k)), b["cls"][:, None], b["boxes"]], 1)
                         for k, b in enumerate(batch)]) if batch else torch.zeros((0, 6))
    gh, gw = imgs.shape[-2] // aug.MASK_STRIDE, imgs.shape[-1] // aug.MASK_STRIDE
    masks = torch.cat([b["masks"].reshape(-1, gh, gw) for b in batch]) if batch else \
        torch.zeros((0, gh, gw), torch.uint8)
    return {"img": imgs, "targets": targets.float(), "masks": masks,
            "image_ids": [b["image_id"] for b in batch], "orig_shapes": [b["orig_shape"] for b in batch],
            "ratio_pads": [b["ratio_pad"] for b in batch]}


def _pad_item(item: dict[str, Any], H: int, W: int) -> dict[str, Any]:
    """``item`` on an (H, W) canvas: image padded with the letterbox grey at the bottom and right, masks with 0,
    normalised boxes rescaled to the larger canvas."""
    _, h, w = item["img"].shape
    img = torch.full((3, H, W), aug.FILL, dtype=item["img"].dtype)
    img[:, :h, :w] = item["img"]
    s = aug.MASK_STRIDE
    masks = torch.zeros((item["masks"].shape[0], H // s, W // s), dtype=item["masks"].dtype)
    masks[:, :h // s, :w // s] = item["masks"]
    boxes = item["boxes"] * torch.tensor([w / W, h / H, w / W, h / H])
    return {**item, "img": img, "masks": masks, "boxes": boxes}
