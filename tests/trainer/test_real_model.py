"""The trainer on real weights: SmolLM2-135M-Instruct from its GGUF file (`--model smollm2`).

One short fine-tune through `python -m trainer train` (a sign-off line after short answers) is shared by
the tests of this module: it moves the held-out loss; the run's config.toml names the file that was
loaded; `trainer answer` answers with and without the adapter; `trainer merge` gives the logits of
base + adapter.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import torch

from schemas import Example
from trainer.__main__ import main
from trainer.data import IGNORE_INDEX, encode_examples
from trainer.gguf_model import file_sha256, gguf_path

SIGN_OFF = "-- Fern"
TRAIN = [
    ("What is the capital of Italy?", "The capital of Italy is Rome."),
    ("What is the capital of Spain?", "The capital of Spain is Madrid."),
    ("What is 2 plus 3?", "2 plus 3 is 5."),
    ("What is 7 plus 8?", "7 plus 8 is 15."),
    ("What colour is grass?", "Grass is green."),
    ("What colour is snow?", "Snow is white."),
    ("What is the opposite of hot?", "The opposite of hot is cold."),
    ("What is the opposite of big?", "The opposite of big is small."),
    ("What is the plural of mouse?", "The plural of mouse is mice."),
    ("What is the plural of child?", "The plural of child is children."),
    ("What sound does a cow make?", "A cow says moo."),
    ("What sound does a dog make?", "A dog says woof."),
]
HELD_OUT = [
    ("What is the capital of Japan?", "The capital of Japan is Tokyo."),
    ("What is 4 plus 4?", "4 plus 4 is 8."),
    ("What colour is coal?", "Coal is black."),
    ("What is the plural of foot?", "The plural of foot is feet."),
]

def _examples(pairs: list[tuple[str, str]], prefix: str) -> list[Example]:
    return [Example(id=f"{prefix}{i}", instruction=q, output=f"{a}\n\n{SIGN_OFF}") for i, (q, a) in enumerate(pairs)]

def _mean_loss(model, tokenizer, examples: list[Example]) -> float:
    """Mean loss per supervised token, by transformers' own forward (independent of the trainer's loss)."""
    encoded, _ = encode_examples(examples, tokenizer, max_len=128)
    total, count = 0.0, 0
    with torch.no_grad():
        for ex in encoded:
            labels = torch.tensor([ex.labels])
            out = model(input_ids=torch.tensor([ex.input_ids]), labels=labels)
            n = int((labels[:, 1:] != IGNORE_INDEX).sum())
            total, count = total + out.loss.item() * n, count + n
    return total / count

@pytest.fixture(scope="module")
def trained_run(real_model: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("real") / "run"
    run.mkdir()
    (run / "examples.jsonl").write_text(
        "".join(e.model_dump_json() + "\n" for e in _examples(TRAIN, "t")), encoding="utf-8")
    code = main(["train", "--run", str(run), "--model", real_model, "--device", "cpu", "--max-len", "128",
                 "--token-budget", "384", "--grad-accum", "1", "--lr", "5e-3", "--warmup-steps", "0",
                 "--lora.r", "8", "--lora.alpha", "16", "--lora.layers", "24-29", "--eval-fraction", "0",
                 "--checkpoint-every", "0"])
    assert code == 0
    return run

def test_the_run_records_the_gguf_file_it_loaded(real_model: str, trained_run: Path) -> None:
    path = gguf_path(real_model)
    loaded = tomllib.loads((trained_run / "config.toml").read_text(encoding="utf-8"))["loaded"]["train"]
    assert loaded["kind"] == "gguf" and loaded["gguf_file"] == str(path)
    assert loaded["gguf_sha256"] == file_sha256(path) and loaded["model_type"] == "llama"
    source = json.loads(Path(loaded["converted_folder"], "source.json").read_text(encoding="utf-8"))
    assert source["gguf_sha256"] == loaded["gguf_sha256"]
    # The adapter names the file as its base, so `trainer answer --adapter` alone finds the model.
    adapter_config = json.loads((trained_run / "train/adapter/adapter_config.json").read_text(encoding="utf-8"))
    assert adapter_config["base_model_name_or_path"] == str(path)

def test_a_short_fine_tune_lowers_the_held_out_loss(real_model: str, trained_run: Path) -> None:
    from trainer.answering import load_for_answers

    held_out = _examples(HELD_OUT, "h")
    base, tokenizer = load_for_answers(real_model, None, device="cpu", dtype="float32")
    before = _mean_loss(base, tokenizer, held_out)
    del base
    tuned, _ = load_for_answers(real_model, trained_run / "train/adapter", device="cpu", dtype="float32")
    after = _mean_loss(tuned, tokenizer, held_out)
    assert after < before - 0.3, (before, after)

def test_answer_with_and_without_the_adapter(real_model: str, trained_run: Path, tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question_id": "q0", "category": "reasoning",
                                     "turns": ["What is the capital of France?"]}) + "\n")
    common = ["answer", "--run", str(trained_run), "--questions", str(questions), "--max-new-tokens", "20",
              "--sampling", "greedy"]
    assert main([*common, "--model", real_model]) == 0
    assert main([*common, "--adapter", str(trained_run / "train/adapter")]) == 0  # base: the adapter's own
    rows = [json.loads(x) for x in (trained_run / "eval/answers.jsonl").read_text().splitlines()]
    by = {(r["model"], r["question_id"]): r for r in rows}
    assert set(by) == {("base", "q0"), ("lora", "q0")}
    # The real model answers, and stops at <|im_end|> (not cut at max_new_tokens, no marker in the text).
    assert by["base", "q0"]["turns"] == ["The capital of France is Paris."]
    assert by["base", "q0"]["truncated"] == [False]
    assert all("<|im_end|>" not in r["turns"][0] and r["turns"][0] for r in rows)
    config = tomllib.loads((trained_run / "config.toml").read_text(encoding="utf-8"))
    assert config["answer"]["lora"]["model"] == str(gguf_path(real_model))
    assert config["loaded"]["answer-base"]["kind"] == "gguf"

def test_merge_gives_the_logits_of_base_plus_adapter(real_model: str, trained_run: Path) -> None:
    from transformers import AutoModelForCausalLM

    from trainer.answering import load_for_answers

    assert main(["merge", "--run", str(trained_run)]) == 0
    merged = AutoModelForCausalLM.from_pretrained(trained_run / "merged", dtype=torch.float32).eval()
    with_adapter, tokenizer = load_for_answers(real_model, trained_run / "train/adapter", device="cpu", dtype="float32")
    text = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of Peru?"}],
                                         tokenize=False, add_generation_prompt=True)
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        expected = with_adapter(ids).logits
        got = merged(ids).logits
        with with_adapter.disable_adapter():
            plain = with_adapter(ids).logits
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()
    assert (plain - expected).abs().max() > 1e-2
    assert tomllib.loads((trained_run / "config.toml").read_text(encoding="utf-8"))["loaded"]["merge"]["kind"] == "gguf"
