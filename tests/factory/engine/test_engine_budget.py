"""--max-cost is a hard budget: never exceeded, counting the worst case of what is in flight."""

from __future__ import annotations

import anyio
import pytest
from engine_fakes import FakeAPI, request, run

from factory.errors import PriceUnknownError
from factory.engine.retry import RetryPolicy
from factory.engine.tokens import estimate_input


def _worst_case_answers(api: FakeAPI, call):
    """Every answer uses all of max_tokens, and more input tokens than the engine's estimate
    could ever be below: actual cost = the worst case, so any over-commitment would show."""

    async def answer():
        await anyio.sleep(0.02)  # many requests in flight at once
        estimate = estimate_input(call.body["model"], call.body["messages"]).tokens
        return api.ok(call, prompt_tokens=estimate, completion_tokens=call.body["max_tokens"])

    return answer()


def test_the_budget_is_never_exceeded_under_concurrency(make_engine, ledger):
    fake = FakeAPI(_worst_case_answers)
    # $1 per 1k tokens: one request (~15 input + 100 output tokens) costs about $0.115.
    engine = make_engine(fake, max_concurrency=32, max_cost=2.0, price_input=1000.0, price_output=1000.0)
    engine.concurrency.open()
    stats, results = run(engine, [request(i, max_tokens=100) for i in range(500)])

    spent = ledger.spent_usd()
    assert spent <= 2.0
    assert stats.stopped_reason == "budget"
    assert spent > 2.0 - 0.2  # it did use the budget, up to about one request's worst case
    assert stats.done == len(fake.calls) == len(results)  # nothing sent that was not recorded


def test_a_rerun_counts_what_earlier_runs_of_the_stage_spent(make_engine, ledger):
    fake = FakeAPI(_worst_case_answers)
    overrides = dict(max_cost=1.0, price_input=1000.0, price_output=1000.0)
    first, _ = run(make_engine(fake, **overrides), [request(i, max_tokens=100) for i in range(100)])
    assert first.stopped_reason == "budget"
    sent = len(fake.calls)

    second, _ = run(make_engine(fake, **overrides), [request(i, max_tokens=100) for i in range(100)])
    assert second.stopped_reason == "budget" and len(fake.calls) == sent  # nothing more fits
    assert ledger.spent_usd() <= 1.0


def test_failed_but_billed_attempts_count_against_the_budget(make_engine, ledger):
    def billed_garbage(api: FakeAPI, call):
        import httpx

        return httpx.Response(200, json={"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 100}})

    fake = FakeAPI(billed_garbage)
    engine = make_engine(fake, max_cost=1.0, price_input=1000.0, price_output=1000.0)
    engine.retry = RetryPolicy(100, initial_s=0.001)
    stats, results = run(engine, [request(1, max_tokens=100)])
    assert stats.stopped_reason == "budget"
    # $0.15 billed per attempt; each needs its worst case (~$0.11) free first: 6 fit in $1.
    assert len(fake.calls) == 6
    assert results[0].call.status == "failed" and results[0].call.attempts == 6
    assert stats.cost_usd == pytest.approx(6 * 0.15) == ledger.spent_usd()


def test_a_budget_without_a_price_refuses_to_start(make_engine):
    with pytest.raises(PriceUnknownError, match=r"--price-input and --price-output"):
        make_engine(FakeAPI(), model="my-finetune", max_cost=5.0)


def test_a_budget_and_an_unpriced_model_in_the_requests_sends_nothing(make_engine):
    fake = FakeAPI()
    with pytest.raises(PriceUnknownError, match="my-finetune"):
        run(make_engine(fake, max_cost=5.0), [request(i, model="my-finetune") for i in range(10)])
    assert fake.calls == []


def test_explicit_prices_make_an_unknown_model_budgetable(make_engine):
    fake = FakeAPI()
    stats, results = run(make_engine(fake, max_cost=5.0, price_input=1.0, price_output=2.0),
                         [request(1, model="my-finetune")])
    assert results[0].ok
    assert results[0].call.cost_usd == pytest.approx((fake.prompt_tokens * 1.0 + fake.completion_tokens * 2.0) / 1e6)
