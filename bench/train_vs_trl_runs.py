"""One side of bench/train_vs_trl.py, in a process of its own so that its peak RSS is its own: our loop
through `trainer.train`, or TRL's `SFTTrainer`, on the same tokens, weights and settings.

    python bench/train_vs_trl_runs.py SPEC.json OUT.json

SPEC (a RunSpec, written by bench/train_vs_trl.py) names the trainer, the model folder both load, the
examples (schemas.Example JSONL, which ours encodes with trainer.data) and the same examples already
encoded by trainer.data (input_ids + labels JSONL: TRL's dataset, so both train on identical token ids and
loss masks), and every setting both share. OUT gets the per-step tokens, seconds and losses, the timed
window after the warm-up steps, peak RSS, wall time, the settings each trainer actually used and where
its adapter was saved.

TRL's side is the strongest setting of TRL whose attention keeps packed examples apart on a CPU:
`packing=True, packing_strategy="bfd"`, which turns on TRL's padding-free collator (one row of whole
examples, restarted `position_ids`, no attention mask). TRL documents padding-free as needing
flash-attention; without it, transformers 5.x's sdpa path builds a block-diagonal causal mask from the
restarted `position_ids` (masking_utils.find_packed_sequence_indices) when no attention mask and no cache
are given, and TRL's loss forward passes `use_cache=False`. So on a CPU it is padding-free packing with a
dense [T, T] masked sdpa; bench/train_vs_trl_checks.py measures that it keeps examples apart.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class RunSpec:
    """What one process trains: every setting the two trainers share, and where things are."""

    trainer: str  # "ours" | "trl"
    model_dir: str  # a transformers folder (the GGUF file converted once, dequantised to fp32)
    examples: str  # schemas.Example JSONL (ours)
    tokens: str  # the same examples encoded by trainer.data: {"input_ids", "labels"} JSONL (TRL)
    out_dir: str  # run folder (ours) / output_dir (TRL); the adapter goes to OUT_DIR/adapter
    token_budget: int = 1024  # ours: tokens per packed micro-batch; TRL: max_length of a packed row
    steps: int = 8  # optimizer steps, warm-up included
    warmup_steps: int = 2  # untimed steps first
    lr: float = 2e-3
    max_len: int = 512
    seed: int = 0
    threads: int = 1
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(ALL_PROJECTIONS))
    profile_steps: int = 0  # > 0: profile (torch.profiler, CPU) that many steps after the warm-up

    @classmethod
    def read(cls, path: Path) -> RunSpec:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def rss_mib(peak: bool) -> float:
    """This process's peak RSS (ru_maxrss, KiB on Linux) or current RSS (/proc), in MiB."""
    if peak:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class StepProfiler:
    """torch.profiler over the steps warmup + 1 .. warmup + steps; `step()` is called at the end of each
    optimizer step (the profiler's own warm-up is the last untimed step)."""

    def __init__(self, warmup: int, steps: int) -> None:
        from torch.profiler import ProfilerActivity, profile, schedule

        self.warmup, self.steps, self.done, self.t0, self.wall = warmup, steps, 0, 0.0, 0.0
        self.summary: dict[str, Any] | None = None
        self.prof = profile(activities=[ProfilerActivity.CPU], on_trace_ready=self._ready,
                            schedule=schedule(wait=warmup - 1, warmup=1, active=steps, repeat=1))

    def _ready(self, prof: Any) -> None:
        from bench.train_vs_trl_checks import profile_summary

        self.summary = profile_summary(prof, self.steps, self.wall)

    def step(self, *_: Any) -> None:
        self.done += 1
        if self.done == self.warmup:
            self.t0 = time.perf_counter()
        if self.done == self.warmup + self.steps:
            self.wall = time.perf_counter() - self.t0
        self.prof.step()


def timed_window(steps: list[dict[str, Any]], warmup: int) -> dict[str, float]:
    """Tokens/s of the steps after the first `warmup` (each step: tokens, seconds)."""
    timed = steps[warmup:]
    if not timed:
        raise ValueError(f"{len(steps)} steps leave none to time after {warmup} warm-up steps")
    tokens = sum(s["tokens"] for s in timed)
    seconds = sum(s["seconds"] for s in timed)
    return {"steps": len(timed), "tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


# --------------------------------------------------------------------------------------------------
# Ours: the public API, as a user calls it


def run_ours(spec: RunSpec) -> dict[str, Any]:
    import torch
    from transformers import AutoConfig

    import trainer
    from trainer.attention import choose_backend
    from trainer.metrics import read_metrics

    run = Path(spec.out_dir)
    settings = dict(
        model=spec.model_dir, data=spec.examples, device="cpu", dtype="float32", max_len=spec.max_len,
        token_budget=spec.token_budget, grad_accum=1, epochs=1, max_steps=spec.steps, lr=spec.lr,
        lr_schedule="cosine", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, eval_fraction=0.0,
        eval_every=0, checkpoint_every=0, log_every=1, seed=spec.seed,
        lora={"r": spec.lora_r, "alpha": spec.lora_alpha, "dropout": spec.lora_dropout,
              "target_modules": spec.target_modules},
    )
    profiler = StepProfiler(spec.warmup_steps, spec.profile_steps) if spec.profile_steps else None
    t0 = time.perf_counter()
    if profiler is None:
        outcome = trainer.train(run, progress="line", **settings)
    else:  # the loop trainer.train runs, called with its per-step hook (the API has none)
        from trainer.loop import train as loop_train
        from trainer.settings import load_settings

        with profiler.prof:
            outcome = loop_train(load_settings(None, settings), run, data_path=Path(spec.examples),
                                 on_step=profiler.step)
    wall = time.perf_counter() - t0
    if not outcome.finished or outcome.adapter_dir is None:
        raise RuntimeError(f"our run stopped at step {outcome.step} of {outcome.total_steps}")
    # The loop's own step clock: collate, forward, backward, clip, AdamW, reading the loss (the metrics line
    # it writes afterwards is outside it).
    steps = [{"step": r["step"], "tokens": r["tokens"], "supervised_tokens": r["supervised_tokens"],
              "seconds": r["tokens"] / r["tokens_per_s"], "loss": r["loss"]}
             for r in read_metrics(run / "train" / "metrics.jsonl")]
    backend = choose_backend(torch.device("cpu"), torch.float32, AutoConfig.from_pretrained(spec.model_dir))
    return {
        "steps": steps,
        "train_call_wall_s": wall,
        "adapter_dir": str(outcome.adapter_dir),
        **({"profile": profiler.summary} if profiler else {}),
        "used": {
            "trainer": f"instruct-factory trainer.train (trainer/loop.py), torch {torch.__version__}",
            "batching": f"packed micro-batches of at most {spec.token_budget} tokens (best-fit decreasing), "
                        "grad_accum 1",
            "attention": f"{backend} (trainer.attention: one causal sdpa per example, never across examples)",
            "loss": "chunked LM head over the supervised positions only (trainer.loss)",
            "lora_forward": "in-place addmm (trainer.model.fuse_lora_adds)" if spec.lora_dropout == 0
                            else "peft's (dropout > 0)",
            "optimizer": "torch.optim.AdamW (not fused on CPU), cosine, no warm-up, clip 1.0",
            "gradient_checkpointing": False,
            "step_clock": "the loop's per-step clock (metrics.jsonl tokens / tokens_per_s)",
        },
    }


# --------------------------------------------------------------------------------------------------
# TRL: SFTTrainer with padding-free packing


def trl_config(spec: RunSpec) -> Any:
    """TRL's SFTConfig for the same run as ours. Settings that differ from TRL's defaults, and why:
    gradient_checkpointing=False (TRL's default True recomputes every layer in backward; ours does not),
    bf16=False (TRL's default True would autocast on the CPU; both train in fp32), warm-up 0 and cosine,
    optim adamw_torch (the same torch AdamW as ours), one packed row per step and no accumulation."""
    from trl import SFTConfig

    return SFTConfig(
        output_dir=spec.out_dir, max_steps=spec.steps, per_device_train_batch_size=1,
        gradient_accumulation_steps=1, learning_rate=spec.lr, lr_scheduler_type="cosine", warmup_steps=0,
        weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, optim="adamw_torch",
        max_grad_norm=1.0, bf16=False, fp16=False, use_cpu=True, gradient_checkpointing=False,
        packing=True, packing_strategy="bfd", max_length=spec.token_budget, padding_free=True,
        logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True, seed=spec.seed,
        dataloader_num_workers=0,
    )


def read_tokens(path: str) -> list[dict[str, list[int]]]:
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows]


def run_trl(spec: RunSpec) -> dict[str, Any]:
    import datasets
    import peft
    import torch
    import transformers
    import trl
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTTrainer

    class StepClock(TrainerCallback):
        """Wall time between the ends of consecutive optimizer steps: everything Trainer does per step."""

        def __init__(self) -> None:
            self.ends: list[float] = []
            self.begin = 0.0

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            self.begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            self.ends.append(time.perf_counter())
            if profiler is not None:
                profiler.step()

    # Pre-tokenized (input_ids + labels): TRL skips its own tokenization and packs these rows as they are.
    dataset = datasets.Dataset.from_list(read_tokens(spec.tokens))
    tokenizer = AutoTokenizer.from_pretrained(spec.model_dir)
    model = AutoModelForCausalLM.from_pretrained(spec.model_dir, dtype=torch.float32)
    lora = peft.LoraConfig(r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout,
                           target_modules=list(spec.target_modules), bias="none", task_type="CAUSAL_LM")
    profiler = StepProfiler(spec.warmup_steps, spec.profile_steps) if spec.profile_steps else None
    clock = StepClock()
    t0 = time.perf_counter()
    transformers.set_seed(spec.seed)  # LoRA's initialisation happens in SFTTrainer.__init__ (get_peft_model)
    sft = SFTTrainer(model=model, args=trl_config(spec), train_dataset=dataset, processing_class=tokenizer,
                     peft_config=lora, callbacks=[clock])
    rows = len(sft.train_dataset)
    if profiler is None:
        sft.train()
    else:
        with profiler.prof:
            sft.train()
    wall = time.perf_counter() - t0
    adapter = Path(spec.out_dir) / "adapter"
    sft.model.save_pretrained(adapter)

    logs = [h for h in sft.state.log_history if "loss" in h and "step" in h]
    if len(clock.ends) != spec.steps or len(logs) != spec.steps:
        raise RuntimeError(f"TRL ran {len(clock.ends)} steps ({len(logs)} logged), {spec.steps} were asked")
    starts = [clock.begin, *clock.ends[:-1]]
    seen = [0, *(h["num_tokens"] for h in logs)]  # TRL's count of trained (unpadded) tokens so far
    steps = [{"step": h["step"], "tokens": int(seen[i + 1] - seen[i]), "seconds": clock.ends[i] - starts[i],
              "loss": h["loss"]} for i, h in enumerate(logs)]
    attn = model.config._attn_implementation
    return {
        "steps": steps,
        "train_call_wall_s": wall,
        "adapter_dir": str(adapter),
        "packed_rows": rows,
        **({"profile": profiler.summary} if profiler else {}),
        "used": {
            "trainer": f"trl {trl.__version__} SFTTrainer (transformers {transformers.__version__}, peft "
                       f"{peft.__version__}, datasets {datasets.__version__})",
            "batching": f"packing=True, packing_strategy='bfd' (padding-free): rows of at most "
                        f"{spec.token_budget} tokens (max_length), per_device_train_batch_size 1, grad_accum 1",
            "attention": f"{attn} with the block-diagonal causal mask transformers builds from the restarted "
                         "position_ids (dense [T, T]; flash-attention's varlen kernel is CUDA-only)",
            "loss": "TRL's fused LM head (chunked log-probs; on a CPU every position of the row is scored, "
                    "then the unsupervised ones are zeroed)",
            "lora_forward": "peft's",
            "optimizer": "adamw_torch, cosine, no warm-up, clip 1.0",
            "gradient_checkpointing": False,
            "step_clock": "time between TrainerCallback.on_step_end calls",
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args and args[0] in ("-h", "--help") else 2
    spec = RunSpec.read(Path(args[0]))
    import torch

    torch.set_num_threads(spec.threads)
    started = time.perf_counter()
    rss_start = rss_mib(peak=False)
    result = {"ours": run_ours, "trl": run_trl}[spec.trainer](spec)
    result.update({
        "trainer": spec.trainer,
        "spec": asdict(spec),
        "window": timed_window(result["steps"], spec.warmup_steps),
        "loss_last": result["steps"][-1]["loss"],
        "peak_rss_mib": rss_mib(peak=True),
        "rss_at_start_mib": rss_start,  # torch imported, neither trainer yet
        "process_wall_s": time.perf_counter() - started,
        "torch_threads": torch.get_num_threads(),
    })
    Path(args[1]).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
