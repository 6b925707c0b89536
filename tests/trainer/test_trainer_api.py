"""The Python API, `trainer.train`, `trainer.answer`, `trainer.merge`, on the tiny local model:
the calls do what the commands do, with the same settings objects and the same errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from trainer_examples import write_examples

import trainer
from schemas import Question, read_jsonl, write_jsonl
from trainer.__main__ import main
from trainer.answering import AnswerError
from trainer.errors import TrainError
from trainer.merging import MergeError
from trainer.settings import SettingsError, TrainSettings

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"max_len": 64, "token_budget": 128, "max_steps": 6, "lr": 2e-2, "warmup_steps": 0, "eval_fraction": 0.0,
         "checkpoint_every": 0, "log_every": 1}


def test_the_api_names_are_functions_not_modules() -> None:
    import trainer.commands.answer  # noqa: F401
    import trainer.commands.merge  # noqa: F401
    import trainer.commands.train  # noqa: F401
    import trainer.training  # noqa: F401

    assert {f.__module__ for f in (trainer.train, trainer.answer, trainer.merge)} == {"trainer.api"}


def test_train_answer_merge(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    run = tmp_path / "run"
    write_examples(run / "examples.jsonl", 30)
    out = trainer.train(run, model=str(tiny_model_dir), progress="line", **SMALL)
    assert out.finished and out.step == out.total_steps == 6 and out.adapter_dir == run / "train" / "adapter"
    assert sorted(out.losses) == list(range(1, 7))
    frame = out.metrics()
    assert frame["step"].to_list() == list(range(1, 7)) and frame["loss"].is_not_null().all()
    saved = (run / "config.toml").read_text()
    assert "[train]" in saved and "max_steps = 6" in saved, "the resolved settings are saved as the command does"

    questions = read_jsonl(ROOT / "evalsets" / "en.jsonl", Question)[:3]
    write_jsonl(tmp_path / "q.jsonl", questions)
    capsys.readouterr()
    base = trainer.answer(run, questions=tmp_path / "q.jsonl", max_new_tokens=4, batch_size=2, sampling="greedy",
                          progress="line")
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("answers base:")]
    assert [x.split(" | ")[0] for x in lines] == ["answers base: 2/3 questions", "answers base: 3/3 questions"]
    assert all("tok/s" in x and "ETA" in x for x in lines), "the same status as training: pace and ETA"
    lora = trainer.answer(run, questions=tmp_path / "q.jsonl", adapter=out.adapter_dir, max_new_tokens=4,
                          sampling="greedy")
    assert (base.label, base.answered, lora.label, lora.answered) == ("base", 3, "lora", 3)
    again = trainer.answer(run, questions=tmp_path / "q.jsonl", max_new_tokens=4, sampling="greedy")
    assert again.answered == 0 and again.already == 3, "a call again answers only what is left"
    answers = trainer.answers(run)
    assert sorted(answers["model"].unique().to_list()) == ["base", "lora"]
    assert answers.height == 2 * sum(len(q.turns) for q in questions)

    merged = trainer.merge(run, out=tmp_path / "merged")
    assert (merged / "config.json").is_file() and json.loads((merged / "config.json").read_text())


def test_a_settings_object_with_keywords_on_top(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    run = tmp_path / "run"
    write_examples(run / "examples.jsonl", 20)
    settings = TrainSettings(model=str(tiny_model_dir), **{**SMALL, "max_steps": 3})
    # The object stands for the config's [train] table (as in factory.generate and judge.grade).
    config = tmp_path / "other.toml"
    config.write_text("[train]\nlr = -1\n")
    out = trainer.train(run, settings=settings, config=config, lora={"r": 4}, max_steps_this_run=2, progress="bar")
    assert out.step == 2 and not out.finished and out.adapter_dir is None
    assert "step 1/3" not in capsys.readouterr().err, "the bar replaces the per-step lines"
    assert trainer.train(run, settings=settings, lora={"r": 4}, progress="line").finished, "a call again resumes"
    assert "r = 4" in (run / "config.toml").read_text()


@pytest.mark.parametrize("flags, kwargs", [
    (["--lr", "-1"], {"lr": -1}),
    (["--lrr", "1e-3"], {"lrr": 1e-3}),
    (["--lora.r", "0"], {"lora": {"r": 0}}),
])
def test_bad_settings_raise_the_commands_errors(tmp_path: Path, capsys, tiny_model_dir: Path, flags, kwargs) -> None:
    run = tmp_path / "run"
    write_examples(run / "examples.jsonl", 5)
    assert main(["train", "--run", str(run), "--model", str(tiny_model_dir), *flags]) == 2
    printed = capsys.readouterr().err.strip().removeprefix("error: ")
    with pytest.raises(SettingsError) as caught:
        trainer.train(run, model=str(tiny_model_dir), **kwargs)
    assert str(caught.value) == printed.replace("the command line", "the call")
    assert not (run / "train").exists() and not (run / "config.toml").exists()


def test_missing_inputs_say_what_to_do(tmp_path: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(TrainError, match="no examples at .*generate them first"):
        trainer.train(tmp_path / "empty", model=str(tiny_model_dir))
    with pytest.raises(AnswerError, match="question file .* not found"):
        trainer.answer(tmp_path, questions=tmp_path / "missing.jsonl", model=str(tiny_model_dir))
    with pytest.raises(AnswerError, match="unknown setting 'max_tokens'"):
        trainer.answer(tmp_path, questions=tmp_path / "q.jsonl", max_tokens=3)
    with pytest.raises(MergeError, match="train the run first"):
        trainer.merge(tmp_path)
    with pytest.raises(TrainError, match="no training metrics"):
        trainer.train_metrics(tmp_path)


def test_the_progress_bar_draws_the_steps(tmp_path: Path) -> None:
    from trainer.metrics import ProgressBar

    bar = ProgressBar(10, 0, io.StringIO())
    bar._bar.fp = io.StringIO()  # tqdm's own output, kept here
    bar.update(3, {"loss": 1.5, "tokens_per_s": 100.0})
    bar.update(4, {"loss": 1.25, "eval_loss": 1.3, "tokens_per_s": 100.0})
    assert bar._bar.n == 4 and "loss 1.2500" in str(bar._bar) and "eval 1.3000" in str(bar._bar)
    bar.close()


def test_the_answers_progress_bar_counts_questions() -> None:
    from trainer.metrics import AnswerProgressBar

    bar = AnswerProgressBar(5, "lora", io.StringIO())
    bar._bar.fp = io.StringIO()
    bar.update(2, 40)
    bar.update(3, 60)
    assert bar._bar.n == 5 and bar._bar.total == 5 and "tok/s" in str(bar._bar) and "answering (lora)" in str(bar._bar)
    bar.close()


def test_metrics_with_a_torn_last_line_read_up_to_it(tmp_path: Path) -> None:
    """A run killed while writing its metrics leaves a torn last line: the complete rows still read."""
    path = tmp_path / "train" / "metrics.jsonl"
    path.parent.mkdir()
    path.write_text('{"step": 1, "loss": 2.5}\n{"step": 2, "loss": 2.1}\n{"step": 3, "lo', encoding="utf-8")
    df = trainer.train_metrics(tmp_path)
    assert df["step"].to_list() == [1, 2] and df["loss"].to_list() == [2.5, 2.1]
