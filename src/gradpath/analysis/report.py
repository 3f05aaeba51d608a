"""The analysis report: per-unit rows, the layer view, network figures, JSON and text tables
(docs/gradient-paths.md §7; other § numbers in this module refer to that page too).

JSON conventions (stable; the tests rely on them):
- ``profile`` and ``sources`` are keyed by the path length as a *string* (JSON object keys are strings).
- ``paths`` is an int when it is at most 2**53 (exact in every JSON reader), otherwise its decimal string.
- Unit ids are the qualified module name, ``@k`` for the k-th repeated call of a shared layer, and
  ``[start:end]`` for a channel group when the layer is split (§2.3); the inputs are ``input``, the loss ``loss``.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from gradpath.analysis.graph import INPUT, UNIT
from gradpath.analysis.paths import PathGraph, Vertex
from gradpath.formatting import table

_JSON_INT_MAX = 2 ** 53


def json_int(n: int) -> int | str:
    return n if n <= _JSON_INT_MAX else str(n)


def run_length(ts: list[int]) -> str:
    """Timestamps as arithmetic runs: [2, 4, 6, 9] → ``2-6/2,9`` (§7)."""
    out, i = [], 0
    while i < len(ts):
        j = i
        if i + 1 < len(ts):
            d = ts[i + 1] - ts[i]
            j = i + 1
            while j + 1 < len(ts) and ts[j + 1] - ts[j] == d:
                j += 1
            if j - i < 2:
                out.append(str(ts[i]))
                i += 1
                continue
            out.append(f"{ts[i]}-{ts[j]}" + (f"/{d}" if d != 1 else ""))
            i = j + 1
            continue
        out.append(str(ts[i]))
        i += 1
    return ",".join(out)


def fmt_paths(n: int) -> str:
    return f"{n:,}" if n < 10 ** 9 else f"{n / 10 ** (len(str(n)) - 1):.2f}e{len(str(n)) - 1}"


@dataclass
class Report:
    """Gradient-path analysis of one model. Build with :func:`gradpath.analysis.analyze`."""

    pg: PathGraph
    model_name: str = "model"
    backend: str = "manual"
    norm: str = "merge"
    include_frozen: bool = False
    warnings: list[str] = field(default_factory=list)

    # -- selections ------------------------------------------------------------------------------------------
    @property
    def units(self) -> list[Vertex]:
        return [v for v in self.pg.vertices if v.kind == UNIT and (v.trainable or self.include_frozen)]

    @property
    def inputs(self) -> list[Vertex]:
        return [v for v in self.pg.vertices if v.kind == INPUT]

    def unit(self, uid: str) -> Vertex:
        for v in self.pg.vertices:
            if v.id == uid:
                return v
        raise KeyError(f"no unit {uid!r}; units: {[v.id for v in self.units][:20]}")

    def profile(self, v: Vertex | str) -> dict[int, int]:
        return self.pg.profile(self.unit(v) if isinstance(v, str) else v)

    def sources(self, v: Vertex | str) -> dict[int, list[str]]:
        v = self.unit(v) if isinstance(v, str) else v
        return {k: [self.pg.vertices[c].id for c in cs] for k, cs in self.pg.sources(v).items()}

    def rounds(self) -> dict[int, list[str]]:
        return {k: [self.pg.vertices[h].id for h in hs] for k, hs in self.pg.rounds().items()}

    def input_profile(self) -> dict[int, int]:
        """N(input, k), summed over input groups (the Veit-style histogram, §1)."""
        tot: Counter = Counter()
        for v in self.inputs:
            tot.update(self.pg.profile(v))
        return dict(sorted(tot.items()))

    def gc(self, v: Vertex) -> frozenset:
        """Gradient combination GC(u) = {(k, v)} (§1)."""
        return frozenset((k, c) for k, cs in self.pg.sources(v).items() for c in cs)

    def layers(self) -> list[dict[str, Any]]:
        """Layer view (§1, §2.5): groups and repeated calls of one layer merged."""
        by: dict[str, list[Vertex]] = {}
        for v in self.units:
            by.setdefault(v.name, []).append(v)
        out = []
        for name, vs in by.items():
            prof: Counter = Counter()
            for v in vs:
                prof.update(self.pg.profile(v))
            t = 0
            for v in vs:
                t |= v.T
            sg = [v.sgp for v in vs if v.T]
            lg = [v.lgp for v in vs if v.T]
            out.append({"name": name, "groups": len(vs), "params": max(v.params for v in vs),
                        "sgp": min(sg) if sg else None, "lgp": max(lg) if lg else None,
                        "timestamps": sorted(k for k in prof), "profile": dict(sorted(prof.items())),
                        "paths": sum(prof.values())})
        return out

    # -- network figures -------------------------------------------------------------------------------------
    def network(self) -> dict[str, Any]:
        units = self.units
        live = [v for v in units if v.T]
        train_live = [v for v in live if v.trainable]
        sgps = [v.sgp for v in live]
        ip = self.input_profile()
        tot = sum(ip.values())
        names = {v.name for v in units}
        split_layers: dict[str, set] = {}
        for v in units:
            if v.split and v.T:
                split_layers.setdefault(v.name, set()).add(self.gc(v))
        params_seen: dict[str, int] = {}
        for v in units:
            params_seen[v.name] = max(params_seen.get(v.name, 0), v.params)
        return {
            "lgp": max((v.lgp for v in live), default=None),
            "lsgp": max((v.sgp for v in train_live), default=None),
            "units": len(units),
            "layers": len(names),
            "params": sum(params_seen.values()),
            "mean_sgp": round(sum(sgps) / len(sgps), 4) if sgps else None,
            "share_sgp_le_2": round(sum(1 for s in sgps if s <= 2) / len(sgps), 4) if sgps else None,
            "mean_aggregated_features": round(sum(v.af for v in units) / len(units), 4) if units else None,
            "max_aggregated_features": max((v.af for v in units), default=None),
            "no_gradient": [v.id for v in units if not v.T],
            "split_layers": len(split_layers),
            "mean_gc_per_split_layer": round(sum(len(s) for s in split_layers.values()) / len(split_layers), 4)
            if split_layers else None,
            "input": {
                "profile": {str(k): json_int(n) for k, n in ip.items()},
                "paths": json_int(tot),
                "sgp": min(ip) if ip else None,
                "lgp": max(ip) if ip else None,
                "mean": round(sum(k * n for k, n in ip.items()) / tot, 4) if tot else None,
                "mode": max(ip, key=lambda k: ip[k]) if ip else None,
            },
            "aux_norms": [{"name": n, "params": p} for n, p in self.pg.graph.aux],
        }

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON-ready schema (key conventions in the module docstring; fields in
        docs/gradient-paths.md §7)."""
        units = []
        for v in self.units:
            prof = self.pg.profile(v)
            d = {
                "id": v.id,
                "name": v.name,
                "module": v.module,
                "call": v.call,
                "channels": list(v.channels),
                "params": v.params,
                "trainable": v.trainable,
                "sgp": v.sgp,
                "lgp": v.lgp,
                "timestamps": v.timestamps,
                "profile": {str(k): json_int(n) for k, n in prof.items()},
                "paths": json_int(v.paths),
                "aggregated_features": v.af,
                "sources": {str(k): ids for k, ids in self.sources(v).items()},
                "gradient": bool(v.T),
            }
            if len(v.intervals) > 1:
                d["channel_ranges"] = [list(iv) for iv in v.intervals]
            units.append(d)
        return {"model": self.model_name, "backend": self.backend, "norm": self.norm, "units": units,
                "network": self.network(), "warnings": list(self.warnings)}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    # -- text ------------------------------------------------------------------------------------------------
    def table(self, max_rows: int | None = None) -> str:
        gc_ids: dict[frozenset, int] = {}
        rows = []
        for v in self.units:
            if v.T:
                gid = gc_ids.setdefault(self.gc(v), len(gc_ids))
                first = self.sources(v).get(v.sgp, [])
                src = ",".join(first[:3]) + (f",+{len(first) - 3}" if len(first) > 3 else "")
                flag = "" if v.trainable else "frozen"
                rows.append([v.id, f"{v.channels[0]}:{v.channels[1]}", f"{v.params:,}", v.sgp, v.lgp,
                             run_length(v.timestamps), len(v.timestamps), fmt_paths(v.paths),
                             f"{math.log10(v.paths):.1f}", v.af, src, gid, flag])
            else:
                rows.append([v.id, f"{v.channels[0]}:{v.channels[1]}", f"{v.params:,}", "-", "-", "-", 0, "0",
                             "-", v.af, "", "", "no gradient"])
        if max_rows is not None and len(rows) > max_rows:
            rows = rows[:max_rows // 2] + [["..."] + [""] * 12] + rows[-(max_rows - max_rows // 2):]
        return table(["unit", "ch", "params", "SGP", "LGP", "T", "|T|", "#paths", "log10", "AF",
                      "sources@SGP", "GC", "flag"], rows, "llrrrlrrrrllr")

    def summary(self) -> str:
        n = self.network()
        ip = n["input"]
        lines = [
            f"{self.model_name}: {n['units']} units in {n['layers']} layers, {n['params']:,} params "
            f"(backend {self.backend}, norm {self.norm})",
            f"  longest gradient path (LGP)            {n['lgp']}",
            f"  longest shortest gradient path (LSGP)  {n['lsgp']}",
            f"  mean SGP {n['mean_sgp']}, share of units with SGP <= 2: {n['share_sgp_le_2']}",
            f"  aggregated features: mean {n['mean_aggregated_features']}, max {n['max_aggregated_features']}",
            f"  loss->input paths: {fmt_paths(int(ip['paths']))}, lengths {ip['sgp']}..{ip['lgp']}, "
            f"mean {ip['mean']}, mode {ip['mode']}",
        ]
        if n["split_layers"]:
            lines.append(f"  split layers: {n['split_layers']}, mean distinct gradient combinations per split "
                         f"layer {n['mean_gc_per_split_layer']}")
        if n["no_gradient"]:
            lines.append(f"  no gradient: {', '.join(n['no_gradient'][:10])}"
                         + (" ..." if len(n["no_gradient"]) > 10 else ""))
        if n["aux_norms"]:
            lines.append(f"  norms not merged (pass-through, params listed apart): {len(n['aux_norms'])}")
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        return "\n".join(lines)
