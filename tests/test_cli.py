"""CLI: help, models, profile --json and its options, check-data --no-decode, one-line errors.

Every option is tested against a value it must change, so a test fails if the option were ignored. More user
mistakes, each a one-line error, are in tests/robustness/test_cli_inputs.py.
"""
import argparse
import json
import subprocess
import sys

import numpy as np
from PIL import Image

import gradpath
from gradpath.cli import build_parser, main
from gradpath.commands import COMMANDS


def run(*args):
    return subprocess.run([sys.executable, "-m", "gradpath", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_commands():
    r = run("--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())  # argparse wraps long summaries
    for name, (_, summary) in COMMANDS.items():
        assert f"\n    {name}" in r.stdout and f"{name} {summary}" in text


def test_models_table(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tiny-elan" in out


def test_models_json(capsys):
    assert main(["models", "tiny-*", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {d["name"] for d in data} == {"tiny-res", "tiny-prn", "tiny-csp", "tiny-elan"}


def profile_json(capsys, *argv):
    assert main(["profile", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_profile_fusion_first(capsys):
    data = profile_json(capsys, "tiny-csp", "--fusion", "first", "--imgsz", "32", "--iters", "0")
    ref = gradpath.profile(gradpath.create_model("tiny-csp", fusion="first"), 32)
    assert {k: data[k] for k in ("params", "params_weights", "gmacs")} == \
        {k: ref[k] for k in ("params", "params_weights", "gmacs")}
    # fusion first drops the transition conv before the concat: 64,002 -> 62,602 params, 1,185,024 -> 1,160,448
    # FLOPs at 32x32 (the default fusion's figures would fail here)
    assert data["imgsz"] == 32 and data["params"] == 62_602 and round(data["gflops"] * 1e9) == 1_160_448


def test_profile_batch_and_device(capsys):
    one = profile_json(capsys, "tiny-res", "--imgsz", "64", "--iters", "0")
    two = profile_json(capsys, "tiny-res", "--imgsz", "64", "--batch", "2", "--device", "cpu",
                       "--iters", "1", "--warmup", "0")
    assert two["batch"] == 2 and two["params"] == one["params"]
    assert round(two["gflops"] * 1e9) == 2 * round(one["gflops"] * 1e9)  # FLOPs are per batch: exactly twice
    assert two["latency_device"] == "cpu" and two["latency_iters"] == 1 and "latency_ms" not in one


def test_set_list_override(capsys):
    # yolor-elan-11 is ELAN-{1,1}s (34,516,282 params, 126.36 GFLOPs at 640); --set elan_stack=[2,1] must give
    # exactly the registered ELAN-{2,1}s yolor-elan (Table 7: 143.2 G; ours 143.23 G, 38,268,602 params)
    data = profile_json(capsys, "yolor-elan-11", "--set", "elan_stack=[2,1]", "--imgsz", "640", "--iters", "0")
    assert data["params"] == 38_268_602 and round(data["gflops"], 2) == 143.23


def test_check_data_no_decode(tmp_path, capsys):
    # A file that is not an image: only decoding finds it, so --no-decode passes and the full check fails.
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.fromarray(np.full((32, 48, 3), 90, np.uint8)).save(tmp_path / "images" / "good.png")
    (tmp_path / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    for stem in ("good", "broken"):
        (tmp_path / "labels" / f"{stem}.txt").write_text("0 0.5 0.5 0.25 0.25\n")
    data = tmp_path / "data.yaml"
    data.write_text("path: .\ntrain: images\nval: images\nnames: [thing]\n")
    assert main(["check-data", str(data), "--split", "train", "--no-decode"]) == 0
    assert capsys.readouterr().out.strip().endswith("0 error(s), 0 warning(s): OK")
    assert main(["check-data", str(data), "--split", "train"]) == 2
    out, err = capsys.readouterr()
    assert "error: [train] images/broken.png: corrupt or unreadable image" in out
    assert err == f"gradpath check-data: error: {data}: 1 error(s) listed above; fix them before training\n"


def test_command_summaries_match_their_modules():
    # `gradpath --help` lists COMMANDS' summaries without importing the modules; they must say the same.
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    helps = {action.dest: action.help for action in sub._choices_actions}
    assert helps == {name: summary for name, (_, summary) in COMMANDS.items()}


def test_unknown_model_is_one_line_error():
    r = run("profile", "tiny-cps")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "tiny-csp" in r.stderr and "Traceback" not in r.stderr


def test_mistyped_option_suggests():
    r = run("profile", "tiny-csp", "--imsz", "32")
    assert r.returncode == 2 and "--imgsz" in r.stderr
