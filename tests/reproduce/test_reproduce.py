"""`gradpath reproduce`: a quick small-scale table end to end, the claim test, and every full-scale recipe dry-run."""
from __future__ import annotations

import json
import math

import pytest
import yaml

from gradpath.cli import main
from gradpath.experiments.tables import TABLES
from gradpath.models.registry import get_entry
from gradpath.reproduce.figures import reference_rows
from gradpath.reproduce.report import bar_ylim, timestamps_cell
from gradpath.reproduce.full import dry_run, full_imgsz
from gradpath.reproduce.stats import compare


def test_table3_quick_writes_outputs_and_val_rescores_a_row(tmp_path, capsys):
    out = tmp_path / "repro"
    assert main(["reproduce", "table3", "--budget", "quick", "--seeds", "1", "--project", str(out), "--quiet",
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "n/a (1 seed): a stop-gradient on the identity hurts" in printed
    t = out / "table3"
    for f in ("results.json", "results.md", "bars.png", "curves.png"):
        assert (t / f).is_file(), f
    res = json.loads((t / "results.json").read_text())
    assert [r["key"] for r in res["rows"]] == ["yolor-csp", "sg-identity", "sg-block"]
    assert res["budget"] == "quick" and res["seeds"] == 1 and "Welch" in res["test"]
    assert [c["verdict"] for c in res["claims"]] == ["n/a (1 seed)"] * 3
    rows = {r["key"]: r for r in res["rows"]}
    # the exact counts and the analyzer's figures stand next to the result
    assert rows["yolor-csp"]["counts"]["gflops"] == pytest.approx(158.96, abs=0.01)
    assert rows["sg-block"]["gradient_paths"]["lgp"] < rows["yolor-csp"]["gradient_paths"]["lgp"]
    assert rows["sg-identity"]["gradient_paths"]["lsgp"] > rows["yolor-csp"]["gradient_paths"]["lsgp"]
    ts = rows["sg-identity"]["gradient_paths"]["timestamps_vs"]
    assert ts["row"] == "yolor-csp" and ts["units_changed"] > 0
    assert "timestamps_vs" not in rows["yolor-csp"]["gradient_paths"]  # the first row has no reference
    md = (t / "results.md").read_text()
    assert "| + stop gradient on identity (Fig. 9a) | yolor-csp-sg-identity | 158.96 |" in md
    assert "not meaningful" in md
    assert "(1 seed) |" in md and "± 0.0" not in md  # one seed has no spread to print
    assert all(r["summary"]["box_map"]["n"] == 1 for r in res["rows"])
    assert "| difference (pp) | 95% interval (pp) | p | verdict |" in md  # how much each verdict says

    # `gradpath val` on a row's saved best.pt gives the number in results.json
    run = rows["sg-block"]["runs"][0]
    data = res["recipe"]["data"]
    assert main(["val", "--weights", run["weights"], "--data", str(_shapes_yaml(data)), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["box"]["map"] == pytest.approx(run["metrics"]["box_map"], abs=1e-4)
    assert m["mask"]["map"] == pytest.approx(run["metrics"]["mask_map"], abs=1e-4)

    # runs are keyed by task, budget, model and seed (shared by the tables that have the same row), not by table
    run_folder = out / "runs" / "quick" / "segment" / "yolor-csp-sg-block-seed0"
    assert run["run_dir"] == str(run_folder)
    recipe = json.loads((run_folder / "recipe.json").read_text())
    assert recipe["model"] == "yolor-csp-sg-block" and recipe["budget"] == "quick" and recipe["seed"] == 0
    # the settings the recipe leaves out are reported as the runs really got them
    trained = yaml.safe_load((run_folder / "args.yaml").read_text())["train"]
    implicit = res["recipe"]["train_defaults"]
    assert implicit and "momentum" in implicit and not set(implicit) & set(res["recipe"]["train"])
    assert {k: trained[k] for k in implicit} == implicit
    assert f"every other training setting at the library default: {implicit}" in md

    # a rerun reuses the finished runs: same numbers, nothing retrained
    before = (run_folder / "weights" / "last.pt").stat().st_mtime_ns
    assert main(["reproduce", "table3", "--budget", "quick", "--seeds", "1", "--project", str(out), "--quiet"]) == 0
    assert (run_folder / "weights" / "last.pt").stat().st_mtime_ns == before
    again = json.loads((t / "results.json").read_text())
    assert [r["runs"][0]["metrics"] for r in again["rows"]] == [r["runs"][0]["metrics"] for r in res["rows"]]

    # a saved run whose recipe differs from today's is refused, in one line naming its recipe.json
    first = out / "runs" / "quick" / "segment" / "yolor-csp-seed0" / "recipe.json"
    changed = json.loads(first.read_text())
    changed["recipe"]["train"]["epochs"] = 2
    first.write_text(json.dumps(changed))
    capsys.readouterr()
    assert main(["reproduce", "table3", "--budget", "quick", "--seeds", "1", "--project", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(first) in err and "another recipe (differs in: train)" in err and len(err.splitlines()) == 1


def test_a_run_on_another_version_of_the_embedded_set_is_refused(tmp_path):
    """The generated sets change between generator versions (shapes-cls 3 replaced the checker fill), so a saved
    run must name the version it was trained on; a segment run saved before the field was trained on shapes 1."""
    from gradpath.errors import GradpathError
    from gradpath.reproduce.small import _check_recipe, _fingerprint, data_version

    def saved(task_table: str, edit) -> dict:
        fp = _fingerprint(TABLES[task_table], "default", TABLES[task_table].rows[0].model, 0)
        edit(fp)
        (tmp_path / "recipe.json").write_text(json.dumps(fp))
        return _fingerprint(TABLES[task_table], "default", TABLES[task_table].rows[0].model, 0)

    assert data_version("segment") == 1 and data_version("classify") == 3
    _check_recipe(tmp_path, saved("table4", lambda fp: None))                     # same version: reused
    _check_recipe(tmp_path, saved("table4", lambda fp: fp.pop("data_version")))   # legacy segment run: shapes 1
    with pytest.raises(GradpathError, match="version unknown of the embedded set, today's is 3"):
        _check_recipe(tmp_path, saved("table2", lambda fp: fp.pop("data_version")))
    with pytest.raises(GradpathError, match=r"recipe.json: this run was trained on version 2 of the embedded set"):
        _check_recipe(tmp_path, saved("table2", lambda fp: fp.update(data_version=2)))


def test_jobs_train_runs_side_by_side_then_gather(tmp_path, capsys):
    out = tmp_path / "repro"
    assert main(["reproduce", "table5", "--budget", "quick", "--seeds", "1", "--jobs", "2", "--project", str(out),
                 "--quiet", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "training 2 run(s), 2 at a time" in printed and printed.count("seed 0 finished (box_map ") == 2
    assert "[2/2] " in printed and " elapsed, done" in printed  # the table's progress line
    res = json.loads((out / "table5" / "results.json").read_text())
    for row, model in zip(res["rows"], ("yolor-v3", "yolor-prn")):
        folder = out / "runs" / "quick" / "segment" / f"{model}-seed0"
        assert row["runs"][0]["run_dir"] == str(folder) and (folder / "weights" / "best.pt").is_file()
        assert json.loads((folder / "recipe.json").read_text())["model"] == model
        assert "epoch 1/1: box=" in (folder / "train.log").read_text()  # a job's progress goes to its folder
        assert "box_map" in row["runs"][0]["metrics"]
    # the gathering pass reused what the jobs trained (no second training in this process)
    assert "reusing the finished run" in printed
    assert main(["reproduce", "table5", "--jobs", "0", "--project", str(out)]) == 2
    assert "--jobs must be >= 1, got 0" in capsys.readouterr().err


def test_time_left_estimates_from_the_runs_trained_here():
    from gradpath.reproduce.small import time_left

    assert time_left(30.0, [], 8, 3) == "0:01 elapsed"  # nothing trained yet (or only reused runs): no guess
    # 9 runs, 3 side by side, the first finished after 58 min: 8 left at 58 min each, 3 at a time
    assert time_left(3480.0, [3480.0], 8, 3) == "0:58 elapsed, about 2:35 left"
    assert time_left(7200.0, [3000.0, 3600.0], 0, 2) == "2:00 elapsed, done"


def _shapes_yaml(settings):
    from gradpath.data.shapes import default_shapes_root

    return default_shapes_root(**settings) / "data.yaml"


def test_claim_verdicts_by_hand():
    # means 0.51 vs 0.41333; Welch t = 9.17 (hand: diff 0.09667 / sqrt(1e-4/3 + 2.3333e-4/3) = 0.09667 / 0.010541)
    r = compare("better", [0.5, 0.52, 0.51], [0.4, 0.41, 0.43])
    assert r["verdict"] == "holds" and r["t"] == pytest.approx(9.1706, abs=1e-3) and r["p"] < 0.05
    # Welch-Satterthwaite df = (a + b)^2 / (a^2/2 + b^2/2) with a = 1e-4/3, b = 2.3333e-4/3: 3.448; t(0.975, 3.448)
    # lies between t(0.975, 4) = 2.776 and t(0.975, 3) = 3.182, so the interval is 0.09667 +- (0.0293 .. 0.0335)
    low, high = r["ci95"]
    assert low + high == pytest.approx(2 * 0.096667, abs=1e-4)
    assert 2.776 * 0.010541 < (high - low) / 2 < 3.182 * 0.010541
    assert compare("better", [0.4, 0.41, 0.43], [0.5, 0.52, 0.51])["verdict"] == "reversed"
    assert compare("better", [0.5, 0.4], [0.45, 0.46])["verdict"] == "within noise"
    assert compare("not_worse", [0.45, 0.55], [0.5, 0.51])["verdict"] == "holds"  # noise cannot refute it
    assert compare("not_worse", [0.30, 0.31, 0.29], [0.5, 0.52, 0.51])["verdict"] == "reversed"
    assert compare("better", [0.5], [0.4])["verdict"] == "n/a (1 seed)"


def test_bar_chart_axis_starts_at_zero_unless_that_hides_the_differences():
    assert bar_ylim([40.0, 60.0, 72.0]) == pytest.approx((24.0, 88.0))  # 40 > 72 / 2: pad half the spread, 16
    assert bar_ylim([30.0, 60.0, 72.0]) is None  # the lowest under half the highest: bars from 0
    # Table 2: 93.7 .. 98.7 -> spread 5.0, pad 2.5: 91.2 .. 100 (capped)
    assert bar_ylim([93.7, 98.7, 96.0]) == pytest.approx((91.2, 100.0))
    assert bar_ylim([50.0, 50.4]) == pytest.approx((49.0, 51.4))  # at least one point of margin
    assert bar_ylim([]) is None


def test_each_row_compares_timestamps_with_the_row_its_claim_names():
    # a CSP row against its own baseline, not against the table's first row; baselines have no reference
    assert reference_rows(TABLES["table2"]) == {"csp-darknet53": "darknet53", "csp-resnet50": "resnet50",
                                                "csp-resnext50": "resnext50"}
    assert reference_rows(TABLES["table3"]) == {"sg-identity": "yolor-csp", "sg-block": "yolor-csp"}
    assert reference_rows(TABLES["table7"]) == {"elan-11": "yolor-v3", "elan-21": "elan-11", "elan-22": "elan-21"}
    for spec in TABLES.values():  # always an earlier row, so the figures can be computed in row order
        order = [r.key for r in spec.rows]
        assert all(order.index(ref) < order.index(row) for row, ref in reference_rows(spec).items())


def test_timestamps_cell_compares_layers_only_where_the_networks_share_them():
    # Table 2's published figures: CSPDarknet-53 shares 4 of its 73 layer names with Darknet-53
    base = {"key": "darknet53", "gradient_paths": {"units": 53, "mean_timestamps": 12.509}}
    csp = {"units": 73, "mean_timestamps": 23.219,
           "timestamps_vs": {"row": "darknet53", "units_compared": 4, "units_changed": 3}}
    rows = [base, {"key": "csp-darknet53", "gradient_paths": csp}]
    assert timestamps_cell(csp, rows) == ("vs darknet53: layers do not correspond (4 of 73 share a name); "
                                          "mean timestamps per layer 23.2 vs 12.5")
    # Table 3: a stop-gradient variant has its baseline's 124 layers
    sg = {"units": 124, "timestamps_vs": {"row": "yolor-csp", "units_compared": 124, "units_changed": 63}}
    rows = [{"key": "yolor-csp", "gradient_paths": {"units": 124}}, {"key": "sg-identity", "gradient_paths": sg}]
    assert timestamps_cell(sg, rows) == "vs yolor-csp: 63/124 layers differ"
    assert timestamps_cell({"units": 124}, rows) == "-"  # a row without a reference


def test_full_scale_commands_name_every_row(tmp_path, capsys):
    assert main(["reproduce", "table6", "--scale", "full", "--project", str(tmp_path), "--data-root", "/data/coco"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("torchrun")]
    assert len(lines) == 5 and all("--imgsz 640" in ln and "--epochs 300" in ln and "--hyp scratch-high" in ln
                                   for ln in lines)
    assert [ln.split("--model ")[1].split()[0] for ln in lines] == [r.model for r in TABLES["table6"].rows]
    assert "path: /data/coco" in (tmp_path / "table6" / "full" / "coco.yaml").read_text()
    assert main(["reproduce", "table2", "--scale", "full", "--launch", "--project", str(tmp_path)]) == 2
    assert "--launch needs --data-root" in capsys.readouterr().err


MODELS = sorted({(r.model, spec.task) for spec in TABLES.values() for r in spec.rows})


@pytest.mark.parametrize("model,task", MODELS, ids=[m for m, _ in MODELS])
def test_full_scale_recipe_dry_run(model, task, tmp_path):
    """Each row's full-size model runs one forward/backward at the recipe's real input size."""
    spec = next(s for s in TABLES.values() if s.task == task)
    imgsz = full_imgsz(spec)
    assert imgsz == (640 if task == "segment" else 256)
    get_entry(model)
    assert math.isfinite(dry_run(model, imgsz))  # and every parameter got a gradient (dry_run checks)


def test_table4_keeps_full_depth_at_small_scale(tmp_path):
    """Table 4's claim is about depth, so its rows keep depth 1.0 (all of them: a table override, not a row's),
    in their own run folders and fingerprints, so a run of the recipe's shallow net is never taken for one."""
    from gradpath.models.registry import create_model
    from gradpath.nn import OSABlock
    from gradpath.reproduce.small import _fingerprint, _folder, effective_overrides, run_dir

    spec = TABLES["table4"]
    for budget in ("quick", "default"):
        eff = effective_overrides(spec, budget)
        assert eff["depth"] == 1.0 and eff["width"] < 1.0
        assert _fingerprint(spec, budget, "vovnet99", 0)["model_overrides"] == eff
    assert _folder(spec, tmp_path, "default", "vovnet99", 1) == tmp_path / "default" / "segment" / "vovnet99-depth1.0-seed1"
    assert run_dir(tmp_path, "segment", "default", "yolor-v3", 0) == tmp_path / "default" / "segment" / "yolor-v3-seed0"
    # the other tables scale depth as their recipe says
    assert all(not TABLES[t].model_overrides for t in TABLES if t != "table4")
    # what is trained is the deep plain net: 16 OSA modules (1/3/9/3), each with its own transition
    net = create_model("vovnet99", **effective_overrides(spec, "default"))
    assert sum(isinstance(m, OSABlock) for m in net.modules()) == 16
    shallow = create_model("vovnet99", width=0.25, depth=0.34)
    assert sum(isinstance(m, OSABlock) for m in shallow.modules()) == 6


def test_a_row_whose_loss_diverges_is_a_result_scored_zero(tmp_path, capsys, monkeypatch):
    """Table 4's plain VoVNet is said to fail to converge: a non-finite loss must not abort the table. The run
    is recorded (diverged.json), scored 0 on every metric, named in results.md, and a rerun does not retrain it."""
    from gradpath.tasks.segment.task import SegmentTask

    real_loss = SegmentTask.loss

    def loss(self, model, batch):
        value, items = real_loss(self, model, batch)
        if getattr(model, "gradpath_name", None) == "yolor-prn":
            value = value * float("nan")
        return value, items

    monkeypatch.setattr(SegmentTask, "loss", loss)
    out = tmp_path / "repro"
    args = ["reproduce", "table5", "--budget", "quick", "--seeds", "1", "--project", str(out), "--quiet",
            "--device", "cpu"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "yolor-prn seed 0: diverged (loss became nan at epoch 1/1, batch 1/" in printed
    res = json.loads((out / "table5" / "results.json").read_text())
    prn = {r["key"]: r for r in res["rows"]}["yolor-prn"]
    run = prn["runs"][0]
    assert run["diverged"]["epoch"] == 1 and run["diverged"]["batch"] == 1 and run["weights"] is None
    assert run["metrics"]["box_map"] == 0.0 and set(run["metrics"]) == set(res["rows"][0]["runs"][0]["metrics"])
    assert prn["summary"]["box_map"]["mean"] == 0.0
    assert (out / "runs" / "quick" / "segment" / "yolor-prn-seed0" / "diverged.json").is_file()
    assert "**Diverged**" in (out / "table5" / "results.md").read_text()
    # a rerun reuses the record instead of training the row again
    monkeypatch.setattr(SegmentTask, "loss", real_loss)
    assert main(args) == 0
    assert "its loss became non-finite in an earlier invocation" in capsys.readouterr().out

    # --finished-only: a look at a table still training elsewhere; trains nothing, says it is partial
    assert main([*args[:5], "2", *args[6:], "--finished-only"]) == 0
    printed = capsys.readouterr().out
    assert "reporting the 2 of 4 runs finished so far (nothing trained)" in printed and "PARTIAL" in printed
    assert not (out / "runs" / "quick" / "segment" / "yolor-v3-seed1").exists()
    res = json.loads((out / "table5" / "results.json").read_text())
    assert res["partial"] == {"runs_done": 2, "runs_asked": 4} and res["seeds"] == 2
    assert [len(r["runs"]) for r in res["rows"]] == [1, 1] and res["claims"][0]["verdict"] == "n/a (1 seed)"
    assert res["seed_std"]["mean"] is None  # one run per row: no spread measured, not a std of 0
    assert "**Partial: reported with `--finished-only`" in (out / "table5" / "results.md").read_text()
    # the README section generated from it says so too
    gen = _load_script("gen_readme")
    (tmp_path / "results" / "table5").mkdir(parents=True)
    (tmp_path / "results" / "table5" / "results.json").write_text((out / "table5" / "results.json").read_text())
    monkeypatch.setattr(gen, "RESULTS", tmp_path / "results")
    section = gen.reproduce_results_section()
    assert "`gradpath reproduce table5 --seeds 2 --budget quick --finished-only`" in section
    assert "**partial**: 2 of 4 runs finished" in section and "no row has two runs yet" in section

    # --rows: more seeds for some rows only; the others keep the runs they have, and the report says who has what
    assert main([*args[:5], "2", *args[6:], "--rows", "yolor-prn"]) == 0
    capsys.readouterr()
    assert (out / "runs" / "quick" / "segment" / "yolor-prn-seed1" / "weights" / "best.pt").is_file()
    assert not (out / "runs" / "quick" / "segment" / "yolor-v3-seed1").exists()
    res = json.loads((out / "table5" / "results.json").read_text())
    assert [len(r["runs"]) for r in res["rows"]] == [1, 2] and res["rows_trained"] == ["yolor-prn"]
    assert res["partial"] is None
    assert "seeds per row: yolor-v3 1, yolor-prn 2" in (out / "table5" / "results.md").read_text()
    (tmp_path / "results" / "table5" / "results.json").write_text((out / "table5" / "results.json").read_text())
    assert "--seeds 2 --budget quick --rows yolor-prn` (the other rows" in gen.reproduce_results_section()
    assert main([*args, "--rows", "yolor-v3,prn"]) == 2
    assert "--rows: table5 has no row 'prn'; its rows: yolor-v3, yolor-prn" in capsys.readouterr().err


def _load_script(name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
