"""``gradpath analyze`` end to end: table, JSON, plot, compare, scaling, user model file, errors, and every
option with a value that would differ if the option were ignored."""
import json
import subprocess
import sys

from PIL import Image
import torch
from torch import nn

from gradpath.analysis import analyze
from gradpath.analysis.plots import report_figure
from gradpath.cli import main
from gradpath.models import create_model


def run_json(capsys, *argv):
    assert main(["analyze", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_table_and_summary(capsys):
    assert main(["analyze", "tiny-prn"]) == 0
    out = capsys.readouterr().out
    assert "longest shortest gradient path (LSGP)  6" in out  # masked half: 1 longer than tiny-res
    assert "features.1[0:8]" in out  # a PRN channel group


def test_json_and_plot_file(capsys, tmp_path):
    png = tmp_path / "a.png"
    assert main(["analyze", "tiny-csp", "--json", "--plot", str(png)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["network"]["lsgp"] == 11 and d["backend"] == "fx"
    # figsize (11, 3.2 + 3.6) inches at 110 dpi: one histogram and one raster
    assert Image.open(png).size == (1210, 748)


def test_compare_numbers_and_direction(capsys):
    assert main(["analyze", "tiny-res", "--compare", "tiny-elan"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["quantity", "this:", "tiny-res", "other:", "tiny-elan", "delta", "(other", "−",
                                "this)"]
    rows = {ln.split()[0] if not ln.startswith("input") else " ".join(ln.split()[:2]): ln.split()[-3:]
            for ln in lines[2:]}
    # tiny-res: 15 units, LSGP 5, 32 loss->input paths; tiny-elan: 24 units, LSGP 11, 48 paths (the JSON below)
    assert rows["units"] == ["15", "24", "+9"]
    assert rows["lsgp"] == ["5", "11", "+6"]
    assert rows["lgp"] == ["15", "21", "+6"]
    assert rows["params"] == ["78,402", "89,394", "+10,992"]
    assert rows["input paths"] == ["32", "48", "+16"]
    assert rows["mean_sgp"] == ["3.2", "5.9583", "+2.758"]
    a, b = run_json(capsys, "tiny-res"), run_json(capsys, "tiny-elan")
    assert (a["network"]["units"], b["network"]["units"]) == (15, 24)
    assert (a["network"]["input"]["paths"], b["network"]["input"]["paths"]) == (32, 48)


def test_plot_figure_content():
    res, elan = analyze(create_model("tiny-res"), imgsz=64), analyze(create_model("tiny-elan"), imgsz=64)
    fig = report_figure(res)
    hist, raster = fig.axes
    assert len(fig.axes) == 2
    # one bar per path length to the input: tiny-res has lengths 5, 7, ..., 15; shares sum to 1
    assert [round(p.get_x() + p.get_width() / 2) for p in hist.patches] == [5, 7, 9, 11, 13, 15]
    assert abs(sum(p.get_height() for p in hist.patches) - 1) < 1e-9
    # one raster point per (unit, timestamp); 15 units labelled on the x axis in forward order
    assert len(raster.collections[0].get_offsets()) == sum(len(v.timestamps) for v in res.units)
    assert [t.get_text() for t in raster.get_xticklabels()] == [v.id for v in res.units]
    fig = report_figure(res, [elan])
    assert len(fig.axes) == 3
    assert len(fig.axes[0].patches) == 6 + 6  # tiny-elan has lengths 11, 13, ..., 21
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["tiny-res", "tiny-elan"]


def test_scaling_reproduces_table1_row(capsys):
    assert main(["analyze", "--scaling", "densenet", "--depths", "4,8,16,32"]) == 0
    out = capsys.readouterr().out
    assert "fitted growth: params O(N^2), LSGP O(1), aggregated features O(N)" in out


def test_user_model_file(tmp_path, capsys):
    f = tmp_path / "net.py"
    f.write_text("from torch import nn\n"
                 "class Net(nn.Sequential):\n"
                 "    def __init__(self):\n"
                 "        super().__init__(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))\n")
    assert main(["analyze", "--model", f"{f}:Net", "--imgsz", "16", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [(u["name"], u["sgp"]) for u in d["units"]] == [("0", 2), ("2", 1)]
    assert main(["analyze", "--model", f"{f}:Nett"]) == 2
    assert "Did you mean: Net" in capsys.readouterr().err


def test_unknown_model_is_one_line_error(capsys):
    assert main(["analyze", "tiny-rez"]) == 2
    assert "tiny-res" in capsys.readouterr().err


def test_norm_count_and_ignore(capsys):
    model = create_model("tiny-res")
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    bn_params = sum(p.numel() for m in bns for p in m.parameters())
    merge = run_json(capsys, "tiny-res")
    count = run_json(capsys, "tiny-res", "--norm", "count")
    ignore = run_json(capsys, "tiny-res", "--norm", "ignore")
    assert (merge["norm"], count["norm"], ignore["norm"]) == ("merge", "count", "ignore")
    # count: every BatchNorm is a unit of its own (14 of them), so the shortest path to the input, which
    # crosses 4 conv+BN pairs, grows from 5 to 9
    assert len(bns) == 14
    assert (merge["network"]["units"], count["network"]["units"]) == (15, 15 + 14)
    assert (merge["network"]["input"]["sgp"], count["network"]["input"]["sgp"]) == (5, 9)
    assert [u["id"] for u in count["units"][:2]] == ["features.0.conv", "features.0.bn"]
    # ignore: BN is pass-through and its parameters are not counted; units are named by the conv itself
    assert ignore["network"]["params"] == merge["network"]["params"] - bn_params == 78402 - 864
    assert ignore["units"][0]["id"] == "features.0.conv" and merge["units"][0]["id"] == "features.0"


def test_no_groups(capsys):
    groups, layers = run_json(capsys, "tiny-prn"), run_json(capsys, "tiny-prn", "--no-groups")
    # PRN's masked residuals cut 5 layers into 2 channel groups each: 15 layers, 20 units; without groups 15
    assert (groups["network"]["units"], groups["network"]["split_layers"]) == (20, 5)
    assert (layers["network"]["units"], layers["network"]["split_layers"]) == (15, 0)
    assert not any("[" in u["id"] for u in layers["units"])
    assert sum("[" in u["id"] for u in groups["units"]) == 10


def test_max_rows(capsys):
    assert main(["analyze", "tiny-res", "--max-rows", "4"]) == 0
    table = capsys.readouterr().out.split("\n\n")[0].splitlines()
    # header, rule, the first 2 units, "...", the last 2 units (tiny-res has 15)
    assert len(table) == 2 + 2 + 1 + 2
    assert table[2].split()[0] == "features.0" and table[4].split() == ["..."]
    assert main(["analyze", "tiny-res"]) == 0
    assert len(capsys.readouterr().out.split("\n\n")[0].splitlines()) == 2 + 15


def test_include_frozen(tmp_path, capsys):
    f = tmp_path / "frozen.py"
    f.write_text("from torch import nn\n"
                 "class Net(nn.Sequential):\n"
                 "    def __init__(self):\n"
                 "        super().__init__(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 1))\n"
                 "        self[2].requires_grad_(False)\n")
    hidden = run_json(capsys, "--model", f"{f}:Net", "--imgsz", "16")
    shown = run_json(capsys, "--model", f"{f}:Net", "--imgsz", "16", "--include-frozen")
    # the frozen conv still costs 1 on the path (unit "0" has SGP 3) but is listed only with the option
    assert [(u["id"], u["sgp"]) for u in hidden["units"]] == [("0", 3), ("3", 1)]
    assert [(u["id"], u["sgp"], u["trainable"]) for u in shown["units"]] == [
        ("0", 3, True), ("2", 2, False), ("3", 1, True)]


def test_registered_models_built_without_init_give_the_same_report(capsys):
    # the CLI builds registered models on the meta device and gives them uninitialised storage: same report
    for name in ("tiny-prn", "tiny-csp"):
        cli = run_json(capsys, name)
        cpu = analyze(create_model(name)).to_dict()
        assert cli == cpu
    # parameters are counted as usual: the stem ConvBNAct(3, 8, 3) has 3*8*9 + 2*8 = 232
    assert cli["units"][0]["params"] == 232 and cli["network"]["params"] == 64610


def test_cli_build_keeps_shared_parameters_and_buffer_kinds():
    # _empty_on_cpu replaces to_empty: shapes, dtypes, requires_grad, sharing and buffer persistence are kept
    from gradpath.commands.analyze import build_registered

    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4)
            self.b.weight = self.a.weight
            self.a.bias.requires_grad_(False)
            self.register_buffer("scratch", torch.zeros(3, dtype=torch.int64), persistent=False)
            self.bn = nn.BatchNorm2d(2)

    m = build_registered(Tied)
    assert all(t.device.type == "cpu" for t in [*m.parameters(), *m.buffers()])
    assert m.a.weight is m.b.weight and isinstance(m.a.weight, nn.Parameter)
    assert not m.a.bias.requires_grad and m.b.bias.requires_grad
    assert m.scratch.dtype == torch.int64 and "scratch" not in m.state_dict()
    assert set(m.bn.state_dict()) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}


def test_cli_analyze_of_a_yolor_model_does_not_import_the_compiler_stack():
    # Start-up cost, not timed: building on the meta device must not touch torch's Python reference kernels
    # (ImplicitA's normal_ and to_empty's empty_like did: +2-3 s per `gradpath analyze`), and `import gradpath`
    # must not import the flop counter (triton). Checked in a fresh interpreter.
    code = ("import sys\nfrom gradpath.cli import main\n"
            "assert main(['analyze', 'yolor-v3', '--imgsz', '64', '--json']) == 0\n"
            "mods = ('torch._dynamo', 'torch.fx.experimental.symbolic_shapes', 'torch.utils.flop_counter')\n"
            "print('LOADED', [m for m in mods if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "LOADED []" in out.stdout
