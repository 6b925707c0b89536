"""python -m trainer merge: the merged model computes what base + adapter compute."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
import torch

from schemas import Example, write_jsonl
from trainer.__main__ import main
from trainer.loop import train
from schemas import RunFolder
from trainer.settings import TrainSettings
from trainer_examples import WORDS


@pytest.fixture(scope="module")
def trained_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("run")
    rng = random.Random(0)
    write_jsonl(run / "examples.jsonl", [
        Example(id=f"ex{i}", instruction=" ".join(rng.choices(WORDS, k=6)), output=" ".join(rng.choices(WORDS, k=12)))
        for i in range(40)
    ])
    settings = TrainSettings(model=str(tiny_model_dir), max_len=64, token_budget=128, max_steps=4, lr=2e-2,
                             warmup_steps=0, eval_fraction=0.0, checkpoint_every=0)
    RunFolder(run).write_config_section("train", settings)  # as the CLI does
    train(settings, run, progress_stream=io.StringIO())
    return run


def test_merged_logits_equal_base_plus_adapter(trained_run: Path, tiny_model_dir: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "merged"
    assert main(["merge", "--run", str(trained_run), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    assert not (out / "adapter_config.json").exists()  # a plain model folder: no peft needed

    ids = torch.tensor([[2, 11, 57, 300, 42, 7, 99, 5]])
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        plain = base(input_ids=ids).logits
        with_adapter = PeftModel.from_pretrained(base, trained_run / "train/adapter").eval()(input_ids=ids).logits
        folded = merged(input_ids=ids).logits
    assert (with_adapter - plain).abs().max() > 1e-3  # the adapter does something...
    torch.testing.assert_close(folded, with_adapter, rtol=1e-5, atol=1e-5)  # ...and the merge keeps it
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template and tokenizer("안녕하세요")["input_ids"]


def test_merge_defaults_to_the_run_folder_and_the_base_models_dtype(trained_run: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    assert main(["merge", "--run", str(trained_run)]) == 0
    merged = AutoModelForCausalLM.from_pretrained(trained_run / "merged", dtype="auto")
    assert next(merged.parameters()).dtype == torch.float32  # the tiny base is saved in fp32
    assert main(["merge", "--run", str(trained_run), "--out", str(tmp_path / "bf16"), "--dtype", "bfloat16"]) == 0
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "bf16", dtype="auto")
    assert next(merged.parameters()).dtype == torch.bfloat16


def test_merge_without_a_trained_adapter_says_to_train_first(tmp_path: Path, tiny_model_dir: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["merge", "--run", str(tmp_path)]) == 2
    assert "train the run first" in capsys.readouterr().err
    assert main(["merge", "--run", str(tmp_path), "--model", str(tiny_model_dir)]) == 2
    assert "no adapter at" in capsys.readouterr().err
