"""Answers to an evaluation set from a local model, batched (`python -m trainer answer`, and
`trainer.answer` in Python):

    python -m trainer answer --run runs/NAME --questions evalsets/ko.jsonl --adapter runs/NAME/train/adapter
    python -m trainer answer --run runs/NAME --questions evalsets/ko.jsonl --model google/gemma-2b-it --label base

The base model plus a LoRA adapter (peft), or the base alone as the baseline. Questions are grouped
by sampling temperature, sorted by prompt length (similar lengths share a batch, so little padding)
and generated in batches: left padding (every row's last prompt token sits in the last column, so
the new tokens line up), the KV cache, `max_new_tokens`, and a stop at end-of-turn (Gemma's
`<end_of_turn>`) or eos, which is not part of the text. A second turn is generated with the whole
conversation: the first question, the model's own first answer, the second question.

Temperature: greedy, or MT-Bench's per category (writing/roleplay 0.7; extraction, math, coding,
reasoning 0.0; stem/humanities 0.1; our real_estate 0.1; others 0.7). Sampled answers depend on the
seed and on the batch they are drawn in.

Writes `RUN/eval/answers.jsonl` (schemas.Answer; extra fields `truncated` per turn, true when cut at
`max_new_tokens`, and `temperature`) after every batch, so a rerun skips the questions this label
has already answered. `latency_s` is the wall time of the batches that produced the answer.
The resolved settings go to `RUN/config.toml` under `[answer.LABEL]`.
"""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas import (
    Answer,
    EvalSetError,
    JsonlWriter,
    Question,
    RunFolder,
    RunFolderError,
    fully_answered,
    load_questions,
    temperature_for,
)
from trainer.errors import AnswerError
from trainer.gguf_model import record_model
from trainer.metrics import AnswerProgress, AnswerProgressBar
from trainer.model import (
    ModelLoadError,
    default_device,
    default_dtype,
    load_model,
    load_tokenizer,
)

SECTION = "answer"
END_OF_TURN = "<end_of_turn>"


class AnswerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    questions: Path
    model: str | None = Field(None, description="hub id or local folder; default: the adapter's base model")
    adapter: Path | None = Field(None, description="peft adapter folder; none: the base model alone")
    label: str | None = Field(None, min_length=1, description="model label in answers.jsonl; default lora/base")
    max_new_tokens: int = Field(1024, ge=1)
    batch_size: int = Field(8, ge=1)
    sampling: Literal["per-category", "greedy"] = "per-category"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"


# --- settings -------------------------------------------------------------------------------------

def _adapter_base(adapter: Path) -> str | None:
    config = adapter / "adapter_config.json"
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path") or None
    except (OSError, json.JSONDecodeError):
        return None


def _trained_base(run: Path) -> str | None:
    try:
        return RunFolder(run).config_section("train").get("model")
    except (OSError, RunFolderError):
        return None


def resolve_settings(run: Path, values: dict[str, Any]) -> AnswerSettings:
    """Validate and fill in defaults; every check happens here, before any model is loaded."""
    try:
        settings = AnswerSettings.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise AnswerError(f"[{SECTION}] {where}: {err['msg']}") from e
    if not settings.questions.is_file():
        raise AnswerError(f"question file {settings.questions} not found; pass --questions evalsets/ko.jsonl or another JSONL file")
    if settings.adapter is not None and not (settings.adapter / "adapter_config.json").is_file():
        raise AnswerError(f"{settings.adapter} is not a peft adapter folder (no adapter_config.json); pass the adapter/ folder that training wrote")
    model = settings.model or (_adapter_base(settings.adapter) if settings.adapter else None) or _trained_base(run)
    if not model:
        raise AnswerError("no model to load: pass --model (a hub id or a local folder)")
    label = settings.label or ("lora" if settings.adapter else "base")
    return settings.model_copy(update={"model": model, "label": label})


# --- model ----------------------------------------------------------------------------------------

def _device_and_dtype(device: str, dtype: str) -> tuple[Any, Any]:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise AnswerError("--device cuda but no CUDA GPU is visible; use --device cpu or auto")
    dev = default_device() if device == "auto" else torch.device(device)
    return dev, (default_dtype(dev) if dtype == "auto" else getattr(torch, dtype))


def load_for_answers(model_id: str, adapter: Path | None, *, device: str = "auto", dtype: str = "auto") -> tuple[Any, Any]:
    """(model in eval mode on its device, tokenizer), through the trainer's own loaders and their messages."""
    dev, dt = _device_and_dtype(device, dtype)
    try:
        tokenizer = load_tokenizer(model_id)
        model = load_model(model_id, device=dev, dtype=dt)
    except ModelLoadError as e:
        raise AnswerError(str(e)) from e
    if adapter is not None:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(adapter))
        except (OSError, ValueError, RuntimeError) as e:
            raise AnswerError(f"cannot apply the adapter {adapter} to {model_id}: {str(e).splitlines()[0]}") from e
    model.to(dev)
    model.eval()
    return model, tokenizer


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """eos, `<end_of_turn>` when the vocabulary has it, and the model's own generation stops."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    if END_OF_TURN in tokenizer.get_vocab():
        ids.add(int(tokenizer.convert_tokens_to_ids(END_OF_TURN)))
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, list):
        ids.update(int(i) for i in configured)
    if not ids:
        raise AnswerError("the tokenizer has neither an eos token nor <end_of_turn>: generation could not stop")
    return sorted(ids)


def encode_conversation(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Prompt ids of a conversation ending with the model's turn opened (the chat template adds <bos>)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass(frozen=True)
class Generated:
    text: str
    tokens: int  # generated tokens before the stop token
    truncated: bool  # cut at max_new_tokens instead of stopping at end-of-turn / eos


def generate_batch(model: Any, tokenizer: Any, prompts: Sequence[Sequence[int]], *, max_new_tokens: int,
                   temperature: float, stop_ids: Sequence[int], logits_processor: Any = None) -> list[Generated]:
    """Generate for a batch of prompts (token ids), left-padded into one tensor."""
    import torch
    from transformers import GenerationConfig

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    width = max(len(p) for p in prompts)
    device = next(model.parameters()).device
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        # Left padding: [pad pad p0 p1 ... pn]; the mask hides the pads and generate derives positions from it.
        input_ids[row, width - len(p):] = torch.tensor(p, dtype=torch.long)
        attention_mask[row, width - len(p):] = 1
    sampling = temperature > 0
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=sampling,
        # MT-Bench samples with temperature alone: no top-k / top-p truncation.
        **({"temperature": temperature, "top_k": 0, "top_p": 1.0} if sampling else {}),
        eos_token_id=list(stop_ids),
        pad_token_id=pad_id,
        use_cache=True,
    )
    with torch.inference_mode():
        out = model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                             generation_config=config, logits_processor=logits_processor)
    stops = set(stop_ids)
    results = []
    for row in out[:, width:].tolist():
        cut = next((i for i, t in enumerate(row) if t in stops), None)
        kept = row if cut is None else row[:cut]
        text = tokenizer.decode(kept, skip_special_tokens=True).strip()
        results.append(Generated(text=text, tokens=len(kept), truncated=cut is None))
    return results


def answer_questions(model: Any, tokenizer: Any, questions: Sequence[Question], *, label: str,
                     max_new_tokens: int, batch_size: int, sampling: str = "per-category",
                     on_answers: Callable[[list[Answer]], None], logits_processor: Any = None) -> int:
    """Answer every turn of every question; `on_answers` gets each finished batch. Returns the count."""
    stop_ids = stop_token_ids(model, tokenizer)
    by_temperature: dict[float, list[tuple[Question, list[int]]]] = {}
    for q in questions:
        first = encode_conversation(tokenizer, [{"role": "user", "content": q.turns[0]}])
        by_temperature.setdefault(temperature_for(q.category, sampling), []).append((q, first))
    done = 0
    for temperature, group in sorted(by_temperature.items()):
        group.sort(key=lambda qp: (len(qp[1]), qp[0].question_id))
        for start in range(0, len(group), batch_size):
            batch = group[start:start + batch_size]
            history = [[{"role": "user", "content": q.turns[0]}] for q, _ in batch]
            outputs: list[list[Generated]] = [[] for _ in batch]
            latency = [0.0] * len(batch)
            prompts = [p for _, p in batch]
            active = list(range(len(batch)))
            for turn in range(max(len(q.turns) for q, _ in batch)):
                if turn > 0:
                    # Later turns: the whole conversation so far, with the model's own answers.
                    active = [i for i in active if len(batch[i][0].turns) > turn]
                    for i in active:
                        history[i] += [{"role": "assistant", "content": outputs[i][-1].text},
                                       {"role": "user", "content": batch[i][0].turns[turn]}]
                    prompts = [encode_conversation(tokenizer, history[i]) for i in active]
                t0 = time.perf_counter()
                generated = generate_batch(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                                           temperature=temperature, stop_ids=stop_ids, logits_processor=logits_processor)
                elapsed = time.perf_counter() - t0
                for i, g in zip(active, generated, strict=True):
                    outputs[i].append(g)
                    latency[i] += elapsed
            answers = [
                Answer(question_id=q.question_id, model=label, turns=[g.text for g in outputs[i]],
                       tokens=[g.tokens for g in outputs[i]], latency_s=round(latency[i], 4),
                       truncated=[g.truncated for g in outputs[i]], temperature=temperature)
                for i, (q, _) in enumerate(batch)
            ]
            on_answers(answers)
            done += len(answers)
    return done


# --- a run ----------------------------------------------------------------------------------------

ANSWER_FIELDS = ("questions", "adapter", "model", "label", "max_new_tokens", "batch_size", "sampling", "seed",
                 "device", "dtype")


def answer_values(config: Path | None, given: dict[str, Any]) -> dict[str, Any]:
    """The `[answer]` table of `config` with the given values (None: not given) on top."""
    values: dict[str, Any] = {}
    if config is not None:
        try:
            doc = tomllib.loads(config.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise AnswerError(f"cannot read --config {config}: {e}") from e
        table = doc.get(SECTION, {})
        if not isinstance(table, dict):
            raise AnswerError(f"{config}: [{SECTION}] must be a table")
        values.update(table)
    values.update({k: v for k, v in given.items() if v is not None})
    if "questions" not in values:
        raise AnswerError("no question file: pass --questions FILE")
    return values


@dataclass(frozen=True)
class AnswerOutcome:
    label: str
    answered: int  # questions answered by this call
    already: int  # questions this label had answered before (skipped)
    questions: int  # questions in the file
    path: Path  # RUN/eval/answers.jsonl
    seconds: float


def answer_run(run: Path, settings: AnswerSettings, *, progress_bar: bool = False,
               progress_stream: TextIO | None = None) -> AnswerOutcome:
    """Answer the questions `settings.label` has not answered yet in `run` (settings from
    `resolve_settings`), appending to RUN/eval/answers.jsonl after every batch. The progress is a
    status line on `progress_stream` (stderr), or a tqdm bar (`progress_bar`: in a notebook)."""
    out = RunFolder(run).answers
    label = str(settings.label)
    try:
        questions = load_questions(settings.questions)
        done = fully_answered(out, label, questions)
    except EvalSetError as e:
        raise AnswerError(str(e)) from None
    todo = [q for q in questions if q.question_id not in done]
    if not todo:
        return AnswerOutcome(label, 0, len(done), len(questions), out, 0.0)
    RunFolder(run).write_config_section((SECTION, label), settings)
    import torch

    torch.manual_seed(settings.seed)
    model, tokenizer = load_for_answers(str(settings.model), settings.adapter,
                                        device=settings.device, dtype=settings.dtype)
    record_model(run, f"{SECTION}-{label}", str(settings.model))
    t0 = time.perf_counter()
    progress = (AnswerProgressBar if progress_bar else AnswerProgress)(len(todo), label, progress_stream)

    def on_answers(answers: list[Answer]) -> None:
        writer.append(answers)
        progress.update(len(answers), sum(sum(a.tokens) for a in answers))

    try:
        with JsonlWriter(out) as writer:
            n = answer_questions(model, tokenizer, todo, label=label, max_new_tokens=settings.max_new_tokens,
                                 batch_size=settings.batch_size, sampling=settings.sampling, on_answers=on_answers)
    finally:
        progress.close()
    return AnswerOutcome(label, n, len(done), len(questions), out, time.perf_counter() - t0)
