"""A tiny random Gemma-architecture model and tokenizer, built locally, for tests and the offline demo.

Nothing is downloaded: the tokenizer is a byte-level BPE trained in a few milliseconds on built-in
Korean and English sentences (byte-level, so any text tokenizes), wrapped with Gemma's special tokens
and Gemma's chat template (no system role, `<start_of_turn>user` / `<start_of_turn>model` turns, each
closed by `<end_of_turn>`). The model is `GemmaForCausalLM` with random weights and Gemma-2b's shape
in miniature: one KV head (multi-query attention), tied embeddings, sqrt(hidden) embedding scale.

    python -m trainer tiny --out runs/tiny-model   (trainer/commands/tiny.py)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Gemma's special tokens, in Gemma's id order for the first four (pad 0, eos 1, bos 2, unk 3).
SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]

# Gemma-2b-it's chat template, verbatim except for whitespace: no system role (it raises), roles must
# alternate, the assistant role is written `model`, contents are trimmed.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)

# The default shape: Gemma-2b's proportions in miniature (2b: hidden 2048, 18 layers, 8 heads, 1 KV head,
# head_dim 256, MLP 16384). Any GemmaConfig field can be overridden through `build_tiny(**shape)`.
DEFAULT_SHAPE: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "head_dim": 16,
    "max_position_embeddings": 4096,
}

_TOKENIZER_VOCAB = 1024

_KO_SENTENCES = [
    "안녕하세요, 만나서 반갑습니다.",
    "오늘 날씨가 정말 좋네요.",
    "저는 서울에 살고 있습니다.",
    "한국어를 공부하는 것은 재미있어요.",
    "이 문제를 어떻게 풀 수 있을까요?",
    "파이썬으로 간단한 프로그램을 작성해 보세요.",
    "김치찌개를 맛있게 끓이는 방법을 알려 주세요.",
    "기계 학습은 데이터에서 규칙을 배우는 방법입니다.",
    "대한민국의 수도는 서울입니다.",
    "책을 읽으면 생각이 깊어집니다.",
    "다음 문장을 영어로 번역하세요.",
    "건강을 위해 매일 운동을 합니다.",
    "커피 한 잔 하실래요?",
    "지하철을 타고 회사에 갑니다.",
    "주말에는 가족과 함께 시간을 보냅니다.",
    "이 글의 요점을 세 문장으로 요약해 주세요.",
    "한글은 세종대왕이 만들었습니다.",
    "물은 섭씨 백 도에서 끓습니다.",
    "좋은 질문입니다. 차근차근 설명해 드릴게요.",
    "첫째, 문제를 정확히 이해해야 합니다.",
    "둘째, 필요한 정보를 모읍니다.",
    "셋째, 답을 검토합니다.",
    "감사합니다. 좋은 하루 보내세요.",
    "인공지능 모델은 많은 문장을 보고 배웁니다.",
    "부산은 바다가 아름다운 도시입니다.",
    "제주도에는 한라산이 있습니다.",
    "시험 공부를 어떻게 하면 좋을까요?",
    "규칙적인 수면이 중요합니다.",
    "이 코드는 리스트를 정렬합니다.",
    "다음 수의 합을 구하세요: 3, 5, 7.",
]

_EN_SENTENCES = [
    "Hello, nice to meet you.",
    "The weather is lovely today.",
    "Write a short poem about the sea.",
    "Explain how a neural network learns.",
    "What is the capital of South Korea?",
    "Seoul is the capital of South Korea.",
    "Summarize the following paragraph in one sentence.",
    "Translate the sentence into Korean.",
    "Python is a popular programming language.",
    "Sort the list in ascending order.",
    "First, read the question carefully.",
    "Second, gather the facts you need.",
    "Finally, check your answer.",
    "Water boils at one hundred degrees Celsius.",
    "Give three tips for staying healthy.",
    "Eat vegetables, sleep well, and exercise every day.",
    "The quick brown fox jumps over the lazy dog.",
    "Machine learning finds patterns in data.",
    "A good answer is clear, correct and short.",
    "Thank you! Have a great day.",
    "def add(a, b):\n    return a + b",
    "for i in range(10):\n    print(i)",
    "The sum of 3, 5 and 7 is 15.",
    "Busan is a city by the sea.",
    "Please answer in a friendly tone.",
]


def training_corpus() -> list[str]:
    """A few hundred short lines: the sentences alone, in pairs, and as chat turns."""
    lines = list(_KO_SENTENCES) + list(_EN_SENTENCES)
    for i, ko in enumerate(_KO_SENTENCES):
        en = _EN_SENTENCES[i % len(_EN_SENTENCES)]
        lines.append(f"{ko} {en}")
        lines.append(f"<start_of_turn>user\n{ko}<end_of_turn>\n<start_of_turn>model\n{en}<end_of_turn>\n")
    for i, en in enumerate(_EN_SENTENCES):
        ko = _KO_SENTENCES[(3 * i) % len(_KO_SENTENCES)]
        lines.append(f"{en}\n\n{ko}")
        lines.append(f"<start_of_turn>user\n{en}<end_of_turn>\n<start_of_turn>model\n{ko}<end_of_turn>\n")
    return lines


def build_tokenizer(vocab_size: int = _TOKENIZER_VOCAB):
    """A byte-level BPE tokenizer with Gemma's special tokens and chat template (a PreTrainedTokenizerFast)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    # Byte-level: every string maps to bytes first, so no text is ever out of vocabulary.
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(training_corpus(), trainer)
    bos_id = core.token_to_id("<bos>")
    # Like Gemma's tokenizer: plain encoding (add_special_tokens=True) prepends <bos>.
    core.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", bos_id)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens=["<start_of_turn>", "<end_of_turn>"],
    )
    tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    return tokenizer


def build_tiny(out_dir: Path, *, seed: int = 0, **shape: Any) -> Path:
    """Write a tiny random Gemma model and its tokenizer to `out_dir`; return `out_dir`.

    `shape` overrides GemmaConfig fields (e.g. `num_hidden_layers=4`). The folder loads offline with
    `AutoModelForCausalLM.from_pretrained(out_dir)` and `AutoTokenizer.from_pretrained(out_dir)`.
    """
    import torch
    from transformers import GemmaConfig, GemmaForCausalLM, GenerationConfig

    out_dir = Path(out_dir)
    known = set(GemmaConfig().to_dict())
    unknown = sorted(set(shape) - known)
    if unknown:
        raise ValueError(f"unknown GemmaConfig field(s) {unknown}; use fields such as {sorted(DEFAULT_SHAPE)}")
    if "vocab_size" in shape:
        raise ValueError("vocab_size comes from the tiny tokenizer; do not set it")

    tokenizer = build_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = GemmaConfig(
        **{**DEFAULT_SHAPE, **shape},
        vocab_size=len(tokenizer),
        pad_token_id=ids["<pad>"],
        eos_token_id=ids["<eos>"],
        bos_token_id=ids["<bos>"],
        tie_word_embeddings=True,
        attention_dropout=0.0,
    )
    # fork_rng: building a tiny model must not disturb the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GemmaForCausalLM(config)
    # Gemma-it stops at either <eos> or <end_of_turn>.
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<bos>"],
        eos_token_id=[ids["<eos>"], ids["<end_of_turn>"]],
        pad_token_id=ids["<pad>"],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
