"""The engine against the simulator (a real HTTP server on 127.0.0.1): limits, headers, faults."""

from __future__ import annotations

import anyio
import httpx
import pytest
from engine_fakes import request, run

from factory.engine import Engine
from factory.errors import FatalAPIError
from factory.engine.ledger import Ledger
from factory.engine.settings import EngineSettings

simulator = pytest.importorskip("factory.simulator")


def _engine(url: str, ledger: Ledger, api_key: str = "sk-sim-test-00000000", **overrides) -> Engine:
    values = {"base_url": url, "max_concurrency": 16, "timeout_s": 5.0, "progress": False, **overrides}
    return Engine(EngineSettings(**values), ledger, api_key=api_key)


def _sim_stats(url: str) -> dict:
    return httpx.get(url.removesuffix("/v1") + "/sim/stats").json()


def test_requests_go_through_with_usage_and_cost(ledger):
    with simulator.run_simulator(simulator.SimConfig(seed=5, output_tokens=30)) as url:
        stats, results = run(_engine(url, ledger), [request(i, max_tokens=60) for i in range(30)])
        served = _sim_stats(url)
    assert stats.done == 30 and all(r.ok and r.content for r in results)
    assert stats.usage.input_tokens == served["tokens"]["prompt"]
    assert stats.usage.output_tokens == served["tokens"]["completion"]
    assert stats.cost_usd is not None and stats.cost_usd > 0


def test_the_servers_remaining_count_holds_the_engine_back(ledger):
    """Someone else has used up almost all of this minute's requests. The first answer's
    x-ratelimit-remaining-requests tells the engine, which then paces itself to the server's
    refill instead of bursting its own (full) bucket into 429s."""
    with simulator.run_simulator(simulator.SimConfig(seed=6, rpm=600, output_tokens=5)) as url:

        async def use_up_the_minute() -> None:
            async with httpx.AsyncClient() as other_client:
                for i in range(10_000):
                    r = await other_client.post(url + "/chat/completions", json={
                        "model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": f"other {i}"}]})
                    if int(r.headers["x-ratelimit-remaining-requests"]) <= 1:
                        return

        anyio.run(use_up_the_minute)
        # The first request goes alone (the probe); its answer's headers set the pace of the rest.
        stats, _ = run(_engine(url, ledger, rpm=600), [request(i, max_tokens=10) for i in range(20)])
    assert stats.done == 20
    assert stats.rate_limited <= 2  # trusting its own full bucket, it draws 5 or more


def test_injected_faults_are_ridden_out(ledger):
    config = simulator.SimConfig(seed=7, output_tokens=10, fault_rates={"500": 0.1, "503": 0.05, "drop": 0.05, "malformed": 0.05})
    reqs = [request(i, max_tokens=20) for i in range(40)]
    reqs.append(request("[[sim-fault:hang*1]] then answer", max_tokens=20))
    reqs.append(request("[[sim-fault:429*2]] then answer", max_tokens=20))
    with simulator.run_simulator(config) as url:
        engine = _engine(url, ledger, timeout_s=0.5, max_attempts=10)
        engine.retry.initial_s = 0.01
        stats, results = run(engine, reqs)
        faults = _sim_stats(url)["faults"]
    assert stats.done == len(reqs) and stats.failed == 0
    assert sum(faults.values()) >= 5 and stats.retries >= sum(faults.values())
    assert stats.rate_limited >= 2


def test_a_bad_key_costs_one_request(ledger):
    with simulator.run_simulator(simulator.SimConfig(api_key="sk-the-simulators-ke")) as url:
        with pytest.raises(FatalAPIError, match="401"):
            run(_engine(url, ledger, api_key="sk-not-the-key-1111111"), [request(i) for i in range(500)])
        assert _sim_stats(url)["by_status"] == {"401": 1}
    assert ledger.count_by_status()["done"] == 0
