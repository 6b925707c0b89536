"""Checkpoints: stop or kill a run, rerun it, and it continues with the same losses; the adapter is peft's."""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from trainer_examples import write_examples
from trainer.checkpoint import (
    TMP_PREFIX,
    capture_rng,
    latest_checkpoint,
    list_checkpoints,
    publish_dir,
    remove_partial,
    restore_rng,
)
from trainer.checkpoint import check_can_resume
from trainer.loop import TrainError, train
from trainer.metrics import read_metrics
from trainer.settings import TrainSettings

ROOT = Path(__file__).resolve().parents[2]
STEPS = 8
# The same settings as flags (for the CLI) and as a model (in-process). LoRA dropout > 0, so a resumed run
# only matches if the RNG state came back too; evaluation every 3 steps must not disturb it either.
FLAGS = ["--max-len", "64", "--token-budget", "128", "--grad-accum", "2", "--lr", "3e-3", "--warmup-steps", "1",
         "--eval-fraction", "0.1", "--eval-every", "3", "--max-steps", str(STEPS), "--loss-chunk-tokens", "64",
         "--lora.dropout", "0.2"]


def settings_for(model_dir: Path, **kw: object) -> TrainSettings:
    base = dict(model=str(model_dir), max_len=64, token_budget=128, grad_accum=2, lr=3e-3, warmup_steps=1,
                eval_fraction=0.1, eval_every=3, max_steps=STEPS, loss_chunk_tokens=64, lora={"dropout": 0.2})
    return TrainSettings(**{**base, **kw})


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_examples(tmp_path_factory.mktemp("data") / "examples.jsonl", 60)


@pytest.fixture(scope="module")
def uninterrupted(tiny_model_dir: Path, data_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, float]:
    run = tmp_path_factory.mktemp("whole")
    result = train(settings_for(tiny_model_dir, checkpoint_every=0), run, data_path=data_file,
                   progress_stream=io.StringIO())
    assert result.finished
    return result.losses


@pytest.mark.parametrize("read_late", [False, True], ids=["read-at-once", "read-late"])
def test_stop_and_rerun_continues_with_the_same_losses(tiny_model_dir: Path, data_file: Path, tmp_path: Path,
                                                       uninterrupted: dict[int, float], read_late: bool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """(The uninterrupted run read every step at once; reading late, as on a GPU, changes no loss.)"""
    import trainer.loop as loop_module

    monkeypatch.setattr(loop_module, "reads_late", lambda device: read_late)
    settings = settings_for(tiny_model_dir, checkpoint_every=0)
    first = train(settings, tmp_path, data_path=data_file, max_steps_this_run=3, progress_stream=io.StringIO())
    assert first.step == 3 and not first.finished and first.adapter_dir is None
    assert [p.name for p in list_checkpoints(tmp_path / "train/checkpoints")] == ["step-000003"]
    second = train(settings, tmp_path, data_path=data_file, progress_stream=io.StringIO())
    assert sorted(second.losses) == list(range(4, STEPS + 1))
    resumed = {**first.losses, **second.losses}
    assert resumed == pytest.approx(uninterrupted, rel=1e-6)
    records = read_metrics(tmp_path / "train/metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))


def test_sigterm_stops_after_the_step_in_flight_with_a_checkpoint(tiny_model_dir: Path, data_file: Path,
                                                                  tmp_path: Path) -> None:
    """Pre-emption: SIGTERM lets the step in flight finish, writes a checkpoint and returns cleanly."""

    def preempt(record: dict) -> None:
        if record["step"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    result = train(settings_for(tiny_model_dir, checkpoint_every=0), tmp_path, data_path=data_file, on_step=preempt,
                   progress_stream=io.StringIO())
    assert result.step == 2 and not result.finished
    assert latest_checkpoint(tmp_path / "train/checkpoints").name == "step-000002"
    assert signal.getsignal(signal.SIGTERM) is previous  # the handler is put back


def test_a_run_killed_with_sigkill_continues_with_the_same_losses(
    tiny_model_dir: Path, data_file: Path, tmp_path: Path, uninterrupted: dict[int, float]
) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "trainer", "train", "--run", str(run), "--data", str(data_file),
           "--model", str(tiny_model_dir), "--checkpoint-every", "1", *FLAGS]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    metrics = run / "train/metrics.jsonl"
    victim = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and victim.poll() is None and len(read_metrics(metrics)) < 3:
        time.sleep(0.02)
    assert victim.poll() is None, "the run ended before it could be killed"
    # No warning at all, possibly in the middle of writing a checkpoint or a metrics line.
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=60) == -signal.SIGKILL
    killed_at = max(r["step"] for r in read_metrics(metrics))
    assert killed_at < STEPS

    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    resumed_at = int(rerun.stderr.split("resuming at ")[1].split()[0])
    assert 1 <= resumed_at <= killed_at
    records = read_metrics(metrics)
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))  # every step once, none lost or repeated
    assert {r["step"]: r["loss"] for r in records} == pytest.approx(uninterrupted, rel=1e-5)
    assert not [p for p in (run / "train/checkpoints").iterdir() if p.name.startswith(TMP_PREFIX)]


def test_a_partly_written_checkpoint_is_never_read_and_is_cleaned_up(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    good = root / "step-000004"
    good.mkdir(parents=True)
    (good / "state.json").write_text("{}")
    partial = root / f"{TMP_PREFIX}step-000006-123"  # a kill during the write of step 6
    partial.mkdir()
    (partial / "optimizer.pt").write_bytes(b"torn")
    assert latest_checkpoint(root) == good
    remove_partial(root)
    assert [p.name for p in root.iterdir()] == ["step-000004"]

    newer = root / f"{TMP_PREFIX}new"
    newer.mkdir()
    (newer / "state.json").write_text('{"v": 2}')
    publish_dir(newer, good)  # replaces an existing folder of the same name
    assert (good / "state.json").read_text() == '{"v": 2}' and not newer.exists()


def test_only_the_newest_checkpoints_are_kept(tiny_model_dir: Path, data_file: Path, tmp_path: Path) -> None:
    train(settings_for(tiny_model_dir, max_steps=5, checkpoint_every=1, keep_checkpoints=2, eval_every=0),
          tmp_path, data_path=data_file, progress_stream=io.StringIO())
    assert [p.name for p in list_checkpoints(tmp_path / "train/checkpoints")] == ["step-000004", "step-000005"]


def test_a_rerun_with_other_settings_or_other_data_is_refused(tiny_model_dir: Path, data_file: Path,
                                                              tmp_path: Path) -> None:
    settings = settings_for(tiny_model_dir, checkpoint_every=0)
    train(settings, tmp_path, data_path=data_file, max_steps_this_run=1, progress_stream=io.StringIO())
    changed = settings_for(tiny_model_dir, checkpoint_every=0, lr=1e-2)
    with pytest.raises(TrainError, match=r"lr=0\.003.*lr=0\.01.*new --run folder"):
        check_can_resume(changed, tmp_path)
    # Settings that leave the losses alone may change.
    check_can_resume(settings_for(tiny_model_dir, checkpoint_every=5, eval_every=1), tmp_path)
    other = write_examples(tmp_path / "other.jsonl", 60, seed=1)
    with pytest.raises(TrainError, match="training examples differ"):
        train(settings, tmp_path, data_path=other, progress_stream=io.StringIO())


def test_the_saved_adapter_loads_with_peft_and_changes_the_output(tiny_model_dir: Path, data_file: Path,
                                                                   tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    result = train(settings_for(tiny_model_dir, max_steps=4, checkpoint_every=0, eval_every=0, lr=2e-2),
                   tmp_path, data_path=data_file, progress_stream=io.StringIO())
    ids = torch.tensor([[2, 10, 20, 30, 40, 50]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        before = base(input_ids=ids).logits
    tuned = PeftModel.from_pretrained(base, result.adapter_dir).eval()
    with torch.no_grad():
        after = tuned(input_ids=ids).logits
    assert (after - before).abs().max().item() > 1e-3
    # The checkpoint's adapter is the same format.
    ckpt = latest_checkpoint(tmp_path / "train/checkpoints")
    assert (ckpt / "adapter/adapter_config.json").is_file() and (ckpt / "adapter/adapter_model.safetensors").is_file()


def test_rng_states_round_trip() -> None:
    state = capture_rng()
    first = (random.random(), torch.rand(3))
    restore_rng(state)
    again = (random.random(), torch.rand(3))
    assert first[0] == again[0] and torch.equal(first[1], again[1])


def test_a_step_is_read_after_the_next_is_launched_except_before_an_eval_or_a_checkpoint(
    tiny_model_dir: Path, data_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop keeps the GPU fed: step k's loss is read once step k+1 is queued. A step that evaluates or
    checkpoints is read (and saved) before the next is launched, so the checkpoint holds exactly its state."""
    import trainer.loop as loop_module

    events: list[str] = []
    launches = 0
    real_train_step = loop_module.train_step

    def spy_train_step(*args, **kwargs):
        nonlocal launches
        launches += 1
        events.append(f"launch {launches}")
        return real_train_step(*args, **kwargs)

    real_save = loop_module.save_checkpoint

    def spy_save(root, **kwargs):
        events.append(f"save {kwargs['position'].step}")
        return real_save(root, **kwargs)

    monkeypatch.setattr(loop_module, "train_step", spy_train_step)
    monkeypatch.setattr(loop_module, "save_checkpoint", spy_save)
    monkeypatch.setattr(loop_module, "reads_late", lambda device: True)  # as on a GPU (the CPU reads at once)
    settings = settings_for(tiny_model_dir, eval_every=0, checkpoint_every=3, max_steps=6)
    train(settings, tmp_path, data_path=data_file, progress_stream=io.StringIO(),
          on_step=lambda record: events.append(f"read {record['step']}"))
    assert events == [
        "launch 1", "launch 2", "read 1", "launch 3", "read 2", "read 3", "save 3",
        "launch 4", "launch 5", "read 4", "launch 6", "read 5", "read 6", "save 6",
    ]


def test_sigterm_read_late_stops_after_the_step_in_flight(tiny_model_dir: Path, data_file: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading late (as on a GPU), step 3 is already launched when step 2's record is handled: a SIGTERM
    then lets step 3 finish and checkpoints it, losing nothing that ran."""
    import trainer.loop as loop_module

    monkeypatch.setattr(loop_module, "reads_late", lambda device: True)

    def preempt(record: dict) -> None:
        if record["step"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    result = train(settings_for(tiny_model_dir, checkpoint_every=0), tmp_path, data_path=data_file, on_step=preempt,
                   progress_stream=io.StringIO())
    assert result.step == 3 and sorted(result.losses) == [1, 2, 3]
    assert latest_checkpoint(tmp_path / "train/checkpoints").name == "step-000003"
