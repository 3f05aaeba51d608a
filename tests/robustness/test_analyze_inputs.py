"""``gradpath analyze`` user mistakes: each is one line on stderr naming the option or file, exit code 2, and no
traceback; a model fx cannot trace is analysed by the autograd fallback (or refused in one line with
``--backend fx``).

``CASES`` is the corpus as data — (id, the user file's source or None, argv, exit code, a fragment the one-line
message must contain). ``{f}`` in an argument is the user file, ``{tmp}`` the test's temporary folder.
"""
from __future__ import annotations

import pytest

from gradpath.cli import main

NET = ("from torch import nn\n"
       "class Net(nn.Sequential):\n"
       "    def __init__(self):\n"
       "        super().__init__(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))\n")
NEEDS_ARG = ("from torch import nn\n"
             "class Net(nn.Module):\n"
             "    def __init__(self, width, depth=2):\n"
             "        super().__init__()\n"
             "        self.c = nn.Conv2d(3, width, 3)\n")
DYNAMIC = ("from torch import nn\n"
           "class Net(nn.Module):\n"
           "    def __init__(self):\n"
           "        super().__init__()\n"
           "        self.a, self.b = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3)\n"
           "    def forward(self, x):\n"
           "        x = self.a(x)\n"
           "        if x.mean() > -1e9:  # data-dependent control flow: fx cannot trace it\n"
           "            x = self.b(x)\n"
           "        return x\n")

CASES = [
    ("model-file-syntax-error", "class Net(nn.Module:\n    pass\n", ["--model", "{f}:Net"], 2,
     "net.py line 1: syntax error"),
    ("model-file-missing", None, ["--model", "{tmp}/absent.py:Net"], 2, "--model: no such file"),
    ("model-file-no-colon", NET, ["--model", "{f}"], 2, "must look like path/to/file.py:ClassName"),
    ("model-class-missing", NET, ["--model", "{f}:Nett"], 2, "has no 'Nett'. Did you mean: Net?"),
    ("model-class-needs-arguments", NEEDS_ARG, ["--model", "{f}:Net"], 2, "Net() needs arguments (width)"),
    ("model-not-a-module", "def Net():\n    return 1\n", ["--model", "{f}:Net"], 2, "is not an nn.Module class"),
    ("model-import-fails", "import no_such_module_xyz\n", ["--model", "{f}:Net"], 2,
     "cannot be imported: No module named 'no_such_module_xyz'"),
    ("untraceable-forward-fx", DYNAMIC, ["--model", "{f}:Net", "--imgsz", "16", "--backend", "fx"], 2,
     "fx cannot trace Net: TraceError"),
    ("plot-folder-missing", None, ["tiny-res", "--plot", "{tmp}/nodir/x.png"], 2,
     "the folder {tmp}/nodir does not exist"),
    ("plot-unknown-type", None, ["tiny-res", "--plot", "{tmp}/x.xyz"], 2, "unknown image type .xyz"),
    ("plot-is-a-folder", None, ["tiny-res", "--plot", "{tmp}"], 2, "is a folder"),
    ("imgsz-negative", None, ["tiny-res", "--imgsz", "-5"], 2, "--imgsz must be at least 32, got -5"),
    ("imgsz-not-multiple-of-stride", None, ["yolov5l-seg", "--imgsz", "8"], 2, "--imgsz must be at least 32, got 8"),
    ("imgsz-not-multiple", None, ["tiny-res", "--compare", "tiny-elan", "--imgsz", "40"], 2,
     "--imgsz must be a multiple of 32 (the largest stride), got 40"),
    ("imgsz-user-model-zero", NET, ["--model", "{f}:Net", "--imgsz", "0"], 2, "--imgsz must be positive, got 0"),
    ("max-rows-zero", None, ["tiny-res", "--max-rows", "0"], 2, "--max-rows must be positive, got 0"),
    ("depths-too-few", None, ["--scaling", "plain", "--depths", "4,8"], 2, "--depths needs at least 3 depths"),
    ("nothing-to-analyse", None, [], 2, "give a registered MODEL, --model FILE.py:ClassName, or --scaling"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_analyze_user_mistake_is_one_line(case, tmp_path, capsys):
    _, source, argv, code, fragment = case
    f = tmp_path / "net.py"
    if source is not None:
        f.write_text(source)
    argv = [a.replace("{f}", str(f)).replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["analyze", *argv]) == code
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("gradpath analyze: error: ")
    assert fragment.replace("{tmp}", str(tmp_path)) in err, err
    assert not (tmp_path / "nodir").exists()


def test_untraceable_forward_falls_back_to_autograd(tmp_path, capsys):
    f = tmp_path / "net.py"
    f.write_text(DYNAMIC)
    assert main(["analyze", "--model", f"{f}:Net", "--imgsz", "16"]) == 0
    out = capsys.readouterr().out
    # two convs in a chain, analysed by the autograd backend: a has SGP 2, b SGP 1 (params 3*4*9 + 4 and
    # 4*4*9 + 4; that backend sees layers, not channels, so each is one group "0:1")
    assert "(backend autograd, norm merge)" in out
    assert "warning: fx could not trace Net (TraceError); fell back to the autograd backend" in out
    rows = [ln.split()[:5] for ln in out.splitlines() if ln.startswith(("a ", "b "))]
    assert rows == [["a", "0:1", "112", "2", "2"], ["b", "0:1", "148", "1", "1"]]
