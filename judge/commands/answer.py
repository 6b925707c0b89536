"""`python -m judge answer`: answers to an evaluation set from any OpenAI-compatible endpoint.

    python -m judge answer --run runs/NAME --questions evalsets/ko.jsonl \\
        --endpoint http://localhost:8000/v1 --model lora [--label lora]

For instance vLLM serving the base model with the trained adapter
(`vllm serve google/gemma-2b-it --enable-lora --lora-modules lora=runs/NAME/train/adapter`):
`--model lora` answers with the adapter, `--model google/gemma-2b-it --label base` with the base
alone. Or a hosted model as a reference point (`--endpoint https://api.openai.com/v1 --model gpt-4o`).

The requests go through the factory engine as stage "eval-answers": rate limits, retries, the
ledger and cost (unknown for a model the price table does not list: give --price-input and
--price-output, or read it as GPU time). A second turn is asked with the whole conversation: the
first question, the model's own first answer, the second question. Temperature as `trainer
answer` sets it: MT-Bench's per category, or greedy.

Writes `RUN/eval/answers.jsonl` (schemas.Answer; extra fields `truncated` per turn, true when cut
at max_tokens, and `temperature`), one line per question once all its turns are answered.
A rerun skips the questions this label has answered in full; the ledger gives back any turn it
already has, so a killed run pays for nothing twice. The settings go to `RUN/config.toml` under
`[answer.LABEL]`, where `python -m judge grade` finds the question file.
The answering is judge/answering.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from factory.engine import EngineSettings, add_engine_arguments, engine_settings_from_args, usd
from judge.answering import AnswerError, RemoteAnswerSettings, answer_run
from schemas import RunFolder


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    # "resolve": --endpoint also answers to the engine's --base-url (one option, two names).
    p = subparsers.add_parser(
        "answer", help="answer an evaluation set with a model behind an OpenAI-compatible endpoint (e.g. vLLM)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, conflict_handler="resolve",
    )
    p.add_argument("--run", type=Path, required=True, help="the run folder, e.g. runs/NAME")
    p.add_argument("--questions", type=Path, required=True, help="question file (JSONL, schemas.Question or MT-Bench)")
    add_engine_arguments(p)
    p.add_argument("--endpoint", "--base-url", dest="base_url", help="OpenAI-compatible API root, e.g. http://localhost:8000/v1")
    p.add_argument("--model", help="model name the endpoint serves (vLLM: the --lora-modules name, or the base)")
    p.add_argument("--label", help="model label in answers.jsonl (default: the --model name)")
    p.add_argument("--max-tokens", type=int, help="max tokens per turn (default 1024)")
    p.add_argument("--sampling", choices=("per-category", "greedy"), help="MT-Bench temperature per category, or greedy")
    p.add_argument("--seed", type=int, help="the `seed` parameter of every request (default: none sent)")
    p.set_defaults(func=main)
    return p


def settings_from_args(args: argparse.Namespace) -> tuple[RemoteAnswerSettings, EngineSettings]:
    engine = engine_settings_from_args(args)
    if not args.model:
        raise AnswerError("no model: pass --model, the name the endpoint serves (e.g. the vLLM --lora-modules name)")
    values = {"questions": args.questions, "model": args.model, "label": args.label or args.model,
              "endpoint": engine.base_url, "max_tokens": args.max_tokens, "sampling": args.sampling, "seed": args.seed}
    try:
        settings = RemoteAnswerSettings.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as e:
        err = e.errors()[0]
        raise AnswerError(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}") from None
    return settings, engine


def main(args: argparse.Namespace) -> int:
    settings, engine = settings_from_args(args)
    counts, before = answer_run(args.run, settings, engine)
    out = RunFolder(args.run).answers
    label = settings.label
    if counts.answered == counts.failed == counts.unfinished == 0:
        print(f"{label}: every question of {settings.questions} already answered in {out}")
        return 0
    cost = "unknown (no price for this model)" if counts.cost_usd is None else usd(counts.cost_usd)
    print(f"{label}: answered {counts.answered} questions ({counts.turns} turns, {counts.cached} from the ledger) "
          f"with {settings.model} at {settings.endpoint}; {before} answered before; spent {cost} -> {out}")
    if counts.failed:
        print(f"{counts.failed} questions not answered: a request failed ({counts.first_error[:160]}); "
              "rerun the same command to retry", file=sys.stderr)
    if counts.unfinished:
        print(f"{counts.unfinished} questions not finished ({counts.stopped_reason or 'the run stopped'}); "
              "rerun the same command to continue", file=sys.stderr)
    if counts.stopped_reason == "interrupted":
        return 130
    return 1 if counts.failed or counts.unfinished else 0
