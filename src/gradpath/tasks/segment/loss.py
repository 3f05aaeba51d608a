"""YOLOv5-seg training loss: anchor-ratio target assignment, CIoU box loss, objectness and class BCE, and the
prototype mask loss on box-cropped masks.

The paper trains and evaluates every detector (YOLOR-v3/PRN/CSP/ELAN and the YOLOv5-seg rows of Tables 6-8)
with the YOLOv5 instance-segmentation recipe (paper §5.1 names YOLOv5 r6.2; segmentation first shipped in
YOLOv5 v7.0, which is the version this code follows); this module is that loss, written from its published
description:

- **Assignment.** A ground-truth box goes to every anchor of a level whose width/height ratio to it is within
  ``anchor_t`` (4) both ways, in the grid cell holding its centre and in the two neighbouring cells nearest to
  the centre (the centre offset ``2σ−0.5`` can reach ±0.5 cell beyond a cell, so those cells can predict it).
- **Box.** ``1 − CIoU`` (``torchvision.ops.complete_box_iou_loss``) between the decoded prediction and the target.
- **Objectness.** BCE against the (detached, clamped) CIoU at positive anchors and 0 elsewhere, levels weighted
  4.0 / 1.0 / 0.4 (P3 / P4 / P5).
- **Class.** BCE against one-hot targets (skipped when there is one class: objectness already carries it).
- **Mask.** ``BCE(coefs · proto, gt_mask)`` per pixel, kept inside the target box, averaged over the prototype
  grid and divided by the box's normalised area, so small and large objects weigh the same; averaged over the
  positives of each image, summed over images and levels.

Gains follow YOLOv5's recipe, including its rescaling by the number of levels, classes and image size:
``box·3/nl``, ``cls·(nc/80)·3/nl``, ``obj·(S/640)²·3/nl``; the image size ``S`` is read from the prototype
(``S = 4·proto_h``), so callers pass the unscaled YOLOv5 values (or nothing). The mask loss uses the box gain
divided by the batch size, as YOLOv5-seg does.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_convert, complete_box_iou_loss

from gradpath.engine.utils import unwrap
from gradpath.hyp import DEFAULT_HYP, SegmentHyp, segment_hyp
from gradpath.tasks.segment.postprocess import crop_mask

__all__ = ["SegmentLoss", "DEFAULT_HYP"]

_BALANCE = {3: (4.0, 1.0, 0.4), 4: (4.0, 1.0, 0.25, 0.06), 5: (4.0, 1.0, 0.25, 0.06, 0.02)}


class SegmentLoss:
    """``loss, items = SegmentLoss(model)((feats, proto), targets, masks)``.

    ``feats``: list of nl raw tensors (B, na, H_i, W_i, 5 + nc + nm); ``proto``: (B, nm, S/4, S/4);
    ``targets``: (N, 6) ``[batch_idx, cls, cx, cy, w, h]`` normalised to the canvas; ``masks``: (N, h, w) binary,
    one per target (resized to the prototype grid when ``h, w`` differ).
    Returns ``loss`` = (box + seg + obj + cls) × B (a scalar with grad) and ``items`` = detached tensor[4]
    ``(box, seg, obj, cls)``.
    """

    def __init__(self, model: nn.Module, hyp: SegmentHyp | dict[str, Any] | None = None) -> None:
        model = unwrap(model)  # DDP
        head = model.head
        self.hyp = segment_hyp(hyp)  # the loss reads its keys; the augmentation keys are the dataset's
        self.nl, self.na, self.nm = int(head.nl), int(head.na), int(head.nm)
        self.nc = int(model.num_classes)
        stride = torch.as_tensor(getattr(head, "stride", getattr(model, "stride", None)), dtype=torch.float32)
        anchors = head.anchors.detach().float().cpu()
        if anchors.shape != (self.nl, self.na, 2):
            raise ValueError(f"head.anchors must be (nl, na, 2) = ({self.nl}, {self.na}, 2), got {tuple(anchors.shape)}")
        self.anchors = anchors / stride.view(-1, 1, 1).cpu()  # grid units
        # P3 weighs most (small objects are many but hard); other level counts fall back to YOLOv5's 3-level values
        self.balance = _BALANCE.get(self.nl, ((4.0, 1.0) + (0.4,) * self.nl)[: self.nl])
        eps = self.hyp.label_smoothing
        self.cp, self.cn = 1.0 - 0.5 * eps, 0.5 * eps

    # ------------------------------------------------------------------ assignment
    def build_targets(self, feats: Sequence[torch.Tensor], targets: torch.Tensor):
        """Positives per level: ``tcls, tbox, indices, anchors, tidx, xywhn``.

        ``indices[i] = (b, a, gj, gi)``: image, anchor, row, column of each positive; ``tbox[i]`` = target
        (x offset in cell, y offset in cell, w, h) in grid units; ``anchors[i]`` its anchor (grid units);
        ``tidx[i]`` the row of ``targets`` (and ``masks``) it came from; ``xywhn[i]`` the normalised target box.
        """
        device = targets.device
        na, nt = self.na, targets.shape[0]
        anchors_all = self.anchors.to(device)
        gain = torch.ones(8, device=device)
        ai = torch.arange(na, device=device).float().view(na, 1).repeat(1, nt)
        ti = torch.arange(nt, device=device).float().view(1, nt).repeat(na, 1)
        t_all = torch.cat((targets.float().repeat(na, 1, 1), ai[..., None], ti[..., None]), 2)  # (na, nt, 8)
        g = 0.5
        off = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], device=device).float() * g
        tcls, tbox, indices, anch, tidxs, xywhn = [], [], [], [], [], []
        for i in range(self.nl):
            h, w = feats[i].shape[2:4]
            anchors = anchors_all[i]
            gain[2:6] = torch.tensor([w, h, w, h], device=device, dtype=torch.float32)
            t = t_all * gain
            if nt:
                r = t[..., 4:6] / anchors[:, None]
                t = t[torch.max(r, 1 / r).max(2)[0] < self.hyp.anchor_t]
                gxy = t[:, 2:4]
                gxi = gain[[2, 3]] - gxy
                j, k = ((gxy % 1 < g) & (gxy > 1)).T
                l, m = ((gxi % 1 < g) & (gxi > 1)).T
                sel = torch.stack((torch.ones_like(j), j, k, l, m))
                t = t.repeat((5, 1, 1))[sel]
                offsets = (torch.zeros_like(gxy)[None] + off[:, None])[sel]
            else:
                t = t_all.new_zeros((0, 8))
                offsets = t.new_zeros((0, 2))
            bc, gxy, gwh, at = t.split((2, 2, 2, 2), 1)
            a, tidx = at.long().T
            b, c = bc.long().T
            gij = (gxy - offsets).long()
            gi = gij[:, 0].clamp(0, w - 1)
            gj = gij[:, 1].clamp(0, h - 1)
            indices.append((b, a, gj, gi))
            tbox.append(torch.cat((gxy - torch.stack((gi, gj), 1), gwh), 1))
            anch.append(anchors[a])
            tcls.append(c)
            tidxs.append(tidx)
            xywhn.append(torch.cat((gxy, gwh), 1) / gain[2:6])
        return tcls, tbox, indices, anch, tidxs, xywhn

    # ------------------------------------------------------------------ loss
    def __call__(self, preds, targets: torch.Tensor, masks: torch.Tensor):
        feats, proto = preds
        device = proto.device
        bs, nm, mh, mw = proto.shape
        if nm != self.nm:
            raise ValueError(f"proto has {nm} channels, the head declares nm={self.nm}")
        targets = targets.to(device)
        masks = masks.to(device)
        if masks.shape[0] and masks.shape[-2:] != (mh, mw):
            masks = F.interpolate(masks[None].float(), (mh, mw), mode="nearest")[0]
        masks = masks.float()
        imgsz = mh * 4
        k = 3.0 / self.nl
        g_box = self.hyp.box * k
        g_cls = self.hyp.cls * self.nc / 80.0 * k
        g_obj = self.hyp.obj * (imgsz / 640.0) ** 2 * k
        bce_cls = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([self.hyp.cls_pw], device=device))
        bce_obj = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([self.hyp.obj_pw], device=device))

        zero = torch.zeros((), device=device)
        lbox, lseg, lobj, lcls = zero, zero, zero, zero
        tcls, tbox, indices, anch, tidxs, xywhn = self.build_targets(feats, targets)
        proto_f = proto.float()
        seg_parts: list[tuple[torch.Tensor, ...]] = []  # per level: (b, level, coefs, target rows, boxes, areas)
        for i, pi in enumerate(feats):
            pi = pi.float()
            b, a, gj, gi = indices[i]
            tobj = torch.zeros(pi.shape[:4], device=device)
            n = b.shape[0]
            if n:
                pxy, pwh, _, pcls, pmask = pi[b, a, gj, gi].split((2, 2, 1, self.nc, nm), 1)
                pxy = pxy.sigmoid() * 2 - 0.5
                pwh = (pwh.sigmoid() * 2) ** 2 * anch[i]
                pbox = box_convert(torch.cat((pxy, pwh), 1), "cxcywh", "xyxy")
                lb = complete_box_iou_loss(pbox, box_convert(tbox[i], "cxcywh", "xyxy"), reduction="none")
                lbox = lbox + lb.mean()
                tobj[b, a, gj, gi] = (1.0 - lb).detach().clamp(0)  # the CIoU value
                if self.nc > 1:
                    t = torch.full_like(pcls, self.cn)
                    t[torch.arange(n, device=device), tcls[i]] = self.cp
                    lcls = lcls + bce_cls(pcls, t)
                marea = xywhn[i][:, 2:].prod(1)
                mxyxy = box_convert(xywhn[i] * xywhn[i].new_tensor([mw, mh, mw, mh]), "cxcywh", "xyxy")
                seg_parts.append((b, torch.full_like(b, i), pmask, tidxs[i], mxyxy, marea))
            lobj = lobj + bce_obj(pi[..., 4], tobj) * self.balance[i]
        if seg_parts:
            # One prototype product per image for all levels' positives (not one per image and level: 3x fewer
            # small matmul/BCE/crop calls); the per-(image, level) means are then taken with index_add.
            b, lvl, pmask, tidx, mxyxy, marea = (torch.cat(t) for t in zip(*seg_parts))
            for bi in b.unique():
                j = b == bi
                per = self._mask_losses(masks[tidx[j]], pmask[j], proto_f[bi], mxyxy[j], marea[j])
                g = lvl[j]
                sums = per.new_zeros(self.nl).index_add(0, g, per)
                cnt = torch.bincount(g, minlength=self.nl)
                has = cnt > 0
                lseg = lseg + (sums[has] / cnt[has]).sum()
        lbox = lbox * g_box
        lobj = lobj * g_obj
        lcls = lcls * g_cls
        lseg = lseg * g_box / bs
        loss = lbox + lseg + lobj + lcls
        return loss * bs, torch.stack((lbox, lseg, lobj, lcls)).detach()

    @staticmethod
    def _mask_loss(gt: torch.Tensor, coefs: torch.Tensor, proto: torch.Tensor, xyxy: torch.Tensor,
                   area: torch.Tensor) -> torch.Tensor:
        """Mean over one image's positives of (box-cropped BCE averaged over the grid) / (normalised box area).

        Dividing by the area turns the grid average into the average inside the box (≈ ln 2 for an untrained
        head); averaging over positives keeps the term O(1) per image and level however many anchors match.
        """
        return SegmentLoss._mask_losses(gt, coefs, proto, xyxy, area).mean()

    @staticmethod
    def _mask_losses(gt: torch.Tensor, coefs: torch.Tensor, proto: torch.Tensor, xyxy: torch.Tensor,
                     area: torch.Tensor) -> torch.Tensor:
        """Per positive: box-cropped BCE averaged over the grid, divided by the normalised box area; (n,)."""
        nm, mh, mw = proto.shape
        logits = (coefs @ proto.reshape(nm, -1)).reshape(-1, mh, mw)
        loss = F.binary_cross_entropy_with_logits(logits, gt, reduction="none")
        return crop_mask(loss, xyxy).mean(dim=(1, 2)) / area
