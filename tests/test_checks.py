"""``gradpath.checks``: valid input comes back in the library's form, each mistake is a one-line GradpathError
naming the option. CUDA and MPS are faked (present or absent) so every branch runs on any machine."""
from __future__ import annotations

import os
import warnings

import pytest
import torch

from gradpath import checks
from gradpath.checks import (
    check_device,
    check_imgsz,
    check_non_negative,
    check_output_path,
    check_positive,
    check_workers,
)
from gradpath.cli import _one_line_warnings
from gradpath.errors import GradpathError, GradpathWarning


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


def test_device_without_cuda(no_cuda):
    assert check_device(None) == torch.device("cpu")
    assert check_device("") == torch.device("cpu")
    assert check_device(" CPU ") == torch.device("cpu")
    with pytest.raises(GradpathError) as e:
        check_device("cuda")
    assert str(e.value) == ("--device cuda: CUDA is not available on this machine (torch.cuda.is_available() is "
                            "False); use --device cpu")
    with pytest.raises(GradpathError, match=r"^--device 1: CUDA is not available"):
        check_device(1)


@pytest.mark.parametrize("spec, local_rank, expected", [
    (None, -1, "cuda:0"), ("cuda", -1, "cuda:0"), ("0", -1, "cuda:0"), ("1", -1, "cuda:1"), (1, -1, "cuda:1"),
    ("cuda:1", -1, "cuda:1"), ("cuda", 1, "cuda:1"), (None, 1, "cuda:1"), ("cpu", 1, "cpu"),
])
def test_device_with_two_gpus(two_gpus, spec, local_rank, expected):
    assert check_device(spec, local_rank) == torch.device(expected)


def test_device_index_out_of_range(two_gpus):
    with pytest.raises(GradpathError) as e:
        check_device("cuda:2")
    assert str(e.value) == "--device cuda:2: there is no CUDA device 2; this machine has 2 (cuda:0 to cuda:1)"


def test_device_not_a_device_and_unsupported(no_cuda, monkeypatch):
    with pytest.raises(GradpathError, match=r"^--device 'gpu' is not a device; use cpu, cuda, cuda:N, N or mps$"):
        check_device("gpu")
    with pytest.raises(GradpathError, match=r"^--device 'meta': gradpath runs on cpu, cuda or mps, not meta$"):
        check_device("meta")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(GradpathError, match=r"^--device mps: MPS is not available on this machine"):
        check_device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert check_device("mps") == torch.device("mps")


@pytest.mark.parametrize("value, expected", [(640, 640), ("64", 64), (32.0, 32), (32, 32)])
def test_imgsz_valid(value, expected):
    assert check_imgsz(value) == expected


@pytest.mark.parametrize("value, message", [
    (7, "--imgsz must be at least 32, got 7"),
    (-5, "--imgsz must be at least 32, got -5"),
    (0, "--imgsz must be at least 32, got 0"),
    (100, "--imgsz must be a multiple of 32 (the largest stride), got 100; try 96 or 128"),
    (33, "--imgsz must be a multiple of 32 (the largest stride), got 33; try 32 or 64"),
    (True, "--imgsz must be an integer, got True"),
    (64.5, "--imgsz must be an integer, got 64.5"),
    ("abc", "--imgsz must be an integer, got 'abc'"),
])
def test_imgsz_mistakes(value, message):
    with pytest.raises(GradpathError) as e:
        check_imgsz(value)
    assert str(e.value) == message


def test_imgsz_custom_rule():
    assert check_imgsz(48, name="imgsz", multiple=16, minimum=16) == 48
    with pytest.raises(GradpathError, match=r"^imgsz must be a multiple of 16 .* got 40; try 32 or 48$"):
        check_imgsz(40, name="imgsz", multiple=16, minimum=16)
    with pytest.raises(GradpathError, match=r"^imgsz must be a multiple of 32 .* got 70; try 64 or 96$"):
        check_imgsz(70, name="imgsz", multiple=32, minimum=64)
    with pytest.raises(GradpathError, match=r"^imgsz must be a multiple of 64 .* got 100; try 128$"):
        check_imgsz(100, name="imgsz", multiple=64, minimum=96)
    with pytest.raises(GradpathError, match=r"^imgsz must be at least 96, got 40$"):
        check_imgsz(40, name="imgsz", multiple=32, minimum=96)


def test_positive_and_non_negative():
    assert check_positive(2, "--batch") == 2 and check_positive(0.5, "--lr0") == 0.5
    assert check_non_negative(0, "--iters") == 0
    for bad, message in [(0, "--batch must be positive, got 0"), (-1, "--batch must be positive, got -1"),
                         (float("nan"), "--batch must be positive, got nan"),
                         ("3", "--batch must be a number, got '3'"), (True, "--batch must be a number, got True")]:
        with pytest.raises(GradpathError) as e:
            check_positive(bad, "--batch")
        assert str(e.value) == message
    with pytest.raises(GradpathError, match=r"^--iters must be 0 or more, got -1$"):
        check_non_negative(-1, "--iters")


def test_output_path(tmp_path):
    target = tmp_path / "new" / "deeper" / "plot.png"
    assert check_output_path(target, "--plot") == target
    assert not (tmp_path / "new").exists()  # checking creates nothing
    with pytest.raises(GradpathError) as e:
        check_output_path(tmp_path, "--plot")
    assert str(e.value).startswith(f"--plot {tmp_path}: is a folder; give a file name")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(GradpathError) as e:
        check_output_path(tmp_path / "afile" / "plot.png", "--plot")
    assert str(e.value) == (f"--plot {tmp_path / 'afile' / 'plot.png'}: {tmp_path / 'afile'} is a file, so the "
                            f"folder {tmp_path / 'afile'} cannot be created")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into any folder")
def test_output_path_read_only_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(GradpathError, match="is not writable"):
            check_output_path(locked / "x.png", "--out")
    finally:
        locked.chmod(0o700)


def test_workers(monkeypatch):
    monkeypatch.setattr(checks, "available_cpus", lambda: 2)
    assert check_workers(0) == 0 and check_workers(2) == 2
    with pytest.warns(GradpathWarning, match=r"^--workers 8 is more than the 2 CPU core\(s\) available; using 2$"):
        assert check_workers(8) == 2
    with pytest.raises(GradpathError, match=r"^--workers must be 0 or more, got -1$"):
        check_workers(-1)


def test_cli_prints_gradpath_warnings_as_one_line(monkeypatch, capsys):
    monkeypatch.setattr(checks, "available_cpus", lambda: 2)
    others = []
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _one_line_warnings("train", lambda *a: others.append(a[0]))
        check_workers(8)
        warnings.warn("something else", RuntimeWarning)
    assert capsys.readouterr().err == ("gradpath train: warning: --workers 8 is more than the 2 CPU core(s) "
                                       "available; using 2\n")
    assert [str(m) for m in others] == ["something else"]  # other warnings keep their usual display
