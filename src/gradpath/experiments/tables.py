"""The paper's training tables as data: rows (registered models), the metric, the paper's numbers and its claims.

``gradpath reproduce tableN`` trains every row with one recipe (``gradpath.reproduce.recipes``) and tests each
claim on the per-seed metrics. A claim compares two rows:

- ``better``: row ``a`` scores higher than row ``b`` (e.g. the baseline beats a stop-gradient variant);
- ``not_worse``: row ``a`` keeps row ``b``'s accuracy (e.g. CSP at fewer FLOPs); it is refuted only by a
  significant drop.

Paper numbers are percentages as printed (AP, top-1); FLOPs and parameters live in ``experiments.zoo``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["TableRow", "Claim", "TableSpec", "TABLES", "get_table"]


@dataclass(frozen=True)
class TableRow:
    key: str           # short id, used for run folders
    label: str         # the paper's row name
    model: str         # registered model name
    paper: dict[str, float] = field(default_factory=dict)  # the paper's metrics, e.g. {"box_ap": 51.0}


@dataclass(frozen=True)
class Claim:
    kind: str          # "better" | "not_worse"
    a: str             # row key
    b: str             # row key
    text: str          # the claim in words


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    task: str          # "segment" | "classify" | "" (no training: analysis only)
    metric: str        # the metric claims are tested on (a task metric name)
    rows: tuple[TableRow, ...] = ()
    claims: tuple[Claim, ...] = ()
    analysis_only: bool = False
    # Small scale only: overrides of the recipe's width/depth multipliers for every row of *this* table, where the
    # recipe's scaling would remove what the claim is about (Table 4: depth). Same for all rows, never per row.
    model_overrides: dict[str, Any] = field(default_factory=dict)
    overrides_why: str = ""

    def row(self, key: str) -> TableRow:
        return next(r for r in self.rows if r.key == key)


_V3 = TableRow("yolor-v3", "YOLOR-v3", "yolor-v3", {"box_ap": 49.5, "mask_ap": 40.9})

TABLES: dict[str, TableSpec] = {
    "table1": TableSpec(
        "table1", "Asymptotics of parameters and gradient paths (measured by the analyzer)", "", "", analysis_only=True),
    "table2": TableSpec(
        "table2", "CSP on classifiers (ImageNet top-1 in the paper; shapes-cls here)", "classify", "top1",
        rows=(
            TableRow("darknet53", "Darknet-53", "darknet53", {"top1": 77.2}),
            TableRow("csp-darknet53", "+ CSP", "csp-darknet53", {"top1": 77.2}),
            TableRow("resnet50", "ResNet-50", "resnet50", {"top1": 75.8}),
            TableRow("csp-resnet50", "+ CSP", "csp-resnet50", {"top1": 76.6}),
            TableRow("resnext50", "ResNeXt-50", "resnext50", {"top1": 77.8}),
            TableRow("csp-resnext50", "+ CSP", "csp-resnext50", {"top1": 77.9}),
        ),
        claims=(
            Claim("not_worse", "csp-darknet53", "darknet53", "CSP keeps Darknet-53's accuracy at 30% fewer FLOPs"),
            Claim("not_worse", "csp-resnet50", "resnet50", "CSP keeps ResNet-50's accuracy at 8% fewer FLOPs"),
            Claim("not_worse", "csp-resnext50", "resnext50", "CSP keeps ResNeXt-50's accuracy at 22% fewer FLOPs"),
        )),
    "table3": TableSpec(
        "table3", "Stop-gradient ablation on YOLOR-CSP", "segment", "box_map",
        rows=(
            TableRow("yolor-csp", "YOLOR-CSP", "yolor-csp", {"box_ap": 51.0, "mask_ap": 41.1}),
            TableRow("sg-identity", "+ stop gradient on identity (Fig. 9a)", "yolor-csp-sg-identity",
                     {"box_ap": 48.8, "mask_ap": 39.5}),
            TableRow("sg-block", "+ stop gradient on computational block (Fig. 9b)", "yolor-csp-sg-block",
                     {"box_ap": 47.7, "mask_ap": 38.7}),
        ),
        claims=(
            Claim("better", "yolor-csp", "sg-identity", "a stop-gradient on the identity hurts"),
            Claim("better", "yolor-csp", "sg-block", "a stop-gradient on the computational block hurts"),
            Claim("better", "sg-identity", "sg-block", "on the block it hurts more than on the identity"),
        )),
    "table4": TableSpec(
        "table4", "ELAN planning on a deep VoVNet (99 conv layers)", "segment", "box_map",
        rows=(
            TableRow("vovnet99", "Deep VoVNet (a transition after every OSA module)", "vovnet99", {}),
            TableRow("vovnet99-elan", "Deep VoVNet + ELAN", "vovnet99-elan", {"box_ap": 53.3, "mask_ap": 42.9}),
            TableRow("vovnet99-elan-csp", "Deep VoVNet + ELAN + CSP", "vovnet99-elan-csp",
                     {"box_ap": 53.4, "mask_ap": 42.9}),
        ),
        claims=(
            Claim("better", "vovnet99-elan", "vovnet99",
                  "the plain deep VoVNet trains badly; one transition per stage (ELAN planning) trains well"),
            Claim("not_worse", "vovnet99-elan-csp", "vovnet99-elan", "CSP keeps ELAN's accuracy at fewer FLOPs"),
        ),
        model_overrides={"depth": 1.0},
        overrides_why="the claim is about depth: at the recipe's depth 0.34 the backbone keeps 6 of its 16 OSA "
                      "modules (30 of 80 convs in the stages), and the plain net is no longer deep; so every row "
                      "keeps full depth and only the width is scaled"),
    "table5": TableSpec(
        "table5", "PRN (masked residual on half of the channels)", "segment", "box_map",
        rows=(_V3, TableRow("yolor-prn", "+ PRN", "yolor-prn", {"box_ap": 50.0, "mask_ap": 41.0})),
        claims=(Claim("better", "yolor-prn", "yolor-v3", "PRN improves YOLOR-v3 at equal FLOPs and parameters"),)),
    "table6": TableSpec(
        "table6", "CSP fusion variants", "segment", "box_map",
        rows=(
            _V3,
            TableRow("csp-fusion", "+ CSP (fusion)", "yolor-csp", {"box_ap": 51.0, "mask_ap": 41.1}),
            TableRow("csp-first", "+ CSP fusion first", "yolor-csp-fusion-first", {"box_ap": 50.8, "mask_ap": 41.0}),
            TableRow("csp-last", "+ CSP fusion last", "yolor-csp-fusion-last", {"box_ap": 50.6, "mask_ap": 40.9}),
            TableRow("csp-none", "+ CSP no fusion", "yolor-csp-no-fusion", {"box_ap": 50.5, "mask_ap": 40.9}),
        ),
        claims=(
            Claim("better", "csp-fusion", "yolor-v3", "CSP (fusion) beats YOLOR-v3 at 18% fewer FLOPs"),
            Claim("not_worse", "csp-first", "yolor-v3", "CSP fusion first holds against YOLOR-v3 at fewer FLOPs"),
            Claim("not_worse", "csp-last", "yolor-v3", "CSP fusion last holds against YOLOR-v3 at fewer FLOPs"),
            Claim("not_worse", "csp-none", "yolor-v3", "CSP without fusion holds against YOLOR-v3 at fewer FLOPs"),
        )),
    "table7": TableSpec(
        "table7", "ELAN stacking in the computational block", "segment", "box_map",
        rows=(
            _V3,
            TableRow("elan-11", "+ ELAN-{1,1}s", "yolor-elan-11", {"box_ap": 50.2, "mask_ap": 40.6}),
            TableRow("elan-21", "+ ELAN-{2,1}s", "yolor-elan", {"box_ap": 51.4, "mask_ap": 41.5}),
            TableRow("elan-22", "+ ELAN-{2,2}s", "yolor-elan-22", {"box_ap": 51.8, "mask_ap": 41.6}),
        ),
        claims=(
            Claim("better", "elan-21", "elan-11", "stacking ELAN blocks twice in the backbone pays"),
            Claim("not_worse", "elan-22", "elan-21", "stacking twice in the neck too keeps or improves it"),
            Claim("not_worse", "elan-11", "yolor-v3", "ELAN-{1,1}s holds against YOLOR-v3 at 35% fewer FLOPs"),
        )),
    "table8": TableSpec(
        "table8", "Comparison with YOLOv5-seg", "segment", "box_map",
        rows=(
            TableRow("yolov5l-seg", "YOLOv5l-seg (r6.2)", "yolov5l-seg", {"box_ap": 49.1, "mask_ap": 40.0}),
            TableRow("yolov5x-seg", "YOLOv5x-seg (r6.2)", "yolov5x-seg", {"box_ap": 50.9, "mask_ap": 41.4}),
            _V3,
            TableRow("yolor-prn", "YOLOR-PRN", "yolor-prn", {"box_ap": 50.0, "mask_ap": 41.0}),
            TableRow("yolor-csp", "YOLOR-CSP", "yolor-csp", {"box_ap": 51.0, "mask_ap": 41.1}),
            TableRow("yolor-elan", "YOLOR-ELAN", "yolor-elan", {"box_ap": 51.4, "mask_ap": 41.5}),
        ),
        claims=(
            Claim("better", "yolor-elan", "yolov5l-seg", "YOLOR-ELAN beats YOLOv5l-seg at fewer FLOPs"),
            Claim("not_worse", "yolor-elan", "yolov5x-seg", "YOLOR-ELAN holds against YOLOv5x-seg at half the FLOPs"),
        )),
}


def get_table(name: str) -> TableSpec:
    return TABLES[name]
