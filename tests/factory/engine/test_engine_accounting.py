"""The engine under OpenAI's accounting, against the simulator counting the same way (its default:
prompt + max_tokens reserved at admission, nothing given back, limits enforced over 1 s windows)."""

from __future__ import annotations

import httpx
import pytest
from engine_fakes import request, run

from factory.engine import Engine
from factory.engine.ledger import Ledger
from factory.engine.settings import EngineSettings

simulator = pytest.importorskip("factory.simulator")


def _engine(url: str, ledger: Ledger, **overrides: object) -> Engine:
    values = {"base_url": url, "max_concurrency": 32, "timeout_s": 5.0, "progress": False, **overrides}
    return Engine(EngineSettings(**values), ledger, api_key="sk-sim-test-00000000")


def _sim_stats(url: str) -> dict:
    return httpx.get(url.removesuffix("/v1") + "/sim/stats").json()


# Answers of about 5 tokens against max_tokens 200: a limiter that refunded the difference would
# admit about fifteen times what the server does.
SHORT_ANSWERS = {"seed": 11, "tpm": 60_000, "output_tokens": 5, "output_spread": 0.0}


def test_short_answers_get_no_429s_in_reserve_accounting_with_limits_learned_from_headers(ledger):
    assert simulator.SimConfig().tpm_accounting == "reserve" and simulator.SimConfig().limit_quantum_s == 1.0
    with simulator.run_simulator(simulator.SimConfig(**SHORT_ANSWERS)) as url:
        stats, results = run(_engine(url, ledger), [request(i, max_tokens=200) for i in range(24)])
        served = _sim_stats(url)
    assert stats.done == 24 and all(r.ok for r in results)
    assert stats.rate_limited == 0 and served["rate_limited"] == 0
    assert stats.usage.output_tokens < 24 * 40  # the answers really were short of max_tokens


def test_a_refunding_client_collects_429s_from_a_reserving_server(ledger):
    """The same run with the engine set to count only the tokens used: what reserve accounting prevents."""
    with simulator.run_simulator(simulator.SimConfig(**SHORT_ANSWERS)) as url:
        stats, _ = run(_engine(url, ledger, tpm_accounting="actual", max_attempts=20),
                       [request(i, max_tokens=200) for i in range(24)])
        served = _sim_stats(url)
    assert stats.done == 24
    assert served["rate_limited"] > 0 and stats.rate_limited > 0


def test_a_server_that_counts_only_the_tokens_used_is_a_setting(ledger):
    config = simulator.SimConfig(**SHORT_ANSWERS, tpm_accounting="actual")
    with simulator.run_simulator(config) as url:
        stats, _ = run(_engine(url, ledger, tpm_accounting="actual"), [request(i, max_tokens=200) for i in range(24)])
        served = _sim_stats(url)
    assert stats.done == 24 and served["rate_limited"] == 0
    assert served["tokens"]["tpm_counted"] == served["tokens"]["total"]  # nothing of max_tokens kept


def test_no_burst_of_a_minutes_worth_at_start_or_after_a_pause(ledger):
    """The server enforces 600 RPM as 10 a second. The engine knows 600 RPM (given), starts, is
    paused by an injected 429 halfway, and resumes: a minute's worth sent at once at either moment
    would be refused by the 1 s window; none is."""
    config = simulator.SimConfig(seed=12, rpm=600, output_tokens=3, output_spread=0.0)
    requests = [request(i, max_tokens=10) for i in range(15)]
    requests.append(request("[[sim-fault:429*1]] pause everyone", max_tokens=10))
    requests += [request(i, max_tokens=10) for i in range(15, 30)]
    with simulator.run_simulator(config) as url:
        stats, results = run(_engine(url, ledger, rpm=600, max_concurrency=64), requests)
        served = _sim_stats(url)
    assert stats.done == 31 and all(r.ok for r in results)
    assert served["faults"] == {"429": 1}  # the pause happened
    assert served["rate_limited"] == 0  # and no burst hit the 1 s window, before or after it
