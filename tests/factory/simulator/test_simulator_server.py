"""The simulator over loopback HTTP, with the `openai` client and raw httpx."""

import concurrent.futures
import json
import re
import time

import httpx
import jsonschema
import openai
import pytest

from factory.simulator import FAULT_HEADER, MARKER, SIGNATURE, SimConfig, run_simulator

from sim_schemas import JUDGE, SELF_INSTRUCT

MODEL = "gpt-4o-mini"


def ask(text: str = "Write one short paragraph about rivers.", **extra):
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


def client(base_url: str, key: str = "sk-anything") -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=10)


def root(base_url: str) -> str:
    return base_url.removesuffix("/v1")


@pytest.fixture(scope="module")
def sim():
    with run_simulator(SimConfig(seed=7)) as base_url:
        yield base_url


def stats(base_url: str) -> dict:
    return httpx.get(root(base_url) + "/sim/stats").json()


# --- the answer ----------------------------------------------------------------------------


def test_answer_has_openai_shape_and_says_it_is_simulated(sim):
    assert sim.startswith("http://127.0.0.1:") and sim.endswith("/v1")
    r = client(sim).chat.completions.create(**ask())
    assert r.object == "chat.completion" and r.model == MODEL
    assert r.system_fingerprint == SIGNATURE
    choice = r.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    assert choice.message.content.startswith(MARKER)
    u = r.usage
    # message overhead + "Write|one|short|paragrap|h|about|rivers|." + reply priming
    assert u.prompt_tokens == 3 + 8 + 3
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert u.prompt_tokens_details.cached_tokens == 0
    assert u.completion_tokens_details.reasoning_tokens == 0


def test_max_tokens_truncates_with_finish_reason_length(sim):
    c = client(sim)
    r = c.chat.completions.create(**ask(), max_tokens=7)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 7
    r = c.chat.completions.create(**ask(), max_completion_tokens=5, n=3)
    assert len(r.choices) == 3 and r.usage.completion_tokens == 15


def test_output_length_follows_the_configured_mean():
    with run_simulator(SimConfig(seed=1, output_tokens=80, output_spread=0.2)) as base_url:
        c = client(base_url)
        lengths = [c.chat.completions.create(**ask(f"topic {i}")).usage.completion_tokens for i in range(30)]
    assert 60 <= sum(lengths) / len(lengths) <= 110
    assert len(set(lengths)) > 5


def test_korean_prompt_gets_a_korean_answer(sim):
    r = client(sim).chat.completions.create(**ask("한국의 전통 음식에 대해 자세히 설명해 주세요."))
    body = r.choices[0].message.content.removeprefix(MARKER)
    hangul = sum("\uac00" <= ch <= "\ud7a3" for ch in body)
    assert hangul > 0.5 * sum(ch.isalpha() for ch in body)


def test_reasoning_models_report_reasoning_tokens(sim):
    c = client(sim)
    r = c.chat.completions.create(**ask(model="o4-mini"))
    details = r.usage.completion_tokens_details
    assert details.reasoning_tokens > 0 and r.usage.completion_tokens > details.reasoning_tokens
    starved = c.chat.completions.create(**{**ask(), "model": "o4-mini"}, max_completion_tokens=3)
    assert starved.choices[0].message.content == "" and starved.choices[0].finish_reason == "length"


def test_repeated_long_prefix_reports_cached_tokens(sim):
    c = client(sim)
    system = "You are a careful grader. " + " ".join(f"rule{i} applies." for i in range(700))
    first = c.chat.completions.create(model=MODEL, messages=[{"role": "system", "content": system}, {"role": "user", "content": "first question"}])
    prompt = first.usage.prompt_tokens
    assert prompt > 1024 and first.usage.prompt_tokens_details.cached_tokens == 0
    again = c.chat.completions.create(model=MODEL, messages=[{"role": "system", "content": system}, {"role": "user", "content": "first question"}])
    cached = again.usage.prompt_tokens_details.cached_tokens
    assert cached == 1024 + (prompt - 1024) // 128 * 128
    other = c.chat.completions.create(model=MODEL, messages=[{"role": "system", "content": system}, {"role": "user", "content": "another, longer question"}])
    assert 1024 <= other.usage.prompt_tokens_details.cached_tokens <= prompt - 1
    assert other.usage.prompt_tokens_details.cached_tokens % 128 == 0


# --- structured outputs --------------------------------------------------------------------


@pytest.mark.parametrize("schema", [SELF_INSTRUCT, JUDGE], ids=["self-instruct", "judge"])
def test_json_schema_answers_validate(sim, schema):
    c = client(sim)
    fmt = {"type": "json_schema", "json_schema": {"name": "out", "schema": schema, "strict": True}}
    for i in range(10):
        r = c.chat.completions.create(**ask(f"request {i}"), response_format=fmt)
        jsonschema.validate(json.loads(r.choices[0].message.content), schema)
        assert r.usage.completion_tokens > 0


def test_json_object_mode(sim):
    c = client(sim)
    r = c.chat.completions.create(**ask("Answer in JSON."), response_format={"type": "json_object"})
    assert isinstance(json.loads(r.choices[0].message.content), dict)
    with pytest.raises(openai.BadRequestError, match="json"):
        c.chat.completions.create(**ask("No keyword here."), response_format={"type": "json_object"})


def test_bad_schema_is_a_400(sim):
    fmt = {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "widget"}}}
    with pytest.raises(openai.BadRequestError) as err:
        client(sim).chat.completions.create(**ask(), response_format=fmt)
    assert err.value.code == "invalid_json_schema"


@pytest.mark.parametrize("body, param", [
    (b"{not json", None),
    (json.dumps({"model": MODEL}).encode(), "messages"),
    (json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), "model"),
    (json.dumps({**ask(), "max_tokens": "ten"}).encode(), "max_tokens"),
    (json.dumps({**ask(), "stream": True}).encode(), "stream"),
    (json.dumps({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}).encode(), "messages[0].role"),
])
def test_invalid_requests_get_openai_400s(sim, body, param):
    r = httpx.post(sim + "/chat/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param and r.json()["error"]["type"] == "invalid_request_error"


# --- determinism ---------------------------------------------------------------------------


def parsed(r: httpx.Response) -> dict | None:
    """The JSON body, or None when it does not parse (the malformed fault)."""
    try:
        return r.json()
    except json.JSONDecodeError:
        return None


def run_sequence(seed: int, fault_rates: dict | None = None) -> list:
    out = []
    with run_simulator(SimConfig(seed=seed, fault_rates=fault_rates or {})) as base_url:
        with httpx.Client(timeout=10.0) as http:
            for i in range(25):
                body = ask(f"question {i % 5}", max_tokens=40)  # repeats: sampled answers differ
                try:
                    r = http.post(base_url + "/chat/completions", json=body)
                except httpx.TimeoutException:
                    out.append("timeout")
                    continue
                except httpx.TransportError:
                    out.append("dropped")
                    continue
                payload = parsed(r)
                if payload and r.status_code == 200:
                    payload.pop("created")
                # A malformed body is cut from a whole reply: its clock second is not part of the sequence.
                text = re.sub(r'"created":\s*\d+', '"created":0', r.text)
                out.append((r.status_code, payload if payload is not None else text))
    return out


def test_same_seed_same_answers_and_faults():
    rates = {"500": 0.1, "drop": 0.1, "malformed": 0.1, "length": 0.1}
    first = run_sequence(11, rates)
    assert first == run_sequence(11, rates)
    assert first != run_sequence(12, rates)
    kinds = {x if isinstance(x, str) else x[0] for x in first}
    assert kinds >= {200, 500, "dropped"}


def test_temperature_zero_or_seed_repeats_the_answer_else_it_varies(sim):
    c = client(sim)

    def content(**kw) -> str:
        return c.chat.completions.create(**ask("Describe a lighthouse."), max_tokens=30, **kw).choices[0].message.content

    assert content(temperature=0) == content(temperature=0)
    assert content(seed=42) == content(seed=42)
    assert content(temperature=0.7) != content(temperature=0.7)


# --- rate limits ---------------------------------------------------------------------------


def test_rpm_limit_gives_429_with_headers():
    with run_simulator(SimConfig(rpm=3, limit_quantum_s=0)) as base_url:
        remaining = []
        with httpx.Client() as http:
            for _ in range(3):
                r = http.post(base_url + "/chat/completions", json=ask(max_tokens=5))
                assert r.status_code == 200
                remaining.append(r.headers["x-ratelimit-remaining-requests"])
                assert r.headers["x-ratelimit-limit-requests"] == "3"
            assert remaining == ["2", "1", "0"]
            r = http.post(base_url + "/chat/completions", json=ask(max_tokens=5))
            assert r.status_code == 429
            error = r.json()["error"]
            assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
            assert 19 <= float(r.headers["retry-after-ms"]) / 1000 <= 20  # 3/min: one back every 20 s
            assert r.headers["retry-after"] == "20"
            assert r.headers["x-ratelimit-reset-requests"].endswith("s")
            # The openai client sees the same thing as its RateLimitError.
            with pytest.raises(openai.RateLimitError):
                client(base_url).chat.completions.create(**ask(max_tokens=5))
        assert stats(base_url)["rate_limited"] == 2


def test_tpm_counts_prompt_plus_max_tokens():
    with run_simulator(SimConfig(tpm=1000, limit_quantum_s=0)) as base_url, httpx.Client() as http:
        ok = http.post(base_url + "/chat/completions", json=ask(max_tokens=400))
        prompt = ok.json()["usage"]["prompt_tokens"]
        assert ok.headers["x-ratelimit-remaining-tokens"] == str(1000 - prompt - 400)
        assert http.post(base_url + "/chat/completions", json=ask(max_tokens=400)).status_code == 200
        r = http.post(base_url + "/chat/completions", json=ask(max_tokens=400))
        assert r.status_code == 429 and r.json()["error"]["type"] == "tokens"
        assert float(r.headers["retry-after-ms"]) > 0
        too_large = http.post(base_url + "/chat/completions", json=ask(max_tokens=5000))
        assert too_large.status_code == 429 and "Request too large" in too_large.json()["error"]["message"]
        assert "retry-after" not in too_large.headers


def test_actual_accounting_gives_back_unused_tokens():
    with run_simulator(SimConfig(tpm=10_000, tpm_accounting="actual", output_tokens=20, limit_quantum_s=0)) as base_url:
        r = httpx.post(base_url + "/chat/completions", json=ask(max_tokens=2000))
        used = r.json()["usage"]["total_tokens"]
        after = httpx.post(base_url + "/chat/completions", json=ask(max_tokens=1))
        prompt = after.json()["usage"]["prompt_tokens"]
        remaining = int(after.headers["x-ratelimit-remaining-tokens"])
        # 10,000/min refills ~167 tokens a second; in reserve mode the 2000 reserved would be gone.
        assert 10_000 - used - prompt - 1 <= remaining <= 10_000 - used - prompt - 1 + 200


# --- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_forced_server_errors(sim, status):
    r = httpx.post(sim + "/chat/completions", json=ask(), headers={FAULT_HEADER: str(status)})
    assert r.status_code == status and r.json()["error"]["type"] == "server_error"


def test_forced_429(sim):
    r = httpx.post(sim + "/chat/completions", json=ask(), headers={FAULT_HEADER: "429"})
    assert r.status_code == 429 and r.headers["retry-after"] == "1" and r.headers["retry-after-ms"] == "1000"


def test_drop_closes_without_an_answer(sim):
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(sim + "/chat/completions", json=ask(), headers={FAULT_HEADER: "drop"})
    with pytest.raises(openai.APIConnectionError):
        client(sim).chat.completions.create(**ask(), extra_headers={FAULT_HEADER: "drop"})


def test_hang_never_answers(sim):
    with pytest.raises(httpx.ReadTimeout):  # only the client's timeout ends the wait
        httpx.post(sim + "/chat/completions", json=ask(), headers={FAULT_HEADER: "hang"}, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        openai.OpenAI(base_url=sim, api_key="k", max_retries=0, timeout=0.3).chat.completions.create(
            **ask(), extra_headers={FAULT_HEADER: "hang"})


def test_malformed_body_is_a_200_that_does_not_parse(sim):
    r = httpx.post(sim + "/chat/completions", json=ask(), headers={FAULT_HEADER: "malformed"})
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.text)


def test_length_fault_cuts_the_answer(sim):
    full = httpx.post(sim + "/chat/completions", json=ask("same", temperature=0)).json()
    cut = httpx.post(sim + "/chat/completions", json=ask("same", temperature=0), headers={FAULT_HEADER: "length"}).json()
    assert cut["choices"][0]["finish_reason"] == "length"
    assert cut["usage"]["completion_tokens"] == max(1, full["usage"]["completion_tokens"] // 2)
    assert full["choices"][0]["message"]["content"].startswith(cut["choices"][0]["message"]["content"])


def test_trigger_in_message_with_a_repeat_count(sim):
    body = ask("Tell me about bridges. [[sim-fault:503*2]]")
    with httpx.Client() as http:
        codes = [http.post(sim + "/chat/completions", json=body).status_code for _ in range(3)]
    assert codes == [503, 503, 200]


def test_bad_fault_header_is_a_400(sim):
    r = httpx.post(sim + "/chat/completions", json=ask(), headers={FAULT_HEADER: "explode"})
    assert r.status_code == 400 and "unknown fault" in r.json()["error"]["message"]


def test_random_faults_follow_the_rates_and_are_counted():
    rates = {"500": 0.2, "malformed": 0.1, "length": 0.1}
    with run_simulator(SimConfig(seed=3, fault_rates=rates, output_tokens=20)) as base_url, httpx.Client() as http:
        seen = {"500": 0, "malformed": 0, "length": 0, "ok": 0}
        for i in range(300):
            r = http.post(base_url + "/chat/completions", json=ask(f"q{i}"))
            if r.status_code == 500:
                seen["500"] += 1
            elif parsed(r) is None:
                seen["malformed"] += 1
            elif r.json()["choices"][0]["finish_reason"] == "length":
                seen["length"] += 1
            else:
                seen["ok"] += 1
        counted = stats(base_url)["faults"]
    assert 35 <= seen["500"] <= 85 and 12 <= seen["malformed"] <= 50 and 12 <= seen["length"] <= 50
    assert counted == {k: v for k, v in seen.items() if k != "ok"}
    # `none` suppresses random faults for one request.
    with run_simulator(SimConfig(fault_rates={"500": 1.0})) as base_url:
        assert httpx.post(base_url + "/chat/completions", json=ask()).status_code == 500
        assert httpx.post(base_url + "/chat/completions", json=ask(), headers={FAULT_HEADER: "none"}).status_code == 200


def test_latency_sleeps_do_not_block_other_requests():
    def post(i: int) -> tuple[int, float]:
        code = httpx.post(base_url + "/chat/completions", json=ask(f"q{i}"), timeout=60).status_code
        return code, time.monotonic()

    with run_simulator(SimConfig(latency_base_s=0.3)) as base_url:
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            answered = list(pool.map(post, range(10)))
    assert [code for code, _ in answered] == [200] * 10
    # Served one after another, each answer would come at least 0.3 s after the one before, however
    # loaded the machine; answers served side by side come close together.
    done = sorted(t for _, t in answered)
    assert min(b - a for a, b in zip(done, done[1:])) < 0.3


# --- auth, models, endpoints ---------------------------------------------------------------


def test_api_key_mode():
    key = "sk-simulator-test-01"
    with run_simulator(SimConfig(api_key=key)) as base_url:
        assert client(base_url, key).chat.completions.create(**ask(max_tokens=3)).choices
        with pytest.raises(openai.AuthenticationError) as err:
            client(base_url, "sk-wrong-key-abcdefgh").chat.completions.create(**ask())
        assert err.value.code == "invalid_api_key" and "sk-wrong-key-abcdefgh" not in str(err.value.body)
        assert httpx.post(base_url + "/chat/completions", json=ask()).status_code == 401
        assert httpx.get(base_url + "/models").status_code == 401
        assert httpx.get(root(base_url) + "/health").status_code == 200  # open without a key


def test_model_allow_list():
    with run_simulator(SimConfig(models=("gpt-4o", "gpt-4o-mini"))) as base_url:
        c = client(base_url)
        assert [m.id for m in c.models.list()] == ["gpt-4o", "gpt-4o-mini"]
        with pytest.raises(openai.NotFoundError) as err:
            c.chat.completions.create(**{**ask(), "model": "gpt-9"})
        assert err.value.code == "model_not_found"
        assert c.models.retrieve("gpt-4o").id == "gpt-4o"
        with pytest.raises(openai.NotFoundError):
            c.models.retrieve("gpt-9")


def test_unknown_urls_and_methods(sim):
    assert httpx.get(sim + "/nothing").status_code == 404
    assert httpx.get(sim + "/chat/completions").status_code == 405
    assert httpx.get(root(sim) + "/health").json() == {"status": "ok", "simulator": SIGNATURE}


def test_stats_count_requests_and_tokens():
    with run_simulator(SimConfig()) as base_url, httpx.Client() as http:
        usage = [http.post(base_url + "/chat/completions", json=ask(f"q{i}", max_tokens=10)).json()["usage"] for i in range(4)]
        http.post(base_url + "/chat/completions", json=ask(), headers={FAULT_HEADER: "500"})
        s = stats(base_url)
    assert s["simulator"] == SIGNATURE
    assert s["by_status"] == {"200": 4, "500": 1} and s["chat_completions"] == 5
    assert s["faults"] == {"500": 1}
    assert s["tokens"]["completion"] == sum(u["completion_tokens"] for u in usage) == 40
    assert s["tokens"]["prompt"] == sum(u["prompt_tokens"] for u in usage)


def test_keep_alive_throughput_sanity():
    """Not a benchmark: one keep-alive connection, a few hundred answers; the rate is printed."""
    n = 400
    with run_simulator(SimConfig(output_tokens=50)) as base_url, httpx.Client() as http:
        started = time.perf_counter()
        codes = [http.post(base_url + "/chat/completions", json=ask(f"q{i}", max_tokens=50)).status_code for i in range(n)]
        elapsed = time.perf_counter() - started
        s = stats(base_url)
    print(f"\nsimulator keep-alive sanity: {n / elapsed:.0f} req/s (one httpx connection, same process)")
    assert codes == [200] * n
    assert s["connections"]["total"] <= 2  # the client's connection was reused, plus the stats call
