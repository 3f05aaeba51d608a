"""``gradpath analyze`` end to end: table, JSON, plot, compare, scaling, user model file, errors."""
import json

from gradpath.cli import main


def test_table_and_summary(capsys):
    assert main(["analyze", "tiny-prn"]) == 0
    out = capsys.readouterr().out
    assert "longest shortest gradient path (LSGP)  6" in out  # masked half: 1 longer than tiny-res
    assert "features.1[0:8]" in out  # a PRN channel group


def test_json_plot_and_compare(capsys, tmp_path):
    png = tmp_path / "a.png"
    assert main(["analyze", "tiny-csp", "--json", "--plot", str(png)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["network"]["lsgp"] == 11 and d["backend"] == "fx" and png.stat().st_size > 10_000
    assert main(["analyze", "tiny-res", "--compare", "tiny-elan"]) == 0
    out = capsys.readouterr().out
    assert "tiny-elan" in out and "lsgp" in out


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
