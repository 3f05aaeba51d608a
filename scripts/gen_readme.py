"""Regenerate the README's measured sections from the commands that measure them, so no figure is typed by hand.

Usage: .venv/bin/python scripts/gen_readme.py [--check] [--only NAME[,NAME...]] [--readme PATH]

Each generated section sits between ``<!-- gen:NAME -->`` and ``<!-- /gen:NAME -->`` in README.md:

- ``zoo``: the paper rows vs our counts, the output of ``scripts/gen_zoo_table.py --registry`` (called, not copied);
- ``profile``: ``gradpath profile MODEL --iters 0`` of a paper model and a tiny one (counts only, no timings);
- ``api``: the Python API example with the figures its own calls return;
- ``analysis``: network figures of ``gradpath analyze MODEL --imgsz 64`` for the paper's models;
- ``demo-recipe``: what ``make demo`` trains, read from the ``demo`` recipe (``src/gradpath/recipes.py``);
- ``robustness``: the bad-input corpora of ``tests/robustness/`` (input → what gradpath does);
- ``table1``: ``gradpath reproduce table1`` (Table 1 measured on real nets of growing depth);
- ``reproduce-results``: the small-scale training tables published in ``docs/results/<table>/results.json`` (copied
  there from ``runs/reproduce/<table>/`` after ``gradpath reproduce`` wrote them; hours of training, so the section
  renders the saved results and never retrains).

All eight are deterministic and take well under a minute, which is why ``tests/test_readme.py`` runs ``--check``
(exit 1 and a unified diff when README.md differs from what this script would write now). Timings and training
results (``make demo``, ``benchmarks/``) are machine-dependent and slow; the README quotes them with the command,
the machine and the date instead.
"""
from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib.util
import inspect
import io
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Callable

import gradpath
from gradpath.cli import main as gradpath_main
from gradpath.data import generate_shapes
from gradpath.recipes import RECIPES
from gradpath.reproduce import reproduce_table1
from gradpath.reproduce.report import format_interval, format_mean_std, seeds_per_row

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: The models whose ``gradpath profile`` output the README shows: one paper model at its paper size, one tiny.
PROFILE_MODELS = ("yolor-elan", "tiny-prn")
#: The rows of the README's gradient-path table, in the order they are shown.
ANALYSIS_MODELS = ("yolor-v3", "yolor-prn", "yolor-csp", "yolor-csp-sg-identity", "yolor-csp-sg-block",
                   "yolor-elan", "darknet53", "csp-darknet53")
ANALYSIS_IMGSZ = 64
#: The paper's figure a row illustrates, shown next to the model name.
FIGURES = {"yolor-csp-sg-identity": "Fig. 9a", "yolor-csp-sg-block": "Fig. 9b"}


def _captured(fn: Callable[[], object]) -> tuple[object, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = fn()
    return rc, buf.getvalue()


def zoo_section() -> str:
    """The zoo table exactly as ``scripts/gen_zoo_table.py --registry`` prints it."""
    spec = importlib.util.spec_from_file_location("gen_zoo_table", ROOT / "scripts" / "gen_zoo_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _, out = _captured(lambda: module.main(["--registry"]))  # a miss shows as "✗ OFF" in the table itself
    return out.rstrip("\n")


def profile_section() -> str:
    parts = []
    for name in PROFILE_MODELS:
        argv = ["profile", name, "--iters", "0"]
        rc, out = _captured(lambda: gradpath_main(argv))
        if rc != 0:
            raise SystemExit(f"gen_readme: `gradpath {' '.join(argv)}` exited {rc}")
        parts.append(f"$ gradpath {' '.join(argv)}\n{out.rstrip()}")
    return "```\n" + "\n\n".join(parts) + "\n```"


def api_section() -> str:
    """The API example; every figure in its comments is what the call on that line returns."""
    m = gradpath.create_model("yolor-v3", strategy="csp", fusion="first")
    if m.gradpath_config != gradpath.create_model("yolor-csp-fusion-first").gradpath_config:
        raise SystemExit("gen_readme: yolor-v3 + csp/first is no longer the yolor-csp-fusion-first network")
    prof = gradpath.profile(m, imgsz=640)
    net = gradpath.analyze(m, imgsz=ANALYSIS_IMGSZ).to_dict()["network"]
    return "\n".join([
        "```python",
        "import gradpath",
        "",
        'm = gradpath.create_model("yolor-v3", strategy="csp", fusion="first")   '
        '# same network as "yolor-csp-fusion-first"',
        f"gradpath.profile(m, imgsz=640)            # params {prof['params']:,}, gflops {prof['gflops']:.2f}, "
        f"act_mem_train_mb {prof['act_mem_train_mb']:.0f}, ...",
        f"report = gradpath.analyze(m, imgsz={ANALYSIS_IMGSZ})    "
        "# per-unit SGP / LGP / timestamps / path counts / sources",
        f'report.to_dict()["network"]               # lgp {net["lgp"]}, lsgp {net["lsgp"]}, '
        f'units {net["units"]}, ...',
        'gradpath.list_models("yolor-*")',
        'gradpath.create_model("yolor-elan", weights="runs/segment/demo/weights/best.pt")  '
        '# a trained (or converted) checkpoint',
        "```",
    ])


def _readings(net: dict[str, dict]) -> dict[str, str]:
    """The table's last column. Every figure in it comes from ``net``; a comparison is only written when the
    measured numbers bear it out."""
    v3, prn, csp = net["yolor-v3"], net["yolor-prn"], net["yolor-csp"]
    sgi, sgb, elan = net["yolor-csp-sg-identity"], net["yolor-csp-sg-block"], net["yolor-elan"]
    dn, cdn = net["darknet53"], net["csp-darknet53"]
    out = {"yolor-v3": "residual baseline"}
    prn_text = (f"the masked half of each block waits one block longer: mean SGP {v3['mean_sgp']:.2f} → "
                f"{prn['mean_sgp']:.2f}, so gradient timestamps diversify")
    if prn["params"] == v3["params"]:
        prn_text = "same params as `yolor-v3`; " + prn_text
    out["yolor-prn"] = prn_text
    out["yolor-csp"] = ""
    out["yolor-csp-sg-identity"] = f"stop-gradient on the identity: LSGP {csp['lsgp']} → {sgi['lsgp']}"
    out["yolor-csp-sg-block"] = f"stop-gradient on the block: LGP {csp['lgp']} → {sgb['lgp']}"
    yolor = [v for k, v in net.items() if k.startswith("yolor-")]
    out["yolor-elan"] = (f"lowest mean SGP of the YOLOR rows, at {elan['params'] / 1e6:.1f} M params"
                         if elan["mean_sgp"] == min(v["mean_sgp"] for v in yolor) else "")
    out["darknet53"] = ""
    out["csp-darknet53"] = f"CSP: LSGP {dn['lsgp']} → {cdn['lsgp']}"
    return out


def analysis_section() -> str:
    net = {name: gradpath.analyze(gradpath.create_model(name), imgsz=ANALYSIS_IMGSZ).to_dict()["network"]
           for name in ANALYSIS_MODELS}
    readings = _readings(net)
    lines = ["| model | units | LGP | LSGP | mean SGP | reading |", "|---|---:|---:|---:|---:|---|"]
    for name in ANALYSIS_MODELS:
        n = net[name]
        units = f"{n['units']} ({n['split_layers']} split layers)" if n["split_layers"] else str(n["units"])
        label = f"`{name}` ({FIGURES[name]})" if name in FIGURES else f"`{name}`"
        lines.append(f"| {label} | {units} | {n['lgp']} | {n['lsgp']} | {n['mean_sgp']:.2f} | {readings[name]} |")
    return "\n".join(lines)


def demo_recipe_section() -> str:
    """The demo's settings as the recipe holds them, and the trained model's parameter count."""
    r = RECIPES["demo"]
    if (r.model, r.task_options.get("data")) != ("yolor-elan", "shapes"):
        raise SystemExit("gen_readme: the demo recipe changed model or data; update the wording of demo_recipe_section")
    defaults = inspect.signature(generate_shapes).parameters
    net = gradpath.create_model(r.model, **r.model_overrides, num_classes=3)  # `shapes` has 3 classes
    params = sum(p.numel() for p in net.parameters())  # the count the trainer prints when it starts
    opt = {"adamw": "AdamW", "sgd": "SGD"}[r.train.get("optimizer", "sgd")]
    return "\n".join([
        f"- trains `{r.model}` (the paper's ELAN topology and YOLOv5-seg head, width {r.model_overrides['width']}, "
        f"depth {r.model_overrides['depth']}: {params / 1e6:.1f} M params)",
        f"  on the embedded `shapes` set ({defaults['n_train'].default} train / {defaults['n_val'].default} val "
        "images of circles, squares and triangles with occlusion,",
        f"  generated deterministically on first use and cached), imgsz {r.task_options['imgsz']}, batch "
        f"{r.train['batch']}, {r.train['epochs']} epochs, {opt};",
    ])


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def table1_section() -> str:
    """``gradpath reproduce table1``'s table: each family of Table 1 built as real nets of growing depth, analysed,
    its growth classes fitted and set against the paper's."""
    with tempfile.TemporaryDirectory() as tmp:
        reproduce_table1(Path(tmp))
        lines = (Path(tmp) / "results.md").read_text().splitlines()
    return "\n".join(ln for ln in lines if ln.startswith("|"))


def robustness_section() -> str:
    """The bad-input corpora of ``tests/robustness/`` as one table (input → what gradpath does), so the README
    says exactly what the tests check: data files (``test_data_inputs.py``), command lines (``test_cli_inputs.py``),
    checkpoints (``test_checkpoint_inputs.py``) and ``analyze --model FILE.py:Class`` (``test_analyze_inputs.py``)."""
    tests = ROOT / "tests" / "robustness"
    data = _load(tests / "test_data_inputs.py", "gp_data_inputs")
    lines = data.markdown_table().splitlines()
    for case_id, argv, code, message in _load(tests / "test_cli_inputs.py", "gp_cli_inputs").CASES:
        cmd = " ".join(argv).replace("|", "\\|")
        lines.append(f"| command line | `gradpath {cmd}` | exit {code}, one line: `{message}` |")
    for case_id, what, argv, code, message in _load(tests / "test_checkpoint_inputs.py", "gp_ckpt_inputs").CASES:
        cmd = " ".join(argv).replace("{w}", "W").replace("{d}", "DIR")
        lines.append(f"| checkpoint | {what}: `gradpath {cmd}` | exit {code}, one line naming W: `{message}` |")
    for case_id, _source, argv, code, message in _load(tests / "test_analyze_inputs.py", "gp_analyze_inputs").CASES:
        cmd = " ".join(argv).replace("{f}", "net.py").replace("{tmp}", "/tmp").replace("|", "\\|")
        msg = message.replace("{tmp}", "/tmp")
        lines.append(f"| analyze | `gradpath analyze {cmd}` ({case_id.replace('-', ' ')}) | exit {code}, one line: "
                     f"`{msg}` |")
    return "\n".join(lines)


RESULTS = ROOT / "docs" / "results"


def reproduce_results_section() -> str:
    """Each published small-scale table: rows (paper vs ours, mean ± std over seeds) and each claim's verdict."""
    files = sorted(RESULTS.glob("table*/results.json"), key=lambda f: int(f.parent.name[5:]))
    if not files:
        return "No small-scale training table has been published yet."
    out = []
    for f in files:
        res = json.loads(f.read_text())
        m = res["machine"]
        partial = res.get("partial")
        seeds = seeds_per_row(res)
        if partial:
            seeds = (f"**partial**: {partial['runs_done']} of {partial['runs_asked']} runs finished ({seeds}), "
                     "reported with `--finished-only`")
        out += [f"**{res['table']}: {res['title']}** — `gradpath reproduce {res['table']} --seeds {res['seeds']}"
                f"{'' if res['budget'] == 'default' else ' --budget ' + res['budget']}"
                f"{' --finished-only' if partial else ''}"
                f"{' --rows ' + ','.join(res['rows_trained']) if res.get('rows_trained') else ''}`"
                f"{' (the other rows: the runs they had finished)' if res.get('rows_trained') else ''}"
                f", budget `{res['budget']}`, "
                f"{seeds}, {m['cpu']} ({m.get('cpu_count', '?')} cores, "
                f"{str(res['jobs']) + ' run(s) at a time' if res.get('jobs') else 'runs trained elsewhere'}), "
                f"torch {m['torch']}, "
                f"{res['date'][:10]} ([results](docs/results/{f.parent.name}/results.md) · "
                f"[bars](docs/results/{f.parent.name}/bars.png))."]
        if res["recipe"].get("table_overrides"):
            out[-1] += (f" Every row is built with {res['recipe']['table_overrides']} over the recipe's scaling: "
                        f"{res['recipe'].get('table_overrides_why', '')}.")
        out.append("")
        if res["task"] == "classify":
            cols = [("paper top-1", "top1"), ("ours top-1 (%)", "top1"), ("ours top-5 (%)", "top5")]
        else:
            cols = [("paper box AP", "box_ap"), ("ours box AP (%)", "box_map"), ("ours box AP50 (%)", "box_map50"),
                    ("ours mask AP (%)", "mask_map")]
        out += ["| row | model | " + " | ".join(c[0] for c in cols) + " | LSGP |",
                "|---|---|" + "---:|" * (len(cols) + 1)]
        for r in res["rows"]:
            paper = r["paper"].get(cols[0][1])
            cells = ["-" if paper is None else f"{paper:.1f}"] + [format_mean_std(r["summary"].get(key))
                                                                  for _, key in cols[1:]]
            out.append(f"| {r['label']} | `{r['model']}` | " + " | ".join(cells)
                       + f" | {r['gradient_paths'].get('lsgp', '-')} |")
        label = "top-1" if res["task"] == "classify" else "box AP"
        secs = [run["train_seconds"] for r in res["rows"] for run in r["runs"] if run.get("train_seconds")]
        cost = (f" A run trained for {sum(secs) / len(secs) / 60:.0f} min on average (the sum of its epoch times, "
                f"{str(res['jobs']) + ' run(s) side by side' if res.get('jobs') else 'as they were trained'}); its "
                f"{len(secs)} runs add up to {sum(secs) / 3600:.1f} h."
                if secs else "")
        sd = res["seed_std"]
        spread = ("no row has two runs yet" if sd["mean"] is None else
                  f"mean {100 * sd['mean']:.2f}, max {100 * sd['max']:.2f} percentage points")
        out += ["", f"Seed-to-seed std of {label}: {spread}.{cost} Claims, judged by {res['test']}:", ""]
        for c in res["claims"]:
            p = "" if c["p"] is None else f", p = {c['p']:.2g}"
            if c.get("ci95"):
                p += f", 95% interval {format_interval(c['ci95'])} pp"
            diff = "" if c["diff"] is None else f" ({100 * c['diff']:+.2f} pp{p})"
            out.append(f"- {c['text']}: **{c['verdict']}**{diff}")
        out.append("")
    return "\n".join(out).rstrip()


SECTIONS: dict[str, Callable[[], str]] = {
    "zoo": zoo_section,
    "profile": profile_section,
    "api": api_section,
    "analysis": analysis_section,
    "demo-recipe": demo_recipe_section,
    "robustness": robustness_section,
    "table1": table1_section,
    "reproduce-results": reproduce_results_section,
}


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- gen:{name} -->\n)(.*?)(<!-- /gen:{name} -->)", re.S)


def render(text: str, names: list[str]) -> str:
    """``text`` with each named section replaced by what its generator writes now."""
    for name in names:
        pat = _pattern(name)
        if len(pat.findall(text)) != 1:
            raise SystemExit(f"gen_readme: README needs exactly one <!-- gen:{name} --> … <!-- /gen:{name} --> pair")
        body = SECTIONS[name]()
        text = pat.sub(lambda m: m.group(1) + body + "\n" + m.group(3), text)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 and print a diff when the README differs from what would be written")
    ap.add_argument("--only", help=f"comma list of sections (default all: {','.join(SECTIONS)})")
    ap.add_argument("--readme", type=Path, default=README, help="README to update (default the repository's)")
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    old = args.readme.read_text(encoding="utf-8")
    new = render(old, names)
    if new == old:
        return 0
    if args.check:
        sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                                   f"{args.readme} (now)", f"{args.readme} (generated)"))
        return 1
    args.readme.write_text(new, encoding="utf-8")
    print(f"gen_readme: updated {', '.join(names)} in {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
