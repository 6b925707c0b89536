"""The engine's contract: every request answered once, recorded before it is delivered, resumable."""

from __future__ import annotations

import anyio
import pytest
from engine_fakes import MODEL, FakeAPI, request, run

from factory.engine import ChatRequest, ChatResult
from factory.errors import RequestError


def test_every_request_is_answered_recorded_and_delivered_once(make_engine, ledger):
    fake = FakeAPI(prompt_tokens=20, completion_tokens=10)
    engine = make_engine(fake)
    stats, results = run(engine, [request(i) for i in range(40)], total=40)

    assert stats.done == 40 and stats.failed == 0 and stats.cached == 0
    assert sorted(r.request.meta["i"] for r in results) == list(range(40))
    assert all(r.ok and not r.cached and r.content == f"answer to question {r.request.meta['i']}" for r in results)
    assert fake.prompts_sent() == {f"question {i}": 1 for i in range(40)}
    assert ledger.count_by_status() == {"pending": 0, "done": 40, "failed": 0}
    assert stats.usage.input_tokens == 40 * 20 and stats.usage.output_tokens == 40 * 10
    # gpt-4o-mini: $0.15 / $0.60 per 1M tokens
    assert stats.cost_usd == pytest.approx(40 * (20 * 0.15 + 10 * 0.60) / 1e6)
    assert ledger.spent_usd() == pytest.approx(stats.cost_usd)


def test_the_wire_body_carries_the_messages_and_every_parameter(make_engine):
    fake = FakeAPI()
    schema = {"type": "json_schema", "json_schema": {"name": "qa", "schema": {"type": "object"}}}
    req = ChatRequest("test", MODEL, [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
                      {"max_tokens": 64, "temperature": 0.7, "seed": 3, "response_format": schema, "custom_knob": 1})
    run(make_engine(fake), [req])
    body = fake.calls[0].body
    assert body == {"model": MODEL, "messages": req.messages, "max_tokens": 64, "temperature": 0.7, "seed": 3,
                    "response_format": schema, "custom_knob": 1}


def test_a_rerun_sends_nothing_done_and_gives_it_back_as_cached(make_engine, ledger):
    fake = FakeAPI()
    run(make_engine(fake), [request(i) for i in range(10)])
    assert len(fake.calls) == 10

    stats, results = run(make_engine(fake), [request(i) for i in range(15)])
    assert len(fake.calls) == 15  # only the 5 new ones were sent
    assert stats.cached == 10 and stats.done == 5
    cached = [r for r in results if r.cached]
    assert sorted(r.request.meta["i"] for r in cached) == list(range(10))
    assert all(r.content == f"answer to question {r.request.meta['i']}" for r in cached)
    assert stats.usage.input_tokens == 5 * fake.prompt_tokens  # cached answers cost nothing now
    assert ledger.count_by_status()["done"] == 15


def test_the_same_request_twice_in_a_run_is_sent_once(make_engine):
    fake = FakeAPI()
    stats, results = run(make_engine(fake), [request(1), request(2), request(1)])
    assert len(fake.calls) == 2 and stats.duplicates == 1 and len(results) == 2


def test_requests_are_pulled_lazily_so_a_caller_can_stop_when_it_has_enough(make_engine):
    async def slow(api: FakeAPI, call):
        await anyio.sleep(0.01)
        return api.ok(call)

    fake = FakeAPI(slow)
    engine = make_engine(fake, max_concurrency=4)
    kept: list[ChatResult] = []
    pulled = 0

    async def produce():
        nonlocal pulled
        i = 0
        while len(kept) < 10:  # "--n 10 kept examples"
            pulled += 1
            yield request(i)
            i += 1

    async def on_result(result: ChatResult) -> None:  # an async callback works too
        kept.append(result)

    stats = anyio.run(engine.run, produce(), on_result)
    assert len(kept) >= 10
    assert pulled <= 10 + 4 + 1  # at most one concurrency window beyond what was needed
    assert stats.done == len(kept) == len(fake.calls)


def test_results_can_feed_the_next_stage_of_the_same_run(make_engine):
    """Questions first; each answer request is made from a question's result."""
    fake = FakeAPI()
    engine = make_engine(fake)
    send, receive = anyio.create_memory_object_stream[ChatRequest](100)
    answers: list[ChatResult] = []
    questions_left = 5

    async def produce():
        for i in range(5):
            yield request(i, stage="questions")
        async with receive:
            async for follow_up in receive:
                yield follow_up

    async def on_result(result: ChatResult) -> None:
        nonlocal questions_left
        if result.request.stage == "questions":
            await send.send(ChatRequest("answers", MODEL, [{"role": "user", "content": result.content}], {"max_tokens": 9}))
            questions_left -= 1
            if questions_left == 0:
                await send.aclose()
        else:
            answers.append(result)

    stats = anyio.run(engine.run, produce(), on_result)
    assert stats.done == 10 and len(answers) == 5
    assert sorted(a.request.messages[0]["content"] for a in answers) == [f"answer to question {i}" for i in range(5)]


def test_a_request_refused_as_bad_fails_alone_and_is_retried_on_the_next_run(make_engine, ledger):
    def refuse_one(api: FakeAPI, call):
        if call.prompt == "question 3" and call.attempt == 0:
            return api.error(400, "This model's maximum context length is 128000 tokens.", code="context_length_exceeded")
        return api.ok(call)

    fake = FakeAPI(refuse_one)
    stats, results = run(make_engine(fake), [request(i) for i in range(6)])
    assert stats.done == 5 and stats.failed == 1
    failed = next(r for r in results if not r.ok)
    assert failed.call.status == "failed" and "context_length_exceeded" in failed.call.error
    assert failed.call.attempts == 1  # a 400 is not retried
    assert ledger.count_by_status() == {"pending": 0, "done": 5, "failed": 1}

    stats, _ = run(make_engine(fake), [request(i) for i in range(6)])
    assert stats.cached == 5 and stats.done == 1
    assert ledger.get(failed.request.key).attempts == 2  # attempts add up across runs


def test_an_unpriced_model_costs_unknown_never_zero(make_engine, ledger):
    fake = FakeAPI()
    stats, results = run(make_engine(fake), [request(1, model="my-finetune")])
    assert results[0].ok and results[0].call.cost_usd is None
    assert stats.cost_usd is None
    totals = ledger.totals_by_stage_model()
    assert totals[0].cost_usd is None and totals[0].unpriced == 1


def test_cached_input_and_reasoning_tokens_are_priced_as_the_api_bills_them(make_engine):
    fake = FakeAPI(lambda api, call: api.ok(call, prompt_tokens=1000, cached_tokens=800,
                                            completion_tokens=300, reasoning_tokens=200))
    _, results = run(make_engine(fake), [request(1, model="o4-mini")])
    call = results[0].call
    assert call.usage.cached_input_tokens == 800 and call.usage.reasoning_tokens == 200
    # o4-mini: input 1.10, cached 0.275, output 4.40; reasoning tokens are inside the 300 output.
    assert call.cost_usd == pytest.approx((200 * 1.10 + 800 * 0.275 + 300 * 4.40) / 1e6)


def test_finish_reason_and_latency_are_recorded(make_engine, ledger):
    fake = FakeAPI(lambda api, call: api.ok(call, finish_reason="length"))
    _, results = run(make_engine(fake), [request(1)])
    stored = ledger.get(results[0].request.key)
    assert stored.finish_reason == "length" and stored.latency_s is not None and stored.latency_s >= 0


@pytest.mark.parametrize(
    ("messages", "params", "complaint"),
    [
        ([{"role": "user", "content": "x"}], {}, "max_tokens"),
        ([{"role": "user", "content": "x"}], {"max_tokens": 0}, "max_tokens"),
        ([], {"max_tokens": 5}, "messages"),
        ([{"content": "no role"}], {"max_tokens": 5}, "messages"),
        ([{"role": "user", "content": "x"}], {"max_tokens": 5, "n": 3}, "n > 1"),
        ([{"role": "user", "content": "x"}], {"max_tokens": 5, "stream": True}, "stream"),
        ([{"role": "user", "content": object()}], {"max_tokens": 5}, "JSON"),
    ],
)
def test_a_request_that_cannot_be_sent_is_refused_when_made(messages, params, complaint):
    with pytest.raises(RequestError, match=complaint):
        ChatRequest("test", MODEL, messages, params)


def test_the_key_hashes_model_messages_and_params_but_not_meta():
    base = ChatRequest("a", MODEL, [{"role": "user", "content": "x"}], {"max_tokens": 5, "temperature": 0})
    assert base.key == ChatRequest("other-stage", MODEL, [{"role": "user", "content": "x"}],
                                   {"temperature": 0, "max_tokens": 5}, meta={"id": 7}).key
    assert base.key != ChatRequest("a", MODEL, [{"role": "user", "content": "x"}], {"max_tokens": 5, "temperature": 0, "seed": 1}).key
    assert base.key != ChatRequest("a", "gpt-4o", [{"role": "user", "content": "x"}], {"max_tokens": 5, "temperature": 0}).key
    assert len(base.key) == 64


def test_an_error_in_on_result_surfaces_as_itself_after_the_result_was_recorded(make_engine, ledger):
    def on_result(result: ChatResult) -> None:
        raise ValueError("the caller's bug")

    engine = make_engine(FakeAPI())
    with pytest.raises(ValueError, match="the caller's bug"):
        anyio.run(engine.run, [request(1)], on_result)
    assert ledger.count_by_status()["done"] == 1  # recorded before the caller saw it: a rerun gets it back
