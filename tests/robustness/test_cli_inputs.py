"""User mistakes on the command line: each is one line on stderr naming the option or file, exit code 2, and no
traceback (the CLI's promise in the README).

``CASES`` is the corpus as data — (id, argv, expected exit code, a fragment the one-line message must contain) —
so that it can be rendered as a table of "input → what gradpath does". ``{tmp}`` in an argument is the test's
temporary folder, which holds a small YOLO dataset with one corrupt image (``bad/data.yaml``).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gradpath.cli import main

CASES = [
    # sizes and counts
    ("imgsz-below-stride", ["profile", "tiny-res", "--imgsz", "7"], 2, "--imgsz must be at least 32, got 7"),
    ("imgsz-negative", ["profile", "tiny-res", "--imgsz", "-5"], 2, "--imgsz must be at least 32, got -5"),
    ("imgsz-not-multiple", ["profile", "tiny-res", "--imgsz", "100"], 2,
     "--imgsz must be a multiple of 32 (the largest stride), got 100; try 96 or 128"),
    ("imgsz-not-integer", ["profile", "tiny-res", "--imgsz", "6.4e2"], 2, "argument --imgsz: invalid int value"),
    ("batch-zero", ["profile", "tiny-res", "--batch", "0"], 2, "--batch must be positive, got 0"),
    ("iters-negative", ["profile", "tiny-res", "--iters", "-1"], 2, "--iters must be 0 or more, got -1"),
    # devices (CUDA is reported absent in these tests, whatever the machine has)
    ("device-cuda-index-no-cuda", ["profile", "tiny-res", "--device", "cuda:0"], 2,
     "--device cuda:0: CUDA is not available on this machine (torch.cuda.is_available() is False); "
     "use --device cpu"),
    ("device-cuda-no-cuda", ["profile", "tiny-res", "--device", "cuda"], 2, "--device cuda: CUDA is not available"),
    ("device-number-no-cuda", ["profile", "tiny-res", "--device", "0"], 2, "--device 0: CUDA is not available"),
    ("device-not-a-device", ["profile", "tiny-res", "--device", "gpu"], 2,
     "--device 'gpu' is not a device; use cpu, cuda, cuda:N, N or mps"),
    # model names and overrides
    ("unknown-model", ["profile", "tiny-cps"], 2, "unknown model 'tiny-cps'. Did you mean: tiny-csp"),
    ("models-pattern-no-match", ["models", "zzz*"], 2, "no model matches 'zzz*'"),
    ("models-pattern-no-match-json", ["models", "yolor-x*", "--json"], 2, "no model matches 'yolor-x*'"),
    ("set-without-equals", ["profile", "tiny-res", "--set", "width"], 2, "--set 'width' must look like key=value"),
    ("set-unreadable-value", ["profile", "tiny-res", "--set", "depths=[2,"], 2,
     "--set 'depths=[2,': the value '[2,' cannot be read"),
    ("set-unknown-field", ["profile", "tiny-res", "--set", "spp=false"], 2,
     "unknown option 'spp' for model 'tiny-res'"),
    ("set-wrong-type-number", ["profile", "yolor-elan", "--set", "width=abc", "--iters", "0"], 2, "width"),
    ("set-wrong-type-bool", ["profile", "yolor-v3", "--set", "spp=maybe", "--imgsz", "64", "--iters", "0"], 2, "spp"),
    ("fusion-contradicts-set", ["profile", "tiny-csp", "--fusion", "first", "--set", "fusion=last"], 2,
     "--fusion first contradicts --set fusion=last"),
    # options and commands
    ("mistyped-option", ["profile", "tiny-res", "--imsz", "32"], 2, "--imsz → --imgsz"),
    ("abbreviated-option", ["profile", "tiny-res", "--img", "32"], 2, "unrecognized arguments: --img"),
    ("mistyped-command", ["profle", "tiny-res"], 2, "invalid choice: 'profle'"),
    # datasets
    ("check-data-missing-yaml", ["check-data", "{tmp}/missing.yaml"], 2, "missing.yaml"),
    ("check-data-corrupt-image", ["check-data", "{tmp}/bad/data.yaml", "--split", "train"], 2,
     "{tmp}/bad/data.yaml: 1 error(s) listed above"),
]


def write_dataset_with_corrupt_image(root) -> None:
    """``root/data.yaml``: a YOLO split of one good image and one file that is not an image at all."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.fromarray(np.full((32, 48, 3), 90, np.uint8)).save(root / "images" / "good.png")
    (root / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    for stem in ("good", "broken"):
        (root / "labels" / f"{stem}.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    (root / "data.yaml").write_text("path: .\ntrain: images\nval: images\nnames: [thing]\n")


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """``gradpath ARGV`` in this process: exit code, stdout, stderr (argparse's own errors end in SystemExit)."""
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("case_id, argv, code, fragment", CASES, ids=[c[0] for c in CASES])
def test_user_mistake_is_one_line(case_id, argv, code, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if case_id == "check-data-corrupt-image":
        write_dataset_with_corrupt_image(tmp_path / "bad")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    rc, _out, err = run_cli(argv, capsys)
    assert rc == code, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert fragment.replace("{tmp}", str(tmp_path)) in err


def test_corpus_is_large_and_ids_unique():
    assert len(CASES) >= 12
    assert len({c[0] for c in CASES}) == len(CASES)
