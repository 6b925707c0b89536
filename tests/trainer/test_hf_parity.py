"""Our loop against HF Trainer + peft: same tiny model, same LoRA start, same examples in each step.

Ours packs each micro-batch into one row; HF Trainer gets the same micro-batches padded, with its normal
loss (transformers 5.x divides the summed token losses by num_items_in_batch, counted over all micro-batches
of the accumulation). Same LR schedule, AdamW settings and clipping. If the loop normalised differently,
packed across examples, stepped the schedule at the wrong time or clipped differently, the 20 per-step
losses would drift apart.
"""

from __future__ import annotations

from pathlib import Path

import torch

from trainer_examples import write_examples
from trainer.data import prepare_data
from trainer.loop import train
from trainer.packing import plan_steps
from trainer.model import load_tokenizer
from trainer.settings import TrainSettings

STEPS = 20


def hf_trainer_losses(
    settings: TrainSettings, model_dir: Path, data_path: Path, initial: dict, out: Path
) -> list[float]:
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from torch.utils.data import DataLoader
    from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

    tokenizer = load_tokenizer(str(model_dir))
    data = prepare_data(settings, data_path, tokenizer)
    steps, _ = plan_steps(
        [len(ex.input_ids) for ex in data.train],
        token_budget=settings.token_budget, grad_accum=settings.grad_accum, world_size=1, epochs=1, seed=settings.seed,
    )
    micro_batches = [mb for step in steps[:STEPS] for mb in step.micro_batches]
    assert all(len(step.micro_batches) == settings.grad_accum for step in steps[:STEPS])
    rows = [{"input_ids": ex.input_ids, "labels": ex.labels} for ex in data.train]

    def pad(batch: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, r in enumerate(batch):
            n = len(r["input_ids"])
            ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(r["input_ids"]), torch.tensor(r["labels"]), 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    class SameBatchesTrainer(Trainer):
        def get_train_dataloader(self) -> DataLoader:
            return DataLoader(rows, batch_sampler=micro_batches, collate_fn=pad)

    class Losses(TrainerCallback):
        def __init__(self) -> None:
            self.by_step: dict[int, float] = {}

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            if logs and "loss" in logs:
                self.by_step[state.global_step] = float(logs["loss"])

    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    lora = settings.lora
    model = get_peft_model(
        base,
        LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=0.0, target_modules=list(lora.target_modules),
                   task_type="CAUSAL_LM"),
    )
    set_peft_model_state_dict(model, initial)
    args = TrainingArguments(
        output_dir=str(out),
        max_steps=STEPS,
        learning_rate=settings.lr,
        lr_scheduler_type="cosine",
        warmup_steps=settings.warmup_steps,
        gradient_accumulation_steps=settings.grad_accum,
        per_device_train_batch_size=1,  # unused: the dataloader above fixes each micro-batch
        weight_decay=settings.weight_decay,
        adam_beta1=settings.adam_beta1,
        adam_beta2=settings.adam_beta2,
        adam_epsilon=settings.adam_eps,
        max_grad_norm=settings.max_grad_norm,
        optim="adamw_torch",
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=settings.seed,
        disable_tqdm=True,
        remove_unused_columns=False,
    )
    losses = Losses()
    SameBatchesTrainer(model=model, args=args, train_dataset=rows, callbacks=[losses]).train()
    return [losses.by_step[s] for s in range(1, STEPS + 1)]


def test_per_step_losses_match_hf_trainer_with_peft(tiny_model_dir: Path, tmp_path: Path) -> None:
    from peft import get_peft_model_state_dict

    data_path = write_examples(tmp_path / "examples.jsonl", 260, seed=3, instruction_words=(2, 12), output_words=(2, 30))
    settings = TrainSettings(
        model=str(tiny_model_dir), max_len=96, token_budget=192, grad_accum=2, max_steps=STEPS,
        lr=2e-3, warmup_steps=3, eval_fraction=0.0, eval_every=0, checkpoint_every=0, seed=0,
        max_grad_norm=1.0, loss_chunk_tokens=64,  # several LM-head chunks per micro-batch
    )
    initial: dict[str, torch.Tensor] = {}

    def keep_initial(model: torch.nn.Module) -> None:
        initial.update({k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()})

    result = train(settings, tmp_path / "run", data_path=data_path, on_setup=keep_initial)
    ours = [result.losses[s] for s in range(1, STEPS + 1)]
    theirs = hf_trainer_losses(settings, tiny_model_dir, data_path, initial, tmp_path / "hf")

    for step, (a, b) in enumerate(zip(ours, theirs), start=1):
        assert abs(a - b) <= 1e-3 * abs(b), f"step {step}: ours {a:.6f}, HF Trainer {b:.6f}"
    # The run must actually learn, or matching losses would prove little.
    assert ours[-1] < ours[0] - 0.05
