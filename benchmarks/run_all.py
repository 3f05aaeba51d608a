"""Run every peer benchmark one after another and print ONE markdown table: work | gradpath | peer | ratio | goal.

Why: the project's speed claims are ratios against peers (issue 10); this is the one command that re-measures all
of them on the machine at hand, with the same threads on both sides and each side's torch printed.

Benchmarks (each run in a fresh process of this interpreter with ``--json``; the peers live in their own venvs):
- benchmarks/bench_train.py: gradpath yolor-elan vs ultralytics yolov8n-seg at equal FLOPs: segmentation
  training step (img/s) and batch-1 fused latency (``--peer-python``: a venv with ultralytics).
- benchmarks/bench_epoch.py (opt-in, slow: only when ``--only`` names ``epoch``): the same pair, one whole
  training epoch with data loading, each side's own trainer and loader on the same ``shapes`` images (img/s).
- benchmarks/bench_yolov5.py: gradpath YOLOv5-seg vs the ``yolov5`` package, the same network: parameter
  counts, yolov5l-seg inference b1@640, yolov5s-seg training step b8@320 (``--y5-python``).
- benchmarks/bench_classify.py: five classifiers vs timm, b8@224, inference and training step
  (``--peer-python``: the same venv, with timm).
- benchmarks/bench_analyze.py --largest-only: wall time of ``gradpath analyze <largest zoo model> --json`` in a
  fresh process (no peer).
A benchmark whose peer venv is missing is skipped with a line saying so. Ratios are gradpath ÷ peer speed
(> 1 = gradpath faster); a classifier's peer is the faster of timm NCHW / channels-last. ``--quick`` is a smoke
run (1 iteration, tiny sizes, one classifier pair): its numbers are NOT meaningful and it gives no verdicts.
Only run it on an otherwise idle machine when the numbers matter.

    .venv/bin/python benchmarks/run_all.py --peer-python /tmp/peers-venv/bin/python \\
        --y5-python /tmp/y5-venv/bin/python --out bench.md
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# key -> (kind, threshold): "min_ratio": gradpath/peer speed >= threshold; "max": gradpath value <= threshold
# (in the row's unit); "equal": gradpath == peer; None: shown, no goal.
GOALS: dict[str, tuple[str, float | None] | None] = {
    "seg_train": ("min_ratio", 1.1),
    "seg_latency": None,
    "seg_epoch": ("min_ratio", 1.1),
    "yolov5_params": ("equal", None),
    "yolov5_train": ("min_ratio", 1.2),
    "yolov5_infer": ("min_ratio", 1.2),
    "classify_train": ("min_ratio", 1.1),
    "classify_infer": ("min_ratio", 1.3),
    "analyze_wall": ("max", 3.0),
}

# name -> (script, which peer option it needs or None, the rows it yields: for the skipped/failed lines)
BENCHES = {
    "train": ("bench_train.py", "peer", [("seg_train", "seg train step, yolor-elan vs ultralytics yolov8n-seg"),
                                         ("seg_latency", "seg inference b1, yolor-elan vs yolov8n-seg")]),
    "epoch": ("bench_epoch.py", "peer", [("seg_epoch", "seg training epoch with loading, yolor-elan vs yolov8n-seg")]),
    "yolov5": ("bench_yolov5.py", "y5", [("yolov5_params", "yolov5*-seg parameters vs the yolov5 package"),
                                         ("yolov5_train", "yolov5s-seg train step vs the yolov5 package"),
                                         ("yolov5_infer", "yolov5l-seg inference vs the yolov5 package")]),
    "classify": ("bench_classify.py", "peer", [("classify_train", "classifier train steps vs timm"),
                                               ("classify_infer", "classifier inference vs timm")]),
    "analyze": ("bench_analyze.py", None, [("analyze_wall", "`gradpath analyze <largest zoo model> --json` wall")]),
}

QUICK_ARGS = {
    "train": ["--imgsz", "64", "--batch", "2", "--iters", "1", "--rounds", "1", "--warmup", "0"],
    "yolov5": ["--imgsz", "64", "--batch", "2", "--infer-imgsz", "64", "--iters", "1", "--rounds", "1",
               "--warmup", "0"],
    "classify": ["--imgsz", "64", "--batch", "2", "--iters", "1", "--rounds", "1", "--warmup", "0",
                 "--pairs", "csp-resnet50"],
    "analyze": ["--cli-runs", "1"],
    "epoch": ["--imgsz", "64", "--n-train", "16", "--rounds", "1"],
}
FULL_ARGS = {"train": [], "yolov5": [], "classify": [], "analyze": ["--cli-runs", "3"], "epoch": []}
# Run only when named in --only: four 2-epoch trainings of 600 images at 320, roughly half an hour on 2 cores
# (estimated from bench_train's step rates).
OPT_IN = ("epoch",)


# --------------------------------------------------------------------------------------- pure parts (tested)
def ratio(r: dict) -> float | None:
    """gradpath ÷ peer speed (> 1 = gradpath faster): values for higher-is-better units, peer ÷ gradpath for
    times; None without both numbers."""
    g, p = r.get("gradpath"), r.get("peer")
    if g is None or p is None or g == 0 or p == 0:
        return None
    return g / p if r.get("higher_is_better", True) else p / g


def goal_text(key: str) -> str:
    goal = GOALS.get(key)
    if goal is None:
        return "—"
    kind, v = goal
    return "equal" if kind == "equal" else f"≥{v:g}×" if kind == "min_ratio" else f"≤{v:g} s"


def verdict(r: dict) -> str | None:
    """"met" / "MISSED" / None (no goal, or a number is missing)."""
    goal = GOALS.get(r["key"])
    if goal is None:
        return None
    kind, v = goal
    if kind == "max":
        return None if r.get("gradpath") is None else ("met" if r["gradpath"] <= v else "MISSED")
    if r.get("gradpath") is None or r.get("peer") is None:
        return None
    if kind == "equal":
        return "met" if r["gradpath"] == r["peer"] else "MISSED"
    q = ratio(r)
    return None if q is None else ("met" if q >= v else "MISSED")


def fmt_value(v: float | None, unit: str) -> str:
    if v is None:
        return "—"
    if unit == "params":
        return f"{int(v):,}"
    if unit == "s":
        return f"{v:.2f} s"
    digits = 0 if abs(v) >= 100 else 1 if abs(v) >= 10 else 2
    return f"{v:.{digits}f} {unit}"


def table_rows(results: dict[str, dict | str], quick: bool) -> list[list[str]]:
    """One [work, gradpath, peer, ratio, goal] per measured row, in BENCHES order; a bench that was skipped or
    failed (its value is the reason, a string) gives one line per row it would have had."""
    out = []
    for name, (_, _, expected) in BENCHES.items():
        res = results.get(name)
        if res is None:
            continue
        if isinstance(res, str):
            out += [[work, "—", "—", "—", f"{goal_text(key)}: {res}" if GOALS.get(key) else res]
                    for key, work in expected]
            continue
        for r in res["rows"]:
            q = ratio(r)
            goal = goal_text(r["key"])
            if GOALS.get(r["key"]) is not None:
                v = verdict(r)
                if quick:
                    goal += " (quick run: no verdict)"
                elif v is not None:
                    goal += f" **{v}**" if v == "MISSED" else f" {v}"
                elif r.get("peer") is None and GOALS[r["key"]][0] != "max":
                    goal += " (no peer number)"
            out.append([r["work"], fmt_value(r.get("gradpath"), r["unit"]), fmt_value(r.get("peer"), r["unit"]),
                        "—" if q is None else f"{q:.2f}×", goal])
    return out


def summary(results: dict[str, dict | str]) -> str:
    vs = [verdict(r) for res in results.values() if isinstance(res, dict) for r in res["rows"]]
    met, missed = vs.count("met"), vs.count("MISSED")
    open_goals = sum(1 for name, res in results.items() if isinstance(res, str)
                     for key, _ in BENCHES[name][2] if GOALS.get(key) is not None)
    return f"goals met: {met} of {met + missed} measured" + (f"; {open_goals} not measured" if open_goals else "")


def render(results: dict[str, dict | str], quick: bool, machine: dict, date: str) -> str:
    head = ["work", "gradpath", "peer", "ratio", "goal"]
    lines = []
    if quick:
        lines += ["**QUICK SMOKE RUN: 1 iteration, tiny sizes, one classifier pair. These numbers are NOT "
                  "meaningful; no verdicts.**", ""]
    lines += [f"gradpath vs peers, {date}", "",
              f"machine: {machine.get('platform', '?')}, {machine.get('cpus', '?')} CPUs, "
              f"{machine.get('threads', '?')} torch threads per side", ""]
    for name, res in results.items():
        if isinstance(res, dict):
            t = res.get("torch", {})
            peer = f", peer {res.get('peer_lib')} torch {t.get('peer')}" if t.get("peer") else ""
            lines.append(f"- {name}: torch gradpath side {t.get('gradpath')}{peer}")
        else:
            lines.append(f"- {name}: {res}")
    lines += ["", "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in table_rows(results, quick)]
    if not quick:
        lines += ["", summary(results)]
    lines += ["", "ratio = gradpath speed ÷ peer speed (> 1 = gradpath faster); classifier peer = the faster of "
              "timm NCHW / channels-last."]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ running
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run_bench(name: str, args: argparse.Namespace, json_dir: Path) -> dict | str:
    script, needs, _ = BENCHES[name]
    cmd = [sys.executable, str(HERE / script)]
    if needs:
        python = args.peer_python if needs == "peer" else args.y5_python
        if not Path(python).exists():
            msg = f"skipped: no peer venv at {python} (--{'peer' if needs == 'peer' else 'y5'}-python)"
            print(f"== {name}: {msg}", flush=True)
            return msg
        cmd += ["--peer-python", python]
    if name == "analyze":
        cmd += ["--largest-only"]
    else:
        cmd += ["--threads", str(args.threads)]
    cmd += (QUICK_ARGS if args.quick else FULL_ARGS)[name]
    out = json_dir / f"{name}.json"
    cmd += ["--json", str(out)]
    print(f"== {name}: {' '.join(cmd)}", flush=True)
    try:
        rc = subprocess.run(cmd, timeout=args.timeout_min * 60).returncode  # an argv list, no shell
    except subprocess.TimeoutExpired:
        return f"failed: timed out after {args.timeout_min} min"
    if rc != 0 or not out.exists():
        return f"failed: exit code {rc}"
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peer-python", default="/tmp/peers-venv/bin/python",
                   help="python of the peer venv with ultralytics and timm (same torch as ours)")
    p.add_argument("--y5-python", default="/tmp/y5-venv/bin/python",
                   help="python of the peer venv with the yolov5 package 7.0.x (same torch as ours)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads on each side (default: torch's default)")
    p.add_argument("--only", default=",".join(b for b in BENCHES if b not in OPT_IN),
                   help=f"comma list of {', '.join(BENCHES)} (default: all but the slow {', '.join(OPT_IN)})")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 iteration, tiny sizes; NOT meaningful")
    p.add_argument("--out", metavar="PATH", help="also save the table (markdown) to this file")
    p.add_argument("--json-dir", help="keep each benchmark's JSON here (default: a temporary folder)")
    p.add_argument("--timeout-min", type=float, default=120, help="give up on one benchmark after this long")
    args = p.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = [s for s in only if s not in BENCHES]
    if bad:
        p.error(f"unknown benchmark(s) {bad}; choose from {', '.join(BENCHES)}")
    if args.threads is None:
        import torch

        args.threads = torch.get_num_threads()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = {"platform": f"{platform.system()} {platform.machine()} {cpu_name()}".strip(),
               "cpus": os.cpu_count(), "threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        json_dir = Path(args.json_dir or tmp)
        json_dir.mkdir(parents=True, exist_ok=True)
        results = {name: run_bench(name, args, json_dir) for name in BENCHES if name in only}
    text = render(results, args.quick, machine, date)
    print("\n" + text)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    return 1 if any(isinstance(r, str) and r.startswith("failed") for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
