"""CLI: help, models, profile --json, one-line errors."""
import json
import subprocess
import sys

from gradpath.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "gradpath", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_commands():
    r = run("--help")
    assert r.returncode == 0 and "models" in r.stdout and "profile" in r.stdout


def test_models_table(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tiny-elan" in out


def test_models_json(capsys):
    assert main(["models", "tiny-*", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {d["name"] for d in data} == {"tiny-res", "tiny-prn", "tiny-csp", "tiny-elan"}


def test_profile_json(capsys):
    assert main(["profile", "tiny-csp", "--fusion", "first", "--imgsz", "32", "--iters", "0", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["imgsz"] == 32 and data["params"] > 0 and data["gflops"] > 0


def test_unknown_model_is_one_line_error():
    r = run("profile", "tiny-cps")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "tiny-csp" in r.stderr and "Traceback" not in r.stderr


def test_mistyped_option_suggests():
    r = run("profile", "tiny-csp", "--imsz", "32")
    assert r.returncode == 2 and "--imgsz" in r.stderr
