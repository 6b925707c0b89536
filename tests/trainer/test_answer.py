"""`python -m trainer answer` on tiny local models: batched generation with left padding equals
one-by-one generation, stops at end-of-turn without keeping the token, second turns see the whole
conversation, one answer per question, resume, adapters, and clear errors."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import torch

from schemas import Answer, Question, read_jsonl, write_jsonl
from trainer.answering import (
    END_OF_TURN,
    answer_questions,
    encode_conversation,
    generate_batch,
    load_for_answers,
    stop_token_ids,
    temperature_for,
)
from trainer.tiny import build_tiny

ROOT = Path(__file__).resolve().parents[2]


def evalset(n_per_lang: int = 4) -> list[Question]:
    """A few shipped questions of several categories (so several temperature groups), both languages."""
    out = []
    for lang in ("en", "ko"):
        qs = read_jsonl(ROOT / "evalsets" / f"{lang}.jsonl", Question)
        out += qs[::10][:n_per_lang]
    return out


def run_cli(*argv: str) -> int:
    from trainer.__main__ import main

    return main(["answer", *argv])


@pytest.fixture(scope="module")
def lively_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The default tiny model's near-uniform logits print the same token for every prompt; larger
    # initial weights make outputs depend on the prompt, so a padding mistake would show.
    return build_tiny(tmp_path_factory.mktemp("lively"), seed=1, initializer_range=0.5)


@pytest.fixture(scope="module")
def lively(lively_model_dir: Path):
    return load_for_answers(str(lively_model_dir), None, device="cpu", dtype="float32")


def test_batched_left_padded_generation_equals_one_by_one(lively) -> None:
    model, tok = lively
    prompts = [encode_conversation(tok, [{"role": "user", "content": q.turns[0]}]) for q in evalset(3)]
    assert len({len(p) for p in prompts}) > 1  # different lengths: the batch is padded
    stops = stop_token_ids(model, tok)
    batched = generate_batch(model, tok, prompts, max_new_tokens=10, temperature=0.0, stop_ids=stops)
    single = [generate_batch(model, tok, [p], max_new_tokens=10, temperature=0.0, stop_ids=stops)[0] for p in prompts]
    assert batched == single
    assert len({g.text for g in batched}) > 1  # the outputs depend on the prompt


class ForceEndOfTurn:
    """A logits processor that makes row r emit <end_of_turn> at generation step `at[r]` and never
    earlier (no other stop token either), like a model that finishes its answer there."""

    def __init__(self, prompt_width: int, at: list[int | None], stop_ids: list[int], eot: int) -> None:
        self.width, self.at, self.stop_ids, self.eot = prompt_width, at, stop_ids, eot

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.width
        scores = scores.clone()
        for row, k in enumerate(self.at):
            scores[row, self.stop_ids] = -float("inf")
            if k is not None and step == k:
                scores[row, :] = -float("inf")
                scores[row, self.eot] = 0.0
        return scores


def test_generation_stops_at_end_of_turn_and_the_token_is_not_in_the_text(lively) -> None:
    from transformers import LogitsProcessorList

    model, tok = lively
    prompts = [encode_conversation(tok, [{"role": "user", "content": t}]) for t in ("hello", "hi", "hey")]
    width = max(len(p) for p in prompts)
    stops = stop_token_ids(model, tok)
    eot = tok.convert_tokens_to_ids(END_OF_TURN)
    assert eot in stops and tok.eos_token_id in stops
    force = LogitsProcessorList([ForceEndOfTurn(width, [2, 5, None], stops, eot)])
    out = generate_batch(model, tok, prompts, max_new_tokens=7, temperature=0.0, stop_ids=stops, logits_processor=force)
    assert [g.tokens for g in out] == [2, 5, 7]
    assert [g.truncated for g in out] == [False, False, True]
    for g in out:
        assert END_OF_TURN not in g.text and "<eos>" not in g.text and "<pad>" not in g.text
    # The kept text is exactly the tokens before the stop: a longer budget does not change it.
    longer = generate_batch(model, tok, prompts[:2], max_new_tokens=12, temperature=0.0, stop_ids=stops,
                            logits_processor=LogitsProcessorList([ForceEndOfTurn(width, [2, 5], stops, eot)]))
    assert [g.text for g in longer] == [g.text for g in out[:2]]


def end_of_turn_model(base_dir: Path, out_dir: Path) -> tuple[Path, str]:
    """A tiny model wired to answer with one token X and then <end_of_turn>, from its own weights.

    Residual dimension 0 carries a sign: +1 in X's embedding, -1 in every other token's; no layer
    writes to it (row 0 of every o_proj/down_proj is zero), so after the final norm it still says
    whether the current token is X. The (untied) head reads only that dimension: after X, the
    <end_of_turn> logit is the only positive one; after anything else, X's is.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir)
    config = AutoConfig.from_pretrained(base_dir)
    config.tie_word_embeddings = False
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).float().eval()
    x_id = next(i for t, i in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
                if t.isalpha() and t.isascii() and len(t) >= 3)
    eot = tok.convert_tokens_to_ids(END_OF_TURN)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb[:, 0] = -1.0
        emb[x_id, 0] = 1.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0, :] = 0.0
            layer.mlp.down_proj.weight[0, :] = 0.0
        head = model.get_output_embeddings().weight
        head.zero_()
        head[eot, 0] = 1.0
        head[x_id, 0] = -1.0
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir, tok.decode([x_id]).strip()


def test_cli_stops_where_the_model_emits_end_of_turn(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir, x_text = end_of_turn_model(tiny_model_dir, tmp_path / "eot-model")
    questions = evalset(3)
    write_jsonl(tmp_path / "q.jsonl", questions)
    run = tmp_path / "run"
    assert run_cli("--run", str(run), "--questions", str(tmp_path / "q.jsonl"), "--model", str(model_dir),
                   "--max-new-tokens", "16", "--sampling", "greedy") == 0
    answers = read_jsonl(run / "eval" / "answers.jsonl", Answer)
    assert len(answers) == len(questions)
    for a in answers:
        assert a.turns == [x_text] * len(a.turns)  # X, then the stop: nothing after it, not the marker
        assert a.tokens == [1] * len(a.turns)
        assert a.model_extra["truncated"] == [False] * len(a.turns)


def test_cli_writes_one_answer_per_question_and_resumes(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    questions = evalset(4)
    qfile = tmp_path / "q.jsonl"
    write_jsonl(qfile, questions[:6])
    run = tmp_path / "run"
    argv = ["--run", str(run), "--questions", str(qfile), "--model", str(tiny_model_dir),
            "--max-new-tokens", "4", "--batch-size", "4"]
    assert run_cli(*argv) == 0
    out = run / "eval" / "answers.jsonl"
    answers = read_jsonl(out, Answer)
    assert sorted(a.question_id for a in answers) == sorted(q.question_id for q in questions[:6])
    turns = {q.question_id: len(q.turns) for q in questions}
    for a in answers:
        assert a.model == "base"
        assert len(a.turns) == len(a.tokens) == turns[a.question_id]
        assert all(0 <= t <= 4 for t in a.tokens)
        assert a.latency_s is not None and a.latency_s > 0
    by_id = {a.question_id: a for a in answers}
    cats = {q.question_id: q.category for q in questions}
    for qid, a in by_id.items():
        assert a.model_extra["temperature"] == temperature_for(cats[qid], "per-category")
    saved = tomllib.loads((run / "config.toml").read_text(encoding="utf-8"))["answer"]["base"]
    assert saved["max_new_tokens"] == 4 and saved["model"] == str(tiny_model_dir)

    before = out.read_bytes()
    assert run_cli(*argv) == 0  # rerun: nothing left to answer, the model is not even loaded
    assert out.read_bytes() == before
    assert "already answered" in capsys.readouterr().out

    write_jsonl(qfile, questions)  # two more questions
    assert run_cli(*argv) == 0
    answers = read_jsonl(out, Answer)
    assert len(answers) == len(questions)
    assert len({a.question_id for a in answers}) == len(questions)


def test_second_turn_is_generated_with_the_whole_conversation(lively) -> None:
    model, tok = lively
    seen: list[list[dict[str, str]]] = []

    class Spy:
        def __getattr__(self, name):
            return getattr(tok, name)

        def __call__(self, *a, **kw):
            return tok(*a, **kw)

        def apply_chat_template(self, messages, **kw):
            seen.append([dict(m) for m in messages])
            return tok.apply_chat_template(messages, **kw)

    q = next(q for q in evalset(4) if len(q.turns) == 2)
    got: list[Answer] = []
    answer_questions(model, Spy(), [q], label="m", max_new_tokens=6, batch_size=2, sampling="greedy",
                     on_answers=got.extend)
    (a,) = got
    assert seen[-1] == [{"role": "user", "content": q.turns[0]},
                        {"role": "assistant", "content": a.turns[0]},
                        {"role": "user", "content": q.turns[1]}]


def test_adapter_is_applied_and_labelled(lively_model_dir: Path, tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(lively_model_dir, dtype=torch.float32)
    torch.manual_seed(0)
    # init_lora_weights=False: random A and B, so the adapter changes the outputs.
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"],
                                                 init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"]

    plain, tok = load_for_answers(str(lively_model_dir), None, device="cpu", dtype="float32")
    adapted, _ = load_for_answers(str(lively_model_dir), tmp_path / "adapter", device="cpu", dtype="float32")
    ids = torch.tensor([encode_conversation(tok, [{"role": "user", "content": "hello"}])])
    with torch.no_grad():
        assert not torch.allclose(plain(ids).logits, adapted(ids).logits, atol=1e-4)

    write_jsonl(tmp_path / "q.jsonl", evalset(1))
    run = tmp_path / "run"
    # No --model: the base comes from the adapter's config. No --label: "lora".
    assert run_cli("--run", str(run), "--questions", str(tmp_path / "q.jsonl"), "--adapter", str(tmp_path / "adapter"),
                   "--max-new-tokens", "3") == 0
    assert {a.model for a in read_jsonl(run / "eval" / "answers.jsonl", Answer)} == {"lora"}


def test_per_category_temperatures_follow_mt_bench() -> None:
    assert temperature_for("writing", "per-category") == 0.7
    assert temperature_for("roleplay", "per-category") == 0.7
    for c in ("extraction", "math", "coding", "reasoning"):
        assert temperature_for(c, "per-category") == 0.0
    assert temperature_for("stem", "per-category") == temperature_for("humanities", "per-category") == 0.1
    assert temperature_for("anything-else", "per-category") == 0.7
    assert temperature_for("writing", "greedy") == 0.0


def test_config_file_values_are_overridden_by_flags(tiny_model_dir: Path, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "q.jsonl", evalset(1))
    (tmp_path / "answer.toml").write_text(
        f'[answer]\nmodel = "{tiny_model_dir}"\nmax_new_tokens = 2\nlabel = "from-file"\n', encoding="utf-8")
    run = tmp_path / "run"
    assert run_cli("--run", str(run), "--config", str(tmp_path / "answer.toml"), "--questions", str(tmp_path / "q.jsonl"),
                   "--label", "from-flag") == 0
    answers = read_jsonl(run / "eval" / "answers.jsonl", Answer)
    assert {a.model for a in answers} == {"from-flag"}
    assert all(t <= 2 for a in answers for t in a.tokens)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing-questions", "question file"),
        ("no-model", "no model to load"),
        ("not-an-adapter", "not a peft adapter folder"),
        ("bad-batch", "batch_size"),
        ("duplicate-ids", "appears twice"),
        ("missing-model-folder", "no model folder at"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path: Path, capsys, case: str, message: str) -> None:
    qfile = tmp_path / "q.jsonl"
    qs = evalset(1)
    write_jsonl(qfile, qs + qs[:1] if case == "duplicate-ids" else qs)
    argv = ["--run", str(tmp_path / "run"), "--questions", str(qfile), "--model", str(tmp_path / "nowhere")]
    if case == "missing-questions":
        argv[3] = str(tmp_path / "none.jsonl")
    elif case == "no-model":
        argv = argv[:4]
    elif case == "not-an-adapter":
        (tmp_path / "empty").mkdir()
        argv += ["--adapter", str(tmp_path / "empty")]
    elif case == "bad-batch":
        argv += ["--batch-size", "0"]
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.gpu
def test_on_cuda_the_cli_answers_every_question_in_bf16_and_stops_at_end_of_turn(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir, x_text = end_of_turn_model(tiny_model_dir, tmp_path / "eot-model")
    questions = evalset(4)
    write_jsonl(tmp_path / "q.jsonl", questions)
    run = tmp_path / "run"
    assert run_cli("--run", str(run), "--questions", str(tmp_path / "q.jsonl"), "--model", str(model_dir),
                   "--label", "eot", "--device", "cuda", "--max-new-tokens", "16") == 0
    assert run_cli("--run", str(run), "--questions", str(tmp_path / "q.jsonl"), "--model", str(tiny_model_dir),
                   "--device", "cuda", "--max-new-tokens", "8", "--batch-size", "3") == 0
    saved = tomllib.loads((run / "config.toml").read_text(encoding="utf-8"))["answer"]
    assert saved["base"]["device"] == "cuda" and saved["base"]["dtype"] == "auto"
    answers = read_jsonl(run / "eval" / "answers.jsonl", Answer)
    for label in ("eot", "base"):
        mine = [a for a in answers if a.model == label]
        assert sorted(a.question_id for a in mine) == sorted(q.question_id for q in questions)
    for a in answers:
        if a.model == "eot":
            assert a.turns == [x_text] * len(a.turns) and a.tokens == [1] * len(a.turns)
        else:
            assert all(t <= 8 for t in a.tokens)
    model, _ = load_for_answers(str(tiny_model_dir), None, device="cuda")
    assert next(model.parameters()).dtype == torch.bfloat16
