"""The tiny model folder, the `tiny` command, and loading models (local folders, hub errors, LoRA)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from trainer.commands.tiny import add_parser
from trainer.model import ALL_PROJECTIONS, ModelLoadError, add_lora, load_model, load_tokenizer
from trainer.tiny import SPECIAL_TOKENS, build_tiny

ROOT = Path(__file__).resolve().parents[2]


def test_the_folder_loads_with_the_auto_classes(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert type(model).__name__ == "GemmaForCausalLM"
    c = model.config
    assert (c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.head_dim) == (2, 4, 1, 16)
    assert c.vocab_size == len(tok)
    # Tied head, as Gemma: the LM head is the input embedding matrix.
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    assert [ids["<pad>"], ids["<eos>"], ids["<bos>"], ids["<unk>"]] == [0, 1, 2, 3]  # Gemma's ids
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<bos>", "<eos>", "<pad>")
    assert set(model.generation_config.eos_token_id) == {ids["<eos>"], ids["<end_of_turn>"]}


def test_the_chat_template_is_gemmas(tiny_tokenizer) -> None:
    text = tiny_tokenizer.apply_chat_template(
        [{"role": "user", "content": " Hi "}, {"role": "assistant", "content": "Hello"}], tokenize=False
    )
    assert text == "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
    with pytest.raises(Exception, match="System role not supported"):
        tiny_tokenizer.apply_chat_template([{"role": "system", "content": "x"}, {"role": "user", "content": "y"}])
    for marker in ("<start_of_turn>", "<end_of_turn>"):
        assert len(tiny_tokenizer(marker, add_special_tokens=False)["input_ids"]) == 1


@pytest.mark.parametrize("text", ["안녕하세요, 세계!", "naïve café ☃ 🤖 𝄞", "def f(x):\n\treturn x ** 2", "漢字とかな"])
def test_any_text_tokenizes_and_round_trips(tiny_tokenizer, text: str) -> None:
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tiny_tokenizer.unk_token_id not in ids
    assert tiny_tokenizer.decode(ids) == text


def test_the_seed_fixes_the_weights_and_shape_overrides_apply(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    a = load_file(build_tiny(tmp_path / "a", seed=5) / "model.safetensors")
    b = load_file(build_tiny(tmp_path / "b", seed=5) / "model.safetensors")
    c = load_file(build_tiny(tmp_path / "c", seed=6, num_hidden_layers=1) / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not any(k.startswith("model.layers.1.") for k in c)
    assert not torch.equal(a["model.embed_tokens.weight"], c["model.embed_tokens.weight"])
    config = json.loads((tmp_path / "c" / "config.json").read_text())
    assert config["num_hidden_layers"] == 1


def test_unknown_shape_fields_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown GemmaConfig field\(s\) \['hidden'\]"):
        build_tiny(tmp_path, hidden=32)
    with pytest.raises(ValueError, match="vocab_size comes from the tiny tokenizer"):
        build_tiny(tmp_path, vocab_size=10)


def _cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="trainer")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_the_tiny_command_builds_a_folder(tmp_path: Path, capsys) -> None:
    args = _cli(["tiny", "--out", str(tmp_path / "m"), "--layers", "1"])
    assert args.func(args) == 0
    assert (tmp_path / "m" / "config.json").is_file() and (tmp_path / "m" / "tokenizer.json").is_file()
    assert "wrote a tiny Gemma model" in capsys.readouterr().out


def test_the_tiny_command_refuses_a_file_as_out(tmp_path: Path, capsys) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")
    from trainer.__main__ import main

    assert main(["tiny", "--out", str(target)]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err


# -- loading ------------------------------------------------------------------------------------------
def test_load_model_and_tokenizer_from_a_local_folder(tiny_model_dir: Path) -> None:
    model = load_model(tiny_model_dir, device="cpu")
    assert next(model.parameters()).dtype == torch.float32 and not model.training  # fp32 on CPU
    bf16 = load_model(str(tiny_model_dir), device="cpu", dtype=torch.bfloat16)
    assert next(bf16.parameters()).dtype == torch.bfloat16
    assert load_tokenizer(tiny_model_dir).chat_template


def test_a_missing_local_path_or_a_non_model_folder_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no model folder at ./nowhere/model"):
        load_model("./nowhere/model", device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"not a model folder \(no config.json\)"):
        load_model(tmp_path / "empty", device="cpu")


_LOAD_SCRIPT = """
import sys
from trainer.model import ModelLoadError, load_model, load_tokenizer
loader = load_tokenizer if sys.argv[2] == "tokenizer" else load_model
try:
    loader(sys.argv[1])
except ModelLoadError as e:
    print(e)
    sys.exit(3)
"""


def _load_in_subprocess(name: str, what: str, env: dict[str, str]) -> str:
    """huggingface_hub reads HF_HUB_OFFLINE / HF_ENDPOINT at import, so each case is a fresh process."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT, name, what],
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_offline_hub_id_says_why_and_how_to_fix(tmp_path: Path) -> None:
    message = _load_in_subprocess(
        "google/gemma-2b-it", "model", {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    )
    assert "google/gemma-2b-it is not in the local Hugging Face cache" in message
    assert "HF_HUB_OFFLINE=1 is set" in message
    assert "HF_TOKEN" in message and "local model folder" in message


class _FakeHub(BaseHTTPRequestHandler):
    """Answers like huggingface.co does for a gated repo (gemma) and for an unknown one (anything else)."""

    def _refuse(self) -> None:
        if "gemma" in self.path:
            self.send_response(403)
            self.send_header("X-Error-Code", "GatedRepo")
            self.send_header("X-Error-Message", "Access to model google/gemma-2b-it is restricted.")
        else:
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("X-Error-Message", "Repository not found")
        body = b'{"error": "refused"}'
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = _refuse

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_gated_model_says_accept_the_licence_and_set_hf_token(fake_hub: str, tmp_path: Path) -> None:
    env = {"HF_ENDPOINT": fake_hub, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_ETAG_TIMEOUT": "5"}
    message = _load_in_subprocess("google/gemma-2b-it", "tokenizer", env)
    assert "google/gemma-2b-it is a gated model" in message
    assert "HF_TOKEN is not set" in message
    assert "accept its licence at https://huggingface.co/google/gemma-2b-it" in message
    unknown = _load_in_subprocess("nobody/no-such-model", "model", env)
    assert "nobody/no-such-model is neither a local folder nor a model on the Hugging Face hub" in unknown


def test_add_lora_trains_only_the_adapter_in_the_model_dtype(tiny_model_dir: Path) -> None:
    model = load_model(tiny_model_dir, device="cpu", dtype=torch.bfloat16)
    lora = SimpleNamespace(r=4, alpha=32.0, dropout=0.0, target_modules=list(ALL_PROJECTIONS))
    peft_model = add_lora(model, lora)
    trainable = {n: p for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert all(p.dtype == torch.bfloat16 for p in trainable.values())
    # Two matrices per adapted projection: 7 projections x 2 layers x (A, B).
    assert len(trainable) == 7 * 2 * 2
    config = peft_model.peft_config["default"]
    assert (config.r, config.lora_alpha, set(config.target_modules)) == (4, 32.0, set(ALL_PROJECTIONS))


def test_add_lora_explains_a_wrong_target_module(tiny_model) -> None:
    lora = SimpleNamespace(r=4, alpha=32.0, dropout=0.0, target_modules=["q_proj", "query"])
    with pytest.raises(ValueError, match=r"\['query'\] are not linear layers of GemmaForCausalLM"):
        add_lora(tiny_model, lora)


def test_add_lora_on_chosen_layers_only(tiny_model_dir: Path) -> None:
    lora = SimpleNamespace(r=4, alpha=32.0, dropout=0.0, target_modules=["q_proj", "v_proj"], layers=[1])
    peft_model = add_lora(load_model(tiny_model_dir, device="cpu"), lora)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert len(trainable) == 2 * 2 and all(".layers.1." in n for n in trainable)
    with pytest.raises(ValueError, match="reach past the model's 2 decoder layers"):
        add_lora(load_model(tiny_model_dir, device="cpu"), SimpleNamespace(**{**vars(lora), "layers": [2]}))
