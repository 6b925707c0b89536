"""Chat-template formatting, loss masks, truncation and the eval split."""

from __future__ import annotations

import copy
import random

import pytest

from schemas import Example
from trainer.data import (
    IGNORE_INDEX,
    ChatEncoder,
    encode_example,
    encode_examples,
    load_examples,
    split_train_eval,
)

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def decode(tok, ids: list[int]) -> str:
    return tok.decode(ids, skip_special_tokens=False)


def supervised(ex) -> list[int]:
    return [y for y in ex.labels if y != IGNORE_INDEX]


def test_gemma_format_masks_the_prompt_and_trains_answer_plus_end_of_turn(tiny_tokenizer) -> None:
    ex = Example(id="1", instruction="오늘 날씨가 어때요?", output="  Sunny and warm.  ")
    enc = encode_example(ex, tiny_tokenizer, max_len=256)
    assert enc is not None and not enc.truncated and enc.example_id == "1"
    prompt = "<bos><start_of_turn>user\n오늘 날씨가 어때요?<end_of_turn>\n<start_of_turn>model\n"
    # The template trims the answer; the newline after <end_of_turn> is left out (never generated).
    assert decode(tiny_tokenizer, enc.input_ids) == prompt + "Sunny and warm.<end_of_turn>"
    n_prompt = enc.labels.index(next(y for y in enc.labels if y != IGNORE_INDEX))
    assert all(y == IGNORE_INDEX for y in enc.labels[:n_prompt])
    assert decode(tiny_tokenizer, enc.input_ids[:n_prompt]) == prompt
    # Every token after the prompt is trained, and labels equal the tokens there.
    assert enc.labels[n_prompt:] == enc.input_ids[n_prompt:]
    assert decode(tiny_tokenizer, supervised(enc)) == "Sunny and warm.<end_of_turn>"
    # The prompt ids are exactly what inference tokenizes: the template's generation prompt.
    generation_prompt = tiny_tokenizer.apply_chat_template(
        [{"role": "user", "content": "오늘 날씨가 어때요?"}], tokenize=False, add_generation_prompt=True
    )
    assert enc.input_ids[:n_prompt] == tiny_tokenizer(generation_prompt, add_special_tokens=False)["input_ids"]


def test_system_text_folds_into_the_first_user_turn_when_the_template_has_no_system_role(tiny_tokenizer) -> None:
    ex = Example(id="s", system="Answer in Korean.", instruction="Say hello.", input="to Minsu", output="안녕, 민수!")
    encoder = ChatEncoder(tiny_tokenizer, max_len=256)
    assert encoder.supports_system is False  # Gemma's template raises on a system message
    enc, outcome = encoder.encode(ex)
    assert outcome == "kept"
    text = decode(tiny_tokenizer, enc.input_ids)
    assert text.startswith("<bos><start_of_turn>user\nAnswer in Korean.\n\nSay hello.\n\nto Minsu<end_of_turn>\n")
    assert "system" not in text


def test_a_template_with_a_system_role_keeps_it_and_a_turn_without_special_end_gets_eos(tiny_tokenizer) -> None:
    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = CHATML  # <|im_end|> is plain text for this tokenizer, not a special token
    encoder = ChatEncoder(tok, max_len=256)
    assert encoder.supports_system is True
    enc, _ = encoder.encode(Example(id="c", system="Be brief.", instruction="Hi?", output="Hello."))
    text = decode(tok, enc.input_ids)
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi?")
    # No special token closes the turn, so eos is appended to teach stopping.
    assert enc.input_ids[-1] == tok.eos_token_id
    assert decode(tok, supervised(enc)).startswith("Hello.<|im_end|>")


def test_a_long_answer_is_cut_from_the_right_without_an_end_of_turn(tiny_tokenizer) -> None:
    long_answer = " ".join(["The quick brown fox jumps over the lazy dog."] * 20)
    ex = Example(id="long", instruction="Write a lot.", output=long_answer)
    full = encode_example(ex, tiny_tokenizer, max_len=4096)
    cut = encode_example(ex, tiny_tokenizer, max_len=40)
    assert cut is not None and cut.truncated and not full.truncated
    assert len(cut.input_ids) == 40
    assert cut.input_ids == full.input_ids[:40]  # the prefix of the untruncated example
    end_of_turn = tiny_tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert end_of_turn not in cut.input_ids[-5:]
    assert cut.labels[-1] == cut.input_ids[-1] != IGNORE_INDEX


def test_an_answer_that_fits_exactly_keeps_its_end_of_turn(tiny_tokenizer) -> None:
    ex = Example(id="e", instruction="Hi", output="Hello there.")
    full = encode_example(ex, tiny_tokenizer, max_len=4096)
    exact = encode_example(ex, tiny_tokenizer, max_len=len(full.input_ids))
    assert exact.input_ids == full.input_ids and not exact.truncated
    shorter = encode_example(ex, tiny_tokenizer, max_len=len(full.input_ids) - 1)
    assert shorter.truncated and shorter.input_ids == full.input_ids[:-1]


def test_a_prompt_that_leaves_no_room_for_the_answer_is_dropped_and_counted(tiny_tokenizer) -> None:
    long_prompt = Example(id="p", instruction=" ".join(["Explain this sentence."] * 30), output="OK.")
    fine = Example(id="f", instruction="Hi", output="Hello.")
    blank = Example(id="b", instruction="Hi", output="   ")
    long_answer = Example(id="l", instruction="Hi", output=" ".join(["Many words here."] * 30))
    assert encode_example(long_prompt, tiny_tokenizer, max_len=32) is None
    kept, stats = encode_examples([long_prompt, fine, blank, long_answer], tiny_tokenizer, max_len=32)
    assert [k.example_id for k in kept] == ["f", "l"]
    assert stats.as_dict() == {
        "total": 4,
        "kept": 2,
        "truncated": 1,
        "dropped_prompt_too_long": 1,
        "dropped_empty_answer": 1,
        "tokens": sum(len(k) for k in kept),
        "supervised_tokens": sum(k.num_supervised for k in kept),
    }


def test_a_tokenizer_without_chat_template_is_a_clear_error(tiny_tokenizer) -> None:
    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        ChatEncoder(tok, max_len=64)


def _examples(n: int) -> list[Example]:
    return [Example(id=f"ex-{i}", instruction=f"q{i}", output=f"a{i}") for i in range(n)]


def test_eval_split_is_deterministic_disjoint_and_sized() -> None:
    examples = _examples(200)
    train, evals = split_train_eval(examples, 0.1, seed=3)
    assert len(evals) == 20 and len(train) == 180
    assert {e.id for e in train}.isdisjoint({e.id for e in evals})
    assert {e.id for e in train} | {e.id for e in evals} == {e.id for e in examples}
    assert split_train_eval(examples, 0.1, seed=3) == (train, evals)
    # Order of the input does not matter, only the ids and the seed.
    shuffled = examples[:]
    random.Random(0).shuffle(shuffled)
    assert {e.id for e in split_train_eval(shuffled, 0.1, seed=3)[1]} == {e.id for e in evals}
    assert {e.id for e in split_train_eval(examples, 0.1, seed=4)[1]} != {e.id for e in evals}
    # Both sides keep the input order.
    assert [e.id for e in train] == [e.id for e in examples if e in train]


def test_eval_split_edges() -> None:
    assert split_train_eval(_examples(5), 0.0, seed=0) == (_examples(5), [])
    assert len(split_train_eval(_examples(5), 0.01, seed=0)[1]) == 1  # at least one when asked for any
    with pytest.raises(ValueError, match="nothing to train on"):
        split_train_eval(_examples(1), 0.5, seed=0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        split_train_eval(_examples(5), 1.0, seed=0)


def test_load_examples_reads_jsonl_and_explains_a_missing_file(tmp_path) -> None:
    from schemas import write_jsonl

    path = tmp_path / "examples.jsonl"
    write_jsonl(path, _examples(3))
    assert [e.id for e in load_examples(path)] == ["ex-0", "ex-1", "ex-2"]
    with pytest.raises(FileNotFoundError, match="no examples file"):
        load_examples(tmp_path / "missing.jsonl")


def test_load_examples_reads_chat_rows(tmp_path) -> None:
    """A file of chat rows (`python -m factory export --format messages`, TRL's conversational format):
    a first system message is the system text; the turns are instruction and output; ids by row."""
    import json

    path = tmp_path / "train.jsonl"
    rows = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
                          {"role": "assistant", "content": "Hello."}]},
            {"messages": [{"role": "user", "content": "Two?"}, {"role": "assistant", "content": "2."}], "id": "mine"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"messages": [{"role": "us')  # a torn tail
    got = load_examples(path)
    assert [(e.id, e.system, e.instruction, e.output) for e in got] == [
        ("row-1", "Be brief.", "Hi?", "Hello."), ("mine", "", "Two?", "2.")]
    empty = [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}]
    path.write_text(json.dumps({"messages": empty}) + "\n")
    with pytest.raises(ValueError, match="instruction"):  # an empty turn is no example (TrainError in train)
        load_examples(path)


THREE_TURNS = [("What is LoRA?", "A low-rank update."), ("Which rank?", "Often 8 or 16."),
               ("이유는요?", "작은 랭크로도 충분합니다.")]


def conversation(turns=THREE_TURNS, **kw) -> Example:
    messages = [{"role": r, "content": c} for u, a in turns for r, c in (("user", u), ("assistant", a))]
    return Example(id="chat", instruction=turns[0][0], output=turns[0][1], messages=messages, **kw)


def test_a_three_turn_conversation_trains_every_answer_and_masks_every_user_turn(tiny_tokenizer) -> None:
    enc, outcome = ChatEncoder(tiny_tokenizer, max_len=512).encode(conversation())
    assert outcome == "kept" and not enc.truncated
    text = decode(tiny_tokenizer, enc.input_ids)
    assert text == "<bos>" + "".join(f"<start_of_turn>user\n{u}<end_of_turn>\n<start_of_turn>model\n{a}<end_of_turn>\n"
                                     for u, a in THREE_TURNS).removesuffix("\n")
    # the labels: each answer and its end-of-turn marker, nothing else
    spans, current = [], []
    for token, label in zip(enc.input_ids, enc.labels, strict=True):
        if label == IGNORE_INDEX:
            if current:
                spans.append(current)
            current = []
        else:
            assert label == token
            current.append(token)
    spans.append(current)
    assert [decode(tiny_tokenizer, s) for s in spans] == [f"{a}<end_of_turn>" for _, a in THREE_TURNS]
    # each answer's prompt is exactly what inference tokenizes for that turn: the turns so far, then the model's turn
    for k in range(3):
        history = [{"role": r, "content": c} for u, a in THREE_TURNS[:k] for r, c in (("user", u), ("assistant", a))]
        prompt = tiny_tokenizer.apply_chat_template([*history, {"role": "user", "content": THREE_TURNS[k][0]}],
                                                    tokenize=False, add_generation_prompt=True)
        assert text.startswith(prompt) and text[len(prompt):].startswith(THREE_TURNS[k][1])


def test_a_long_conversation_is_cut_from_the_right_and_a_single_turn_reads_as_before(tiny_tokenizer) -> None:
    full, _ = ChatEncoder(tiny_tokenizer, max_len=512).encode(conversation())
    cut, outcome = ChatEncoder(tiny_tokenizer, max_len=len(full) - 5).encode(conversation())
    assert outcome == "truncated" and cut.input_ids == full.input_ids[: len(full) - 5]
    assert cut.labels == full.labels[: len(full) - 5]
    first = full.labels.index(next(y for y in full.labels if y != IGNORE_INDEX))
    assert ChatEncoder(tiny_tokenizer, max_len=first).encode(conversation()) == (None, "prompt_too_long")
    one = conversation(THREE_TURNS[:1])  # a conversation of one turn is the single-turn example
    plain = Example(id="chat", instruction=THREE_TURNS[0][0], output=THREE_TURNS[0][1])
    assert ChatEncoder(tiny_tokenizer, 512).encode(one) == ChatEncoder(tiny_tokenizer, 512).encode(plain)


def test_a_conversation_with_a_system_text_and_a_template_without_special_ends(tiny_tokenizer) -> None:
    tok = copy.deepcopy(tiny_tokenizer)
    tok.chat_template = CHATML  # <|im_end|> is plain text here: trained as the marker, eos only at the end
    enc, _ = ChatEncoder(tok, max_len=512).encode(conversation(system="Be brief."))
    text = decode(tok, enc.input_ids)
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is LoRA?")
    assert enc.input_ids[-1] == tok.eos_token_id and text.count("<|im_start|>assistant") == 3
    assert decode(tok, [y for y in enc.labels if y != IGNORE_INDEX]).count("<|im_end|>") == 3


def test_messages_must_be_a_conversation_that_starts_with_the_example() -> None:
    with pytest.raises(ValueError, match="alternate"):
        Example(id="x", instruction="a", output="b", messages=[{"role": "user", "content": "a"},
                                                                 {"role": "user", "content": "b"}])
    with pytest.raises(ValueError, match="first two messages"):
        Example(id="x", instruction="a", output="b", messages=[{"role": "user", "content": "other"},
                                                                 {"role": "assistant", "content": "b"}])
    assert "messages" not in Example(id="y", instruction="a", output="b").model_dump_json()


def test_load_examples_reads_multi_turn_chat_rows(tmp_path) -> None:
    import json

    path = tmp_path / "train.jsonl"
    turns = [{"role": r, "content": c} for u, a in THREE_TURNS for r, c in (("user", u), ("assistant", a))]
    path.write_text(json.dumps({"messages": [{"role": "system", "content": "Be brief."}, *turns]}) + "\n")
    (ex,) = load_examples(path)
    assert ex.system == "Be brief." and ex.instruction == "What is LoRA?" and len(ex.messages) == 6
