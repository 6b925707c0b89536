"""python -m trainer: settings from TOML + overrides, errors before any model loads, config.toml, subcommands."""

from __future__ import annotations

import random
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import trainer.loop
import trainer.model
from schemas import Example, write_jsonl
from trainer.__main__ import build_parser, main
from trainer.settings import SettingsError, TrainSettings, load_settings, parse_overrides

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/gemma-2b-it-lora.toml"


def test_overrides_are_toml_values_with_dotted_keys_and_bare_flags() -> None:
    got = parse_overrides([
        "--lr", "2e-4", "--lora.r", "8", "--grad-accum=4", "--compile", "--model", "google/gemma-2b-it",
        "--lora.target-modules", "q_proj,v_proj", "--max-grad-norm", "-1",
    ])
    assert got == {
        "lr": 2e-4, "lora": {"r": 8, "target_modules": "q_proj,v_proj"}, "grad_accum": 4, "compile": True,
        "model": "google/gemma-2b-it", "max_grad_norm": -1,
    }
    s = load_settings(None, {k: v for k, v in got.items() if k != "max_grad_norm"})
    assert s.lora.target_modules == ["q_proj", "v_proj"] and s.lora.r == 8 and s.compile is True
    with pytest.raises(SettingsError, match="--key value"):
        parse_overrides(["lr", "1"])


def test_the_shipped_config_is_the_tutorials_setup() -> None:
    s = load_settings(CONFIG)
    assert s.model == "google/gemma-2b-it"
    assert (s.lora.r, s.lora.alpha) == (4, 32.0)
    assert set(s.lora.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert (s.lr, s.lr_schedule, s.fused_adamw, s.dtype) == (1e-4, "cosine", "auto", "auto")
    assert s.grad_accum == 2 and s.token_budget >= s.max_len
    # Overrides win over the file.
    assert load_settings(CONFIG, {"lr": 3e-4, "lora": {"r": 16}}).lora.r == 16


@pytest.fixture
def no_model_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to load a model or tokenizer fails the test: bad settings must stop earlier."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a model was loaded before the settings were checked")

    monkeypatch.setattr(trainer.model, "load_model", refuse)  # the loop's setup_model loads through it
    monkeypatch.setattr(trainer.loop, "load_tokenizer", refuse)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lora.r", "0"], "lora.r: Input should be greater than or equal to 1"),
        (["--lrr", "1e-4"], "unknown setting 'lrr'"),
        (["--lrr", "1e-4"], "did you mean 'lr'"),
        (["--lr", "fast"], "lr: Input should be a valid number"),
        (["--token-budget", "512", "--max-len", "1024"], "raise token_budget or lower max_len"),
        (["--attention", "magic"], "unknown attention backend"),
        (["--lora.alpha", "0"], "lora.alpha"),
        (["--max-steps-this-run", "0"], "--max-steps-this-run must be at least 1"),
        ([], "no examples at"),
    ],
)
def test_a_wrong_setting_fails_with_what_to_change_before_any_model_loads(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_model_loading: None
) -> None:
    code = main(["train", "--run", str(tmp_path / "run"), "--model", "/does/not/exist", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "run/config.toml").exists()


def test_a_config_without_a_train_section_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   no_model_loading: None) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('lr = 1e-4\n[factory]\nmodel = "gpt-4o"\n')
    assert main(["train", "--run", str(tmp_path), "--config", str(cfg)]) == 2
    assert "has no [train] section" in capsys.readouterr().err
    assert main(["train", "--run", str(tmp_path), "--config", str(tmp_path / "missing.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_train_saves_resolved_settings_beside_other_stages_and_a_rerun_continues(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text('[factory]\nmodel = "gpt-4o-mini"\nn = 500\n')
    rng = random.Random(0)
    write_jsonl(run / "examples.jsonl", [
        Example(id=f"e{i}", instruction=f"질문 {i} " * rng.randint(1, 5), output=f"answer {i} " * rng.randint(1, 9))
        for i in range(30)
    ])
    cmd = ["train", "--run", str(run), "--model", str(tiny_model_dir), "--max-len", "64", "--token-budget", "128",
           "--max-steps-this-run", "1", "--lora.r", "2"]
    assert main(cmd) == 0
    assert "stopped at step 1/" in capsys.readouterr().out
    doc = tomllib.loads((run / "config.toml").read_text())
    assert doc["factory"] == {"model": "gpt-4o-mini", "n": 500}
    assert doc["train"]["max_len"] == 64 and doc["train"]["lora"]["r"] == 2
    saved = load_settings(run / "config.toml")
    assert saved == load_settings(None, {"model": str(tiny_model_dir), "max_len": 64, "token_budget": 128,
                                         "lora": {"r": 2}})
    assert main(cmd) == 0
    assert "stopped at step 2/" in capsys.readouterr().out
    # The saved settings are a valid --config for the same run.
    assert main(["train", "--run", str(run), "--config", str(run / "config.toml"), "--max-steps-this-run", "1"]) == 0
    assert "stopped at step 3/" in capsys.readouterr().out


def test_subcommands_are_wired(tmp_path: Path) -> None:
    help_text = build_parser().format_help()
    assert all(name in help_text for name in ("train", "merge", "answer", "tiny"))
    assert main(["tiny", "--out", str(tmp_path / "tiny")]) == 0
    assert (tmp_path / "tiny/config.json").is_file() and (tmp_path / "tiny/tokenizer.json").is_file()
    with pytest.raises(SystemExit) as e:  # only `train` takes free-form overrides
        main(["merge", "--run", str(tmp_path), "--lr", "1"])
    assert e.value.code == 2


def test_the_entry_point_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "trainer", "train", "--run", str(tmp_path), "--grad-accum", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: [train] grad_accum: Input should be greater than or equal to 1 (got 0)"
    ]


def test_settings_models_reject_unknown_fields_directly() -> None:
    with pytest.raises(ValueError):
        TrainSettings(lr=1e-4, learning_rate=1e-4)


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_a_run_with_no_examples_fails_before_any_model_loads(
    content: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_model_loading: None
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "examples.jsonl").write_text(content)
    # The default model is a hub id: were it loaded first, an offline machine would retry downloads for long.
    assert main(["train", "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "holds no examples: generate some first" in err


def test_lora_layers_take_ranges_and_lists() -> None:
    settings = load_settings(None, parse_overrides(["--lora.layers", "22-24,27"]))
    assert settings.lora.layers == [22, 23, 24, 27]
    assert load_settings(None, {"lora": {"layers": [3, 1]}}).lora.layers == [1, 3]
    assert load_settings(None).lora.layers is None
    with pytest.raises(SettingsError, match="layer numbers from 0 up"):
        load_settings(None, {"lora": {"layers": [-1]}})
