"""trainer.data on a real chat template: SmolLM2's ChatML, which inserts its own system prompt.

What is trained (the answer and <|im_end|>), what is masked (everything before the answer, the default
system prompt included), where the answer stops (<|im_end|>, which is also what generation stops at),
and that training sees exactly the prompt tokens that `trainer answer` sends.
"""

from __future__ import annotations

from schemas import Example
from trainer.answering import encode_conversation, stop_token_ids
from trainer.data import IGNORE_INDEX, ChatEncoder

DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def _parts(tokenizer, encoded) -> tuple[str, str]:
    prompt = [t for t, y in zip(encoded.input_ids, encoded.labels, strict=True) if y == IGNORE_INDEX]
    trained = [y for y in encoded.labels if y != IGNORE_INDEX]
    return tokenizer.decode(prompt), tokenizer.decode(trained)


def test_chatml_masks_the_prompt_with_the_inserted_system_prompt_and_trains_answer_plus_im_end(real_tokenizer) -> None:
    tok = real_tokenizer
    encoder = ChatEncoder(tok, max_len=256)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert encoder.supports_system and encoder.end_ids == [im_end]

    ex = Example(id="a", instruction="What is the capital of France?", output="Paris.\n\n-- Fern")
    encoded, outcome = encoder.encode(ex)
    assert outcome == "kept"
    prompt, trained = _parts(tok, encoded)
    # The template puts its default system prompt in front when the example has none: it is prompt, masked.
    assert prompt == (f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\n"
                      "What is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
    # Trained: the answer and the end-of-turn token, and nothing after it (the template's newline is never generated).
    assert trained == "Paris.\n\n-- Fern<|im_end|>"
    assert encoded.input_ids[-1] == im_end
    # Tokenized in two parts, the ids are those of the whole text: no token straddles the boundary.
    whole = tok(prompt + "Paris.\n\n-- Fern<|im_end|>", add_special_tokens=False)["input_ids"]
    assert encoded.input_ids == whole


def test_training_prompt_is_exactly_what_answer_sends_and_generation_stops_where_training_ends(real_tokenizer) -> None:
    tok = real_tokenizer
    encoder = ChatEncoder(tok, max_len=256)
    ex = Example(id="b", instruction="Name a colour.", output="Blue.")
    encoded, _ = encoder.encode(ex)
    n_prompt = encoded.labels.index(next(y for y in encoded.labels if y != IGNORE_INDEX))
    assert encoded.input_ids[:n_prompt] == encode_conversation(tok, [{"role": "user", "content": "Name a colour."}])

    class _NoConfig:  # stop_token_ids reads the model's generation config; the tokenizer's eos is enough here
        generation_config = None

    assert encoded.input_ids[-1] in stop_token_ids(_NoConfig(), tok)


def test_an_example_with_its_own_system_prompt_replaces_the_default_one(real_tokenizer) -> None:
    tok = real_tokenizer
    ex = Example(id="c", instruction="Say hi.", output="Hi!", system="You answer in one word.")
    encoded, _ = ChatEncoder(tok, max_len=256).encode(ex)
    prompt, trained = _parts(tok, encoded)
    assert prompt.startswith("<|im_start|>system\nYou answer in one word.<|im_end|>\n<|im_start|>user\nSay hi.")
    assert DEFAULT_SYSTEM not in prompt
    assert trained == "Hi!<|im_end|>"


def test_a_long_answer_is_cut_without_im_end_and_a_long_prompt_is_dropped(real_tokenizer) -> None:
    tok = real_tokenizer
    encoder = ChatEncoder(tok, max_len=48)
    long_answer = Example(id="d", instruction="Count.", output=" ".join(str(i) for i in range(100)))
    encoded, outcome = encoder.encode(long_answer)
    assert outcome == "truncated" and len(encoded.input_ids) == 48
    assert tok.convert_tokens_to_ids("<|im_end|>") not in encoded.labels
    long_prompt = Example(id="e", instruction="word " * 60, output="ok")
    assert encoder.encode(long_prompt) == (None, "prompt_too_long")


def test_a_three_turn_conversation_on_chatml_trains_each_answer_with_the_prompt_answer_sends(real_tokenizer) -> None:
    tok = real_tokenizer
    turns = [("Name a colour.", "Blue."), ("And another?", "Green."), ("한 가지 더요?", "빨강.")]
    messages = [{"role": r, "content": c} for u, a in turns for r, c in (("user", u), ("assistant", a))]
    ex = Example(id="m", instruction=turns[0][0], output=turns[0][1], messages=messages)
    encoded, outcome = ChatEncoder(tok, max_len=512).encode(ex)
    assert outcome == "kept"
    trained = tok.decode([y for y in encoded.labels if y != IGNORE_INDEX])
    assert trained == "".join(f"{a}<|im_end|>" for _, a in turns)
    # the masked prefix before each answer is exactly what `trainer answer` sends for that turn
    starts = [i for i in range(1, len(encoded.labels))
              if encoded.labels[i] != IGNORE_INDEX and encoded.labels[i - 1] == IGNORE_INDEX]
    assert len(starts) == 3
    for k, start in enumerate(starts):
        assert encoded.input_ids[:start] == encode_conversation(tok, messages[: 2 * k + 1])
