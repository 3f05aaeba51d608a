"""The pure parts of the peer benchmarks (benchmarks/): run_all's ratios, goal verdicts and markdown table from
made-up results, the peer worker protocol against a stand-in worker, and that every script answers ``--help``.
Nothing here times anything or needs a peer venv."""
from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = ["bench_train.py", "bench_epoch.py", "bench_yolov5.py", "bench_classify.py", "bench_analyze.py",
           "bench_compile.py", "run_all.py"]


def _load(name: str):
    sys.path.insert(0, str(BENCH))  # run_all and the benches import _peer as a sibling module
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


run_all = _load("run_all")
peer = _load("_peer")


def _row(key, g, p, unit="img/s", hib=True, work="w"):
    return {"key": key, "work": work, "gradpath": g, "peer": p, "unit": unit, "higher_is_better": hib}


def test_ratio_is_gradpath_speed_over_peer_speed():
    assert run_all.ratio(_row("seg_train", 12.0, 10.0)) == pytest.approx(1.2)
    assert run_all.ratio(_row("yolov5_infer", 50.0, 100.0, unit="ms", hib=False)) == pytest.approx(2.0)  # times
    assert run_all.ratio(_row("seg_train", 12.0, None)) is None
    assert run_all.ratio(_row("seg_train", 0.0, 3.0)) is None


@pytest.mark.parametrize("row, expected", [
    (_row("seg_train", 11.0, 10.0), "met"),                            # exactly at 1.1x
    (_row("seg_train", 10.9, 10.0), "MISSED"),
    (_row("yolov5_train", 12.0, 10.0), "met"),
    (_row("yolov5_train", 11.9, 10.0), "MISSED"),
    (_row("yolov5_infer", 100.0, 120.0, unit="ms", hib=False), "met"),   # 1.2x faster = 1/1.2 of the time
    (_row("yolov5_infer", 100.0, 110.0, unit="ms", hib=False), "MISSED"),
    (_row("classify_train", 11.0, 10.0), "met"),
    (_row("classify_infer", 12.9, 10.0), "MISSED"),
    (_row("classify_infer", 13.0, 10.0), "met"),
    (_row("analyze_wall", 2.9, None, unit="s", hib=False), "met"),     # an absolute goal needs no peer
    (_row("analyze_wall", 3.1, None, unit="s", hib=False), "MISSED"),
    (_row("yolov5_params", 7621277, 7621277, unit="params"), "met"),
    (_row("yolov5_params", 7621277, 7621278, unit="params"), "MISSED"),
    (_row("seg_latency", 5.0, 9.0, unit="ms", hib=False), None),       # shown, no goal
    (_row("classify_infer", 13.0, None), None),                        # no peer number: no verdict
])
def test_verdicts(row, expected):
    assert run_all.verdict(row) == expected


def test_goal_texts_match_the_issue():
    assert [run_all.goal_text(k) for k in ("seg_train", "yolov5_train", "yolov5_infer", "classify_train",
                                           "classify_infer", "analyze_wall", "seg_latency")] == \
        ["≥1.1×", "≥1.2×", "≥1.2×", "≥1.1×", "≥1.3×", "≤3 s", "—"]


def _fake_results():
    return {
        "train": {"torch": {"gradpath": "2.14.1+cpu", "peer": "2.14.1"}, "peer_lib": "ultralytics yolov8n-seg",
                  "rows": [_row("seg_train", 30.0, 25.0, work="seg train"),
                           _row("seg_latency", 20.0, 30.0, unit="ms", hib=False, work="seg latency")]},
        "yolov5": "skipped: no peer venv at /nowhere/python (--y5-python)",
        "classify": {"torch": {"gradpath": "2.14.1+cpu", "peer": "2.14.1"}, "peer_lib": "timm 1.0",
                     "rows": [_row("classify_infer", 40.0, 35.0, work="csp-resnet50 | infer"),
                              _row("classify_train", 9.0, 8.0, work="csp-resnet50 train")]},
        "analyze": {"torch": {"gradpath": "2.14.1+cpu", "peer": None}, "peer_lib": None,
                    "rows": [_row("analyze_wall", 1.234, None, unit="s", hib=False, work="analyze wall")]},
    }


def test_table_from_fake_results():
    text = run_all.render(_fake_results(), quick=False, machine={"platform": "Linux x86_64", "cpus": 2,
                                                                 "threads": 2}, date="2026-01-01 00:00 UTC")
    lines = text.splitlines()
    assert "| work | gradpath | peer | ratio | goal |" in lines
    assert "| seg train | 30.0 img/s | 25.0 img/s | 1.20× | ≥1.1× met |" in lines
    assert "| seg latency | 20.0 ms | 30.0 ms | 1.50× | — |" in lines
    assert "| csp-resnet50 \\| infer | 40.0 img/s | 35.0 img/s | 1.14× | ≥1.3× **MISSED** |" in lines
    assert "| analyze wall | 1.23 s | — | — | ≤3 s met |" in lines
    skipped = [ln for ln in lines if "skipped: no peer venv at /nowhere/python" in ln and ln.startswith("|")]
    assert len(skipped) == 3  # yolov5's three goals each say why they have no number
    assert "2 CPUs" in text and "2026-01-01" in text and "torch 2.14.1" in text
    assert "NOT meaningful" not in text
    assert "goals met: 3 of 4 measured; 3 not measured" in lines


def test_quick_table_is_labelled_and_gives_no_verdicts():
    text = run_all.render(_fake_results(), quick=True, machine={}, date="d")
    assert "NOT meaningful" in text.splitlines()[0]
    assert " met |" not in text and "MISSED" not in text
    assert "(quick run: no verdict)" in text and "goals met" not in text


def test_value_formatting():
    assert run_all.fmt_value(None, "ms") == "—"
    assert run_all.fmt_value(7621277, "params") == "7,621,277"
    assert run_all.fmt_value(123.456, "img/s") == "123 img/s"
    assert run_all.fmt_value(1.2345, "img/s") == "1.23 img/s"
    assert run_all.fmt_value(2.5, "s") == "2.50 s"


def test_missing_peer_venv_is_skipped_with_a_line(tmp_path, capsys):
    args = argparse.Namespace(peer_python=str(tmp_path / "no" / "python"), y5_python=str(tmp_path / "no" / "python"))
    msg = run_all.run_bench("yolov5", args, tmp_path)
    assert msg.startswith("skipped: no peer venv at") and "--y5-python" in msg
    assert "yolov5: skipped" in capsys.readouterr().out


def test_torch_release_check():
    assert peer.same_torch("2.14.1+cu130", "2.14.1")
    assert not peer.same_torch("2.14.1", "2.13.0")
    with pytest.raises(SystemExit):
        peer.check_torch("2.14.1", "2.13.0", allow_mismatch=False)
    peer.check_torch("2.14.1", "2.13.0", allow_mismatch=True)  # only warns


def test_peer_worker_protocol_ignores_other_output():
    # a stand-in worker (this interpreter, no peer library): library chatter on stdout is skipped
    code = ('print("Fusing layers...")\n'
            '_serve({"echo": lambda *a: {"args": list(a)}, "n": lambda n: _times(lambda: None, n)})\n')
    with peer.Peer(sys.executable, code, []) as w:
        assert w.ask("echo", 1, "x") == {"args": [1, "x"]}
        assert len(w.ask("n", 3)) == 3


def test_dead_peer_worker_reports_its_stderr():
    with peer.Peer(sys.executable, 'raise SystemExit("boom from the peer")\n', []) as w:
        with pytest.raises(peer.PeerError, match="boom from the peer"):
            w.ask("anything")


# argv: benchmarks folder, pid file. Starts a worker, gives it a two-minute request, then kills itself (-9).
_DYING_BENCHMARK = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
import _peer
pid_file = sys.argv[2]
code = "import os, time\nopen(%r, 'w').write(str(os.getpid()))\n_serve({'busy': lambda: time.sleep(120)})\n"
w = _peer.Peer(sys.executable, code % pid_file, [])
w.proc.stdin.write('{"cmd": "busy"}\n')
w.proc.stdin.flush()
while not (os.path.exists(pid_file) and open(pid_file).read()):
    pass
os.kill(os.getpid(), 9)
"""


def test_peer_worker_exits_when_the_benchmark_dies_mid_request(tmp_path):
    """A benchmark killed while its worker is busy (bench_epoch's requests train for minutes) must not leave the
    worker running: it would load the machine under the next benchmark."""
    pid_file = tmp_path / "worker.pid"
    subprocess.run([sys.executable, "-c", _DYING_BENCHMARK, str(Path(peer.__file__).parent), str(pid_file)],
                   timeout=60)
    worker = int(pid_file.read_text())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _alive(worker):
        time.sleep(0.2)
    assert not _alive(worker), "the peer worker outlived its benchmark"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")  # a zombie has exited


def test_interleave_alternates_sides():
    calls = []
    out = peer.interleave({"a": lambda n: calls.append("a") or [1.0] * n,
                           "b": lambda n: calls.append("b") or [2.0] * n}, rounds=3, iters=2)
    assert calls == ["a", "b"] * 3 and out == {"a": [1.0] * 6, "b": [2.0] * 6}


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script):
    r = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout
