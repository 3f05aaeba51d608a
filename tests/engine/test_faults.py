"""Faults lose nothing: Ctrl-C / SIGTERM mid-epoch, ``kill -9``, a full disk, a non-finite loss, a rank dying.

Each stopped run is resumed and compared with an uninterrupted run of the same seed: the final weights must be
*equal* (the toy data pipelines draw their augmentation from the global RNG with ``workers=0``, which a
mid-epoch checkpoint restores).
"""
from __future__ import annotations

import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from engine_toy import ToyDataset, ToyTask, toy_model

from gradpath.cli import main
from gradpath.engine import TrainConfig, Trainer
from gradpath.engine.checkpoint import load_checkpoint
from gradpath.engine.ddp import DistInfo
from gradpath.engine.trainer import RunInterrupted, RunTerminated
from gradpath.errors import GradpathError, TrainingDiverged
from gradpath.tasks.registry import register_task, unregister_task

HERE = Path(__file__).parent
FAULT_TOY = HERE / "fault_toy.py"
#: Hang guard for every subprocess (a healthy one takes seconds).
SUBPROCESS_DEADLINE_S = 180


# ---------------------------------------------------------------------------------------------- in-process runs
class SignalledToyTask(ToyTask):
    """The toy task that delivers ``signum`` to its own process during its ``at``-th loss call (or returns a NaN
    loss there when ``signum`` is None)."""

    def __init__(self, at: int, signum: int | None, times: int = 1) -> None:
        super().__init__()
        self.at, self.signum, self.times, self.calls = at, signum, times, 0

    def loss(self, model, batch):
        self.calls += 1
        loss, items = super().loss(model, batch)
        if self.calls == self.at:
            if self.signum is None:
                return loss * float("nan"), items
            for _ in range(self.times):
                signal.raise_signal(self.signum)
        return loss, items


def _toy_trainer(tmp_path: Path, name: str, task: ToyTask, resume=None) -> Trainer:
    # 24 images, batch 4: 6 batches an epoch; nbs 8: an optimizer step every 2 batches, so a stop can fall
    # between the two batches of a step; one warm-up epoch so the lr and momentum move every batch.
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=2, batch=4, nbs=8, lr0=0.05, warmup_epochs=1, workers=0, seed=3, device="cpu",
                      plots=False, project=str(tmp_path), name=name)
    return Trainer(toy_model(), task, cfg, tmp_path / name, resume=resume, log=lambda m: None, progress=False)


@pytest.fixture(scope="module")
def toy_reference(tmp_path_factory) -> dict:
    """The uninterrupted toy run's final checkpoint."""
    tmp = tmp_path_factory.mktemp("toyref")
    _toy_trainer(tmp, "ref", ToyTask()).fit()
    return load_checkpoint(tmp / "ref" / "weights" / "last.pt")


def _assert_same_final_state(a: dict, b: dict) -> None:
    assert a["epoch"] == b["epoch"]
    for key in ("weights",):
        for k, v in a[key].items():
            assert torch.equal(v, b[key][k]), k
    for k, v in a["train"]["model"].items():  # the raw weights too, not only the EMA's
        assert torch.equal(v, b["train"]["model"][k]), k
    assert a["metrics"] == b["metrics"]


@pytest.mark.parametrize("signum, stops_with, code", [(signal.SIGINT, RunInterrupted, 130),
                                                       (signal.SIGTERM, RunTerminated, 143)])
def test_signal_mid_epoch_saves_the_position_and_resume_equals_an_uninterrupted_run(
        tmp_path, toy_reference, signum, stops_with, code):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    # The 10th loss call is batch 4 of epoch 2: batches 1-3 are done, batch 3's gradient is accumulated but not
    # yet stepped.
    tr = _toy_trainer(tmp_path, "cut", SignalledToyTask(at=10, signum=signum))
    with pytest.raises(stops_with) as info:
        tr.fit()
    assert {s: signal.getsignal(s) for s in before} == before  # the caller's handlers are back
    last = tmp_path / "cut" / "weights" / "last.pt"
    assert info.value.checkpoint == str(last)
    assert getattr(info.value, "exit_code", getattr(info.value, "code", None)) == code
    assert f"at epoch 2/2, batch 4/6; checkpoint {last}" in str(info.value)
    ck = load_checkpoint(last)
    position = ck["train"]["position"]
    assert (ck["epoch"], position["epoch"], position["batches"]) == (0, 1, 3)
    assert position["grads"] is not None and any(g is not None and g.abs().sum() > 0 for g in position["grads"])
    assert ck["train"]["scheduler"]["last_epoch"] == 6 + 3  # the lr schedule stepped once per batch done

    stale = last.parent / ".last.pt.k1ll3d.tmp"  # what a kill -9 during a checkpoint write leaves
    stale.write_bytes(b"PK\x03\x04 partial")
    resumed = _toy_trainer(tmp_path, "cut", ToyTask(), resume=ck)
    assert resumed.start_epoch == 1
    resumed.fit()
    assert not stale.exists()
    _assert_same_final_state(toy_reference, load_checkpoint(last))


def test_a_repeated_sigterm_still_saves_but_a_second_ctrl_c_stops_at_once(tmp_path):
    tr = _toy_trainer(tmp_path, "term", SignalledToyTask(at=4, signum=signal.SIGTERM, times=2))
    with pytest.raises(RunTerminated):
        tr.fit()
    assert load_checkpoint(tmp_path / "term" / "weights" / "last.pt")["train"]["position"]["batches"] == 3
    tr = _toy_trainer(tmp_path, "int", SignalledToyTask(at=10, signum=signal.SIGINT, times=2))
    with pytest.raises(KeyboardInterrupt) as info:
        tr.fit()
    assert type(info.value) is KeyboardInterrupt  # not RunInterrupted: no checkpoint was taken mid-epoch
    assert "position" not in load_checkpoint(tmp_path / "int" / "weights" / "last.pt")["train"]


def test_a_signal_the_caller_ignores_stays_ignored_and_handlers_come_back(tmp_path):
    before_int = signal.getsignal(signal.SIGINT)
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        tr = _toy_trainer(tmp_path, "ign", SignalledToyTask(at=3, signum=signal.SIGTERM))
        tr.fit()  # SIGTERM is ignored by this process: the run goes on to the end
        assert load_checkpoint(tmp_path / "ign" / "weights" / "last.pt")["epoch"] == 1
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is before_int
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_non_finite_loss_stops_with_epoch_and_batch_and_keeps_the_last_good_state(tmp_path, toy_reference):
    tr = _toy_trainer(tmp_path, "nan", SignalledToyTask(at=9, signum=None))
    last = tmp_path / "nan" / "weights" / "last.pt"
    with pytest.raises(GradpathError, match=r"^loss became nan at epoch 2/2, batch 3/6; the last good state "
                                            rf"\(before that batch\) is in {last}") as info:
        tr.fit()
    assert isinstance(info.value, TrainingDiverged)  # a GradpathError that says where, for callers that record it
    assert (info.value.epoch, info.value.batch, info.value.checkpoint) == (2, 3, str(last))
    ck = load_checkpoint(last)
    assert (ck["train"]["position"]["epoch"], ck["train"]["position"]["batches"]) == (1, 2)
    # The state before the bad batch is exactly an uninterrupted run's: training on from it ends the same.
    _toy_trainer(tmp_path, "nan", ToyTask(), resume=ck).fit()
    _assert_same_final_state(toy_reference, load_checkpoint(last))


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_which_file(tmp_path, monkeypatch):
    real_save = torch.save
    def save_until_full(obj, f, *args, **kwargs):
        if obj.get("epoch") == 1:  # epoch 2's first file, last.pt: half of it reaches the disk, then it is full
            f.write(b"PK\x03\x04 partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_full)
    tr = _toy_trainer(tmp_path, "full", ToyTask())
    last = tmp_path / "full" / "weights" / "last.pt"
    with pytest.raises(GradpathError) as info:
        tr.fit()
    assert str(info.value) == (f"no space left on the device while writing {last}; the previous checkpoint there "
                               "is intact")
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(last)["epoch"] == 0  # epoch 1's checkpoint, whole
    assert sorted(p.name for p in last.parent.iterdir()) == ["best.pt", "last.pt"]  # no temp file left


# ---------------------------------------------------------------------------------------------- the real CLI
CLI_ARGS = ["train", "--task", "faulttoy", "--model", "tiny-res", "--batch", "4", "--nbs", "8", "--workers", "0",
            "--device", "cpu", "--quiet", "--warmup-epochs", "1", "--lr0", "0.01", "--seed", "5", "--epochs", "3",
            "--no-plots"]


@contextlib.contextmanager
def _one_thread():
    """In-process CLI runs use one intra-op thread like the subprocesses, so float sums reduce in the same order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fault_task():
    from fault_toy import FaultToyTask

    register_task(FaultToyTask)
    yield FaultToyTask
    unregister_task(FaultToyTask.name)


@pytest.fixture(scope="module")
def cli_reference(tmp_path_factory, fault_task) -> dict:
    project = tmp_path_factory.mktemp("cliref")
    with _one_thread():
        assert main([*CLI_ARGS, "--project", str(project), "--name", "ref"]) == 0
    return load_checkpoint(project / "faulttoy" / "ref" / "weights" / "last.pt")


def _start(args: list[str], cwd: Path, **fault_env: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **fault_env}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    # Its own session, so a hung run is killed with every process it started (torchrun's ranks too).
    return subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _kill(proc: subprocess.Popen) -> tuple[str, str]:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.communicate()


def _wait_for(path: Path, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + SUBPROCESS_DEADLINE_S
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            out, err = _kill(proc)
            raise AssertionError(f"{what} never appeared (rc {proc.returncode}): {out[-2000:]} {err[-2000:]}")
        time.sleep(0.02)


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=SUBPROCESS_DEADLINE_S)
    except subprocess.TimeoutExpired:
        out, err = _kill(proc)
        raise AssertionError(f"subprocess hung: {out[-2000:]} {err[-2000:]}") from None
    return proc.returncode, out, err


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_cli_stopped_by_a_signal_exits_with_its_code_and_resumes_exactly(tmp_path, fault_task, cli_reference,
                                                                          signum, code):
    # The 6th loss call is batch 2 of epoch 2 (4 batches an epoch): it waits there until the signal is sent.
    proc = _start([str(FAULT_TOY), *CLI_ARGS, "--project", str(tmp_path), "--name", "cut"], tmp_path,
                  FAULT_PAUSE_AT="6", FAULT_DIR=str(tmp_path))
    _wait_for(tmp_path / "ready", proc, "the pause at batch 2 of epoch 2")
    proc.send_signal(signum)
    (tmp_path / "go").touch()
    rc, out, err = _finish(proc)
    last = tmp_path / "faulttoy" / "cut" / "weights" / "last.pt"
    assert rc == code, err
    name = signal.Signals(signum).name
    assert out.strip().splitlines()[-1] == (f"{name}: stopped at epoch 2/3, batch 2/4; checkpoint {last}, "
                                            f"continue with --resume {last}")
    assert "Traceback" not in err
    ck = load_checkpoint(last)
    assert (ck["epoch"], ck["train"]["position"]["epoch"], ck["train"]["position"]["batches"]) == (0, 1, 1)
    with _one_thread():
        assert main(["train", "--resume", str(last), "--quiet"]) == 0
    _assert_same_final_state(cli_reference, load_checkpoint(last))


def test_cli_killed_with_sigkill_resumes_from_the_last_epoch_checkpoint(tmp_path, fault_task, cli_reference):
    proc = _start([str(FAULT_TOY), *CLI_ARGS, "--project", str(tmp_path), "--name", "killed"], tmp_path,
                  FAULT_DELAY="0.2")  # ~1 s an epoch: killed while training epoch 2
    last = tmp_path / "faulttoy" / "killed" / "weights" / "last.pt"
    _wait_for(last, proc, "epoch 1's checkpoint")
    proc.send_signal(signal.SIGKILL)
    rc, _, _ = _finish(proc)
    assert rc == -signal.SIGKILL
    ck = load_checkpoint(last)
    assert ck["epoch"] in (0, 1) and "position" not in ck["train"]  # an end-of-epoch checkpoint
    with _one_thread():
        assert main(["train", "--resume", str(last), "--quiet"]) == 0
    _assert_same_final_state(cli_reference, load_checkpoint(last))


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its new parent to reap it counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads process states from /proc (Linux)")
def test_a_job_process_whose_parent_is_killed_checkpoints_and_stops(tmp_path, fault_task, cli_reference):
    # `reproduce --jobs` trains in job processes; a kill -9 of the parent alone (not its process group) used to
    # leave them training for hours. The job now notices, stops at its next safe point with an interrupt
    # checkpoint, and a resume finishes the run exactly.
    proc = _start([str(FAULT_TOY), "pool", *CLI_ARGS, "--project", str(tmp_path), "--name", "orphan"], tmp_path,
                  FAULT_DELAY="0.2", FAULT_DIR=str(tmp_path))
    last = tmp_path / "faulttoy" / "orphan" / "weights" / "last.pt"
    _wait_for(last, proc, "epoch 1's checkpoint")
    job = int((tmp_path / "job.pid").read_text())
    proc.send_signal(signal.SIGKILL)  # the parent only: its job process is not signalled
    _finish(proc)
    deadline = time.monotonic() + 60
    while _running(job) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _running(job):
        os.kill(job, signal.SIGKILL)
        raise AssertionError("the job process outlived its parent by 60 s")
    ck = load_checkpoint(last)
    assert ck["epoch"] + 1 < ck["epochs"], "the job finished its run instead of stopping"
    with _one_thread():
        assert main(["train", "--resume", str(last), "--quiet"]) == 0
    _assert_same_final_state(cli_reference, load_checkpoint(last))


def test_a_rank_dying_under_torchrun_ends_the_others_within_60_s(tmp_path, free_port):
    # Rank 1's second batch raises; rank 0 is then in (or about to enter) the gradient all-reduce with it. gloo
    # reports the closed connection at once and torchrun stops the remaining rank and names the root cause.
    proc = _start(["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port),
                   str(FAULT_TOY), *CLI_ARGS, "--project", str(tmp_path), "--name", "ddp", "--batch", "8"],
                  tmp_path, FAULT_RAISE_AT="2", FAULT_RAISE_RANK="1", FAULT_DIR=str(tmp_path))
    rc, out, err = _finish(proc)
    ended = time.time()
    died = (tmp_path / "raised").stat().st_mtime
    assert rc == 1
    assert ended - died < 60, f"the surviving rank took {ended - died:.0f} s to exit"
    assert "[rank1]: RuntimeError: injected failure on rank 1 at loss call 2" in err
    # torchrun's summary: the first failure is rank 1's, and it is named as the root cause
    root = err[err.index("Root Cause (first observed failure):"):]
    assert "rank      : 1 (local_rank: 1)" in root and "exitcode  : 1" in root


def test_a_hung_rank_under_torchrun_fails_the_run_after_dist_timeout(tmp_path, free_port):
    # Rank 1 stops inside its second batch (alive, so no closed connection tells rank 0); rank 0 waits in the
    # gradient all-reduce. With --dist-timeout 0.1 (6 s) the wait ends in an error instead of the 60-min default.
    proc = _start(["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port),
                   str(FAULT_TOY), *CLI_ARGS, "--project", str(tmp_path), "--name", "ddp", "--batch", "8",
                   "--dist-timeout", "0.1"],
                  tmp_path, FAULT_PAUSE_AT="2", FAULT_PAUSE_RANK="1", FAULT_DIR=str(tmp_path))
    rc, out, err = _finish(proc)
    ended = time.time()
    hung = (tmp_path / "ready").stat().st_mtime
    assert rc == 1, err[-3000:]
    assert 6 <= ended - hung < 120, f"the run ended {ended - hung:.0f} s after rank 1 hung (not the 60-min default)"
    assert "[rank0]:" in err and "imed out" in err, err[-3000:]  # gloo's "Timed out waiting ..." on rank 0


def test_dist_timeout_must_be_positive(fault_task, capsys):
    assert main([*CLI_ARGS, "--dist-timeout", "0"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith("--dist-timeout must be > 0 minutes (got 0.0)")


# ---------------------------------------------------------------------------------------------- DDP, 2 ranks
def _ddp_worker(rank: int, world: int, tmp: str) -> None:
    torch.set_num_threads(1)

    def trainer(name: str, task: ToyTask, fit_no: int, resume=None) -> Trainer:
        torch.manual_seed(0)
        # 24 images over 2 ranks, 4 a rank per batch: 3 batches an epoch; nbs 16: a step every 2 batches.
        cfg = TrainConfig(epochs=2, batch=8, nbs=16, lr0=0.05, warmup_epochs=1, workers=0, seed=3, device="cpu",
                          plots=False, project=tmp, name=name)
        return Trainer(toy_model(), task, cfg, Path(tmp) / name, resume=resume, log=lambda m: None, progress=False,
                       dist_info=DistInfo(rank=rank, local_rank=rank, world_size=world),
                       init_method=f"file://{tmp}/init{fit_no}")

    finals = {}
    ref = trainer("ref", ToyTask(), 0)
    ref.fit()
    finals["ref"] = {k: v.clone() for k, v in ref.eval_model().state_dict().items()}
    # Only rank 0 gets the signal, during its 5th loss call (batch 2 of epoch 2); both ranks must stop there.
    cut = trainer("cut", SignalledToyTask(at=5, signum=signal.SIGINT if rank == 0 else None), 1)
    if rank == 1:
        cut.task.at = -1
    try:
        cut.fit()
    except RunInterrupted as e:
        finals["stopped"] = e.checkpoint
    last = Path(tmp) / "cut" / "weights" / "last.pt"
    resumed = trainer("cut", ToyTask(), 2, resume=load_checkpoint(last))
    resumed.fit()
    finals["cut"] = {k: v.clone() for k, v in resumed.eval_model().state_dict().items()}
    torch.save(finals, os.path.join(tmp, f"rank{rank}.pt"))


def test_ddp_ranks_stop_together_on_one_ranks_signal_and_resume_exactly(tmp_path):
    ctx = mp.start_processes(_ddp_worker, args=(2, str(tmp_path)), nprocs=2, join=False, start_method="spawn")
    for _ in range(SUBPROCESS_DEADLINE_S * 2):
        if ctx.join(timeout=0.5):
            break
    else:
        for p in ctx.processes:
            p.kill()
        raise AssertionError(f"DDP runs did not finish within {SUBPROCESS_DEADLINE_S} s (hang?)")
    last = tmp_path / "cut" / "weights" / "last.pt"
    for rank in (0, 1):
        finals = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert finals["stopped"] == str(last)  # the rank without the signal stopped too
        for k, v in finals["ref"].items():  # each rank's replica ends as uninterrupted
            # Checkpoints hold rank 0's BN statistics (DDP broadcasts them to every rank at each forward); another
            # rank's EMA of its own statistics is not kept, at epoch ends either.
            if rank == 0 or "running" not in k:
                assert torch.equal(v, finals["cut"][k]), (rank, k)


# ---------------------------------------------------------------------------------------------- loader workers
class IndexedToyDataset(ToyDataset):
    def __getitem__(self, i: int):
        x, y = super().__getitem__(i)
        return x, y, i


class IndexRecordingToyTask(SignalledToyTask):
    """Records which images each trained batch held (the loader's order after a resume's skip)."""

    def __init__(self, at: int = -1, signum: int | None = None) -> None:
        super().__init__(at, signum)
        self.seen: list[list[int]] = []

    def datasets(self):
        return IndexedToyDataset(self.n_train, 1), None

    def preprocess(self, batch, device):
        x, y, i = batch
        self.seen.append(i.tolist())
        return x.to(device), y.to(device)


def test_with_loader_workers_resume_skips_exactly_the_batches_done(tmp_path):
    # With workers the images of the rest of the interrupted epoch get other random flips (each worker's RNG is
    # seeded when the epoch's iterator starts: see gradpath/engine/trainer.py), but the batches are the same ones.
    def run(name, task, resume=None):
        torch.manual_seed(0)
        cfg = TrainConfig(epochs=2, batch=4, nbs=8, lr0=0.05, warmup_epochs=1, workers=1, seed=3, device="cpu",
                          plots=False, project=str(tmp_path), name=name)
        tr = Trainer(toy_model(), task, cfg, tmp_path / name, resume=resume, log=lambda m: None, progress=False)
        tr.fit()

    full = IndexRecordingToyTask()
    run("full", full)
    cut = IndexRecordingToyTask(at=10, signum=signal.SIGINT)
    with pytest.raises(RunInterrupted):
        run("cut", cut)
    rest = IndexRecordingToyTask()
    run("cut", rest, resume=load_checkpoint(tmp_path / "cut" / "weights" / "last.pt"))
    assert len(full.seen) == 12 and cut.seen == full.seen[:10]  # the 10th batch was loaded, not trained on
    assert rest.seen == full.seen[9:]  # resumed at that batch, none repeated or left out


def test_cli_full_disk_is_one_line_exit_2_and_resume_continues_from_the_intact_checkpoint(
        tmp_path, fault_task, cli_reference, monkeypatch, capsys):
    real_save = torch.save

    def full_at_epoch_2(obj, f, *args, **kwargs):
        if obj.get("epoch") == 1:
            f.write(b"PK\x03\x04 partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_at_epoch_2)
    with _one_thread():
        assert main([*CLI_ARGS, "--project", str(tmp_path), "--name", "full"]) == 2
    last = tmp_path / "faulttoy" / "full" / "weights" / "last.pt"
    assert capsys.readouterr().err == (f"gradpath train: error: no space left on the device while writing {last}; "
                                       "the previous checkpoint there is intact\n")
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(last)["epoch"] == 0
    with _one_thread():  # space freed: the run goes on from epoch 1's checkpoint to the uninterrupted result
        assert main(["train", "--resume", str(last), "--quiet"]) == 0
    _assert_same_final_state(cli_reference, load_checkpoint(last))


def test_torchrun_preempted_with_sigterm_saves_the_position_on_every_rank_s_agreement(tmp_path, free_port):
    # A cluster pre-empting the job sends SIGTERM to all its processes, and torchrun passes its own on to the
    # ranks once more: they stop at the same batch and rank 0 writes the mid-epoch checkpoint, undisturbed by the
    # repeated signal, before torchrun gives up on them.
    proc = _start(["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port),
                   str(FAULT_TOY), *CLI_ARGS, "--project", str(tmp_path), "--name", "ddp", "--batch", "8"],
                  tmp_path, FAULT_PAUSE_AT="3", FAULT_DIR=str(tmp_path))  # each rank's batch 1 of epoch 2
    _wait_for(tmp_path / "ready", proc, "the pause at batch 1 of epoch 2")
    os.killpg(proc.pid, signal.SIGTERM)  # torchrun and both ranks
    (tmp_path / "go").touch()
    _, out, err = _finish(proc)
    last = tmp_path / "faulttoy" / "ddp" / "weights" / "last.pt"
    assert f"SIGTERM: stopped at epoch 2/3, batch 1/2; checkpoint {last}" in out, err[-3000:]
    ck = load_checkpoint(last)
    position = ck["train"]["position"]
    assert (ck["epoch"], position["epoch"], position["batches"], len(position["ranks"])) == (0, 1, 0, 2)
