"""The simulator's parts without a server: tokenizer, cache, limits, faults, schema JSON, text."""

import random

import jsonschema
import pytest

from factory.simulator import faults, schema_json, text
from factory.simulator.config import SimConfig, SimConfigError
from factory.simulator.limits import RateLimiter, format_reset
from factory.simulator.tokens import (
    CACHE_MIN_TOKENS,
    PrefixCache,
    count_tokens,
    prompt_pieces,
    tokenize,
    truncate_to_tokens,
)

from sim_schemas import JUDGE, SELF_INSTRUCT

KITCHEN_SINK = {
    "type": "object",
    "$defs": {
        "step": {
            "type": "object",
            "properties": {"title": {"type": "string", "maxLength": 40}, "minutes": {"type": "number", "exclusiveMinimum": 0, "maximum": 5}},
            "required": ["title", "minutes"],
            "additionalProperties": False,
        }
    },
    "properties": {
        "verdict": {"type": "string", "enum": ["A", "B", "tie"]},
        "version": {"const": 2},
        "ok": {"type": "boolean"},
        "maybe": {"type": ["string", "null"]},
        "even": {"type": "integer", "minimum": 3, "maximum": 21, "multipleOf": 2},
        "steps": {"type": "array", "items": {"$ref": "#/$defs/step"}, "minItems": 2, "maxItems": 2},
        "either": {"anyOf": [{"type": "integer", "exclusiveMaximum": 0}, {"type": "null"}]},
        "when": {"type": "string", "format": "date-time"},
        "id": {"type": "string", "format": "uuid"},
        "tags": {"type": "array", "items": {"type": "string", "minLength": 30}, "maxItems": 3},
        "nested": {"type": "object", "properties": {"deep": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}},
        "merged": {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                             {"properties": {"b": {"type": "integer"}}, "required": ["b"]}]},
    },
    "required": ["verdict", "version", "ok", "maybe", "even", "steps", "either", "when", "id", "tags", "nested", "merged"],
    "additionalProperties": False,
}


# --- tokenizer -----------------------------------------------------------------------------


def test_tokens_concatenate_back_to_the_text_and_truncate_exactly():
    sample = "Explain photosynthesis  to   students!\n\n한국어 문장도 셉니다. 12345 items?  "
    pieces = tokenize(sample)
    assert "".join(pieces) == sample
    assert count_tokens(sample) == len(pieces)
    for k in (1, 5, len(pieces) - 1):
        assert count_tokens(truncate_to_tokens(sample, k)) == k
    assert truncate_to_tokens(sample, 10_000) == sample


def test_token_rules():
    assert tokenize("instruction") == ["instruct", "ion"]
    assert tokenize(" 12345") == [" 123", "45"]
    assert tokenize("한국") == ["한", "국"]
    assert count_tokens("Hello, world.") == 4


def test_prompt_tokens_count_message_overhead_and_names():
    one = prompt_pieces([("user", "hi there", None)])
    assert len(one) == 3 + 2 + 3
    named = prompt_pieces([("user", "hi there", "bob")])
    assert len(named) == len(one) + 1
    # Same text under another role is another prefix.
    assert prompt_pieces([("system", "hi there", None)]) != one


# --- prompt cache --------------------------------------------------------------------------


def long_prompt(words: int, tail: str = "") -> list[str]:
    return prompt_pieces([("system", " ".join(f"w{i}" for i in range(words)), None), ("user", tail, None)])


def test_cache_counts_128_token_steps_from_1024_within_the_ttl():
    cache = PrefixCache(ttl_s=100)
    pieces = long_prompt(1500, "first")
    n = len(pieces)
    assert cache.lookup_and_store("m", pieces, now=0.0) == 0
    expected = CACHE_MIN_TOKENS + (n - CACHE_MIN_TOKENS) // 128 * 128
    assert cache.lookup_and_store("m", pieces, now=1.0) == expected
    # Shares the long system prefix, differs in the user message.
    other = long_prompt(1500, "second question here")
    assert 1024 <= cache.lookup_and_store("m", other, now=2.0) < len(other)
    assert cache.lookup_and_store("another-model", pieces, now=3.0) == 0
    assert cache.lookup_and_store("m", pieces, now=500.0) == 0  # expired
    assert cache.lookup_and_store("m", long_prompt(100), now=501.0) == 0  # short prompts never cache


def test_cache_stays_bounded():
    cache = PrefixCache(ttl_s=1000, max_entries=50)
    for i in range(40):
        cache.lookup_and_store("m", long_prompt(1200, f"q{i}") + [f"x{i}"] * 300, now=float(i))
    assert len(cache) <= 50


# --- rate limits ---------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_reset_format_matches_openai():
    assert format_reset(0) == "0s"
    assert format_reset(0.12) == "120ms"
    assert format_reset(1) == "1s"
    assert format_reset(6.5) == "6.5s"
    assert format_reset(360) == "6m0s"
    assert format_reset(3723) == "1h2m3s"


def test_rpm_bucket_refills_continuously():
    clock = Clock()
    limiter = RateLimiter(rpm=60, tpm=None, clock=clock)
    for _ in range(60):
        assert limiter.admit("m", 10) is None
    rejection = limiter.admit("m", 10)
    assert rejection is not None and rejection.kind == "requests"
    assert rejection.wait_s == pytest.approx(1.0)
    clock.t = 1.0  # 60/min = one request back per second
    assert limiter.admit("m", 10) is None
    assert limiter.admit("other-model", 10) is None  # limits are per model
    headers = dict(limiter.headers("m"))
    assert headers["x-ratelimit-limit-requests"] == "60"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "1m0s"
    assert "x-ratelimit-limit-tokens" not in headers


def test_tpm_counts_reservations_and_refunds_only_in_actual_mode():
    clock = Clock()
    reserve = RateLimiter(rpm=None, tpm=1000, clock=clock)
    assert reserve.admit("m", 600) is None
    rejection = reserve.admit("m", 600)
    assert rejection is not None and rejection.kind == "tokens" and rejection.used == 600
    assert rejection.wait_s == pytest.approx(200 / (1000 / 60))
    reserve.settle("m", reserved=600, used=100)
    assert reserve.admit("m", 600) is not None

    actual = RateLimiter(rpm=None, tpm=1000, refund_unused=True, clock=clock)
    assert actual.admit("m", 600) is None
    actual.settle("m", reserved=600, used=100)
    assert actual.admit("m", 600) is None
    assert dict(actual.headers("m"))["x-ratelimit-remaining-tokens"] == "300"  # 1000 - 600 + 500 - 600


def test_quantised_limits_refuse_a_minutes_worth_at_once():
    """600 RPM enforced over 1 s windows is 10 a second: the 11th request of a burst waits, though
    the minute (what the headers report) has room for 589 more."""
    clock = Clock()
    limiter = RateLimiter(rpm=600, tpm=None, clock=clock, quantum_s=1.0)
    for _ in range(10):
        assert limiter.admit("m", 10) is None
    rejection = limiter.admit("m", 10)
    assert rejection is not None and rejection.kind == "requests"
    assert rejection.wait_s == pytest.approx(0.1)
    assert dict(limiter.headers("m"))["x-ratelimit-remaining-requests"] == "590"
    clock.t = 0.5  # half a second refills 5
    assert [limiter.admit("m", 10) is None for _ in range(6)] == [True] * 5 + [False]


def test_a_request_over_the_short_window_passes_only_into_a_full_one():
    clock = Clock()
    limiter = RateLimiter(rpm=None, tpm=6000, clock=clock, quantum_s=1.0)  # 100 tokens a second
    assert limiter.admit("m", 300) is None  # a full window lets it through, into debt
    rejection = limiter.admit("m", 300)
    assert rejection is not None and rejection.wait_s == pytest.approx(3.0)  # -200 back up to 100
    clock.t = 3.0
    assert limiter.admit("m", 300) is None


def test_a_request_over_the_whole_limit_never_fits():
    limiter = RateLimiter(rpm=None, tpm=1000, clock=Clock())
    rejection = limiter.admit("m", 1001)
    assert rejection is not None and rejection.wait_s is None


# --- faults and config ---------------------------------------------------------------------


def test_fault_rates_parse_and_slice_the_unit_interval():
    rates = faults.parse_rates("500=0.25, drop=0.25,hang=0.5")
    assert rates == {"500": 0.25, "drop": 0.25, "hang": 0.5}
    assert [faults.draw(rates, u) for u in (0.1, 0.3, 0.9)] == ["500", "drop", "hang"]
    assert faults.draw({"500": 0.1}, 0.5) is None


@pytest.mark.parametrize("spec, needle", [
    ("boom=0.1", "unknown fault kind"),
    ("500=2", "between 0 and 1"),
    ("500=0.7,drop=0.7", "at most 1"),
    ("500", "KIND=RATE"),
    ("500=abc", "not a number"),
])
def test_bad_fault_rates_say_what_to_write(spec, needle):
    with pytest.raises(faults.FaultSpecError, match=needle):
        faults.parse_rates(spec)


def test_forced_fault_specs():
    assert faults.parse_forced("500") == faults.ForcedFault("500", None)
    twice = faults.parse_forced("HANG*2")
    assert [twice.applies(a) for a in range(3)] == [True, True, False]
    assert not faults.parse_forced("none").applies(0)
    assert faults.find_trigger("please [[sim-fault:drop*1]] thanks") == "drop*1"
    with pytest.raises(faults.FaultSpecError):
        faults.parse_forced("500*0")


@pytest.mark.parametrize("kwargs, needle", [
    ({"port": 70000}, "port"),
    ({"rpm": -1}, "rpm"),
    ({"output_tokens": 0}, "output_tokens"),
    ({"jitter_s": -1}, "jitter_s"),
    ({"fault_rates": {"500": 1.5}}, "between 0 and 1"),
    ({"api_key": "  "}, "api_key"),
])
def test_bad_config_fails_at_construction(kwargs, needle):
    with pytest.raises(SimConfigError, match=needle):
        SimConfig(**kwargs)


def test_config_repr_hides_the_api_key():
    assert "sk-secret" not in repr(SimConfig(api_key="sk-secret")) + SimConfig(api_key="sk-secret").summary()


# --- JSON from a schema --------------------------------------------------------------------


@pytest.mark.parametrize("schema", [SELF_INSTRUCT, JUDGE, KITCHEN_SINK], ids=["self-instruct", "judge", "kitchen-sink"])
@pytest.mark.parametrize("lang", ["en", "ko"])
def test_generated_json_validates(schema, lang):
    for seed in range(40):
        value = schema_json.generate(schema, random.Random(seed), lang)
        jsonschema.validate(value, schema)


def test_json_strings_are_marked_sentences_in_the_prompt_language():
    value = schema_json.generate(SELF_INSTRUCT, random.Random(3), "ko")
    task = value["tasks"][0]
    assert task["instruction"].startswith(text.MARKER)
    assert text.detect_language(task["output"]) == "ko"


def shingles(s: str) -> set[tuple[str, ...]]:
    words = s.split()
    return {tuple(words[i:i + 3]) for i in range(len(words) - 2)}


def test_generated_instructions_are_mostly_distinct_for_dedup():
    instructions = [t["instruction"] for seed in range(120) for t in schema_json.generate(SELF_INSTRUCT, random.Random(seed), "en")["tasks"]]
    assert len(set(instructions)) >= 0.99 * len(instructions)
    sample = [shingles(s) for s in instructions[:200]]
    near = sum(1 for i in range(len(sample)) for j in range(i) if len(sample[i] & sample[j]) / len(sample[i] | sample[j]) >= 0.7)
    pairs = len(sample) * (len(sample) - 1) // 2
    assert near / pairs < 0.01


@pytest.mark.parametrize("schema, needle", [
    ({"type": "widget"}, "unknown type"),
    ({"type": "integer", "minimum": 5, "maximum": 1}, "no value"),
    ({"$ref": "#/$defs/missing"}, "points nowhere"),
    ({"type": "object", "properties": {}, "required": ["x"], "additionalProperties": False}, "requires"),
    ({"type": "array", "minItems": 3, "maxItems": 1}, "maxItems"),
])
def test_unusable_schemas_raise_a_clear_error(schema, needle):
    with pytest.raises(schema_json.SchemaError, match=needle):
        schema_json.generate(schema, random.Random(0), "en")


# --- pseudo-text ---------------------------------------------------------------------------


def test_language_detection():
    assert text.detect_language("한국어로 된 질문입니다 please") == "ko"
    assert text.detect_language("An English prompt with one 단어") == "en"


def test_text_reaches_the_target_length_and_is_deterministic():
    t1 = text.text_of_tokens(random.Random(5), "en", 300)
    assert t1 == text.text_of_tokens(random.Random(5), "en", 300)
    assert t1 != text.text_of_tokens(random.Random(6), "en", 300)
    assert t1.startswith(text.MARKER)
    assert 300 <= count_tokens(t1) < 300 + 40


def test_korean_particles_follow_the_final_consonant():
    assert text._josa("학생", "은", "는") == "학생은"
    assert text._josa("아이", "은", "는") == "아이는"
