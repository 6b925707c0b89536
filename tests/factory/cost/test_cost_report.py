"""The cost report: figures checked against the ledger and the output files, computed independently."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from factory.__main__ import main as factory_main
from factory.engine.ledger import Ledger
from factory.engine.pricing import PriceTable
from factory.cost import build_cost, write_cost_report
from factory.engine.settings import EngineSettings
from schemas import RunFolder
from schemas import Example, LLMCall, Rejected, Usage, write_jsonl

PNG = b"\x89PNG\r\n\x1a\n"


def _call(key: str, stage: str, model: str, *, status: str = "done", attempts: int = 1, inp: int = 1000,
          cached: int = 0, out: int = 200, reasoning: int = 0, cost: float | None = 0.001,
          latency: float | None = 1.0, batch: bool = False) -> LLMCall:
    return LLMCall(key=key, stage=stage, model=model, status=status, attempts=attempts,
                   usage=Usage(input_tokens=inp, cached_input_tokens=cached, output_tokens=out, reasoning_tokens=reasoning),
                   cost_usd=cost, latency_s=latency, batch=batch)


def make_run(run: Path, *, kept: int = 40, reasons: dict[str, int] | None = None, max_cost: float | None = 5.0,
             text: str = "An answer.") -> list[LLMCall]:
    """A run folder as generate and a judge leave it: ledger, examples, rejections, config."""
    reasons = {"duplicate": 7, "length": 3, "parse": 2, "contamination": 1} if reasons is None else reasons
    prices = PriceTable.load()
    calls = []
    for i in range(24):
        usage = Usage(input_tokens=900 + 10 * i, cached_input_tokens=128 * (i % 3), output_tokens=300 + i)
        batch = i % 4 == 0
        calls.append(_call(
            f"gen{i}", "self-instruct", "gpt-4o-mini", status="failed" if i == 5 else "done",
            attempts=1 + i % 3, inp=usage.input_tokens, cached=usage.cached_input_tokens, out=usage.output_tokens,
            cost=prices.cost("gpt-4o-mini", usage, batch=batch), latency=0.2 + 0.1 * i, batch=batch))
    for i in range(6):
        usage = Usage(input_tokens=2000, output_tokens=400, reasoning_tokens=150)
        calls.append(_call(f"judge{i}", "judge", "o3", inp=2000, out=400, reasoning=150,
                           cost=prices.cost("o3", usage), latency=3.0 + i))
    with Ledger.for_run(run) as ledger:
        ledger.record(calls)
    write_jsonl(run / "examples.jsonl", [Example(id=f"e{i}", instruction=f"Task {i}", output=text) for i in range(kept)])
    rejected = [Rejected(id=f"{r}{k}", reason=r) for r, n in reasons.items() for k in range(n)]
    write_jsonl(run / "rejected.jsonl", rejected)
    RunFolder(run).write_config_section("engine", EngineSettings(model="gpt-4o-mini", max_cost=max_cost, base_url="https://api.openai.com/v1"))
    return calls


def _sql(run: Path, query: str) -> list[tuple]:
    with sqlite3.connect(run / "ledger.sqlite") as db:
        return db.execute(query).fetchall()


def test_spend_tokens_and_requests_match_the_ledger(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_run(run)
    cost = build_cost(run)

    (total,) = _sql(run, "SELECT SUM(cost_usd) FROM requests")[0]
    assert cost["totals"]["cost_usd"] == pytest.approx(total)
    by_stage = dict(_sql(run, "SELECT stage, SUM(cost_usd) FROM requests GROUP BY stage"))
    assert {r["stage"]: r["cost_usd"] for r in cost["by_stage"]} == pytest.approx(by_stage)
    tokens = _sql(run, "SELECT SUM(input_tokens), SUM(cached_input_tokens), SUM(output_tokens), "
                       "SUM(reasoning_tokens) FROM requests")[0]
    t = cost["totals"]
    assert (t["input_tokens"], t["cached_input_tokens"], t["output_tokens"], t["reasoning_tokens"]) == tokens
    assert t["reasoning_tokens"] == 6 * 150
    (retries,) = _sql(run, "SELECT SUM(attempts - 1) FROM requests")[0]
    assert t["retries"] == retries > 0
    assert t["failed"] == 1 and t["requests"] == 30
    latencies = [x for (x,) in _sql(run, "SELECT latency_s FROM requests WHERE status = 'done'")]
    assert t["latency_p50_s"] == pytest.approx(np.percentile(latencies, 50))
    assert t["latency_p95_s"] == pytest.approx(np.percentile(latencies, 95))
    (rate_limited,) = _sql(run, "SELECT SUM(rate_limited) FROM requests")[0]
    assert t["rate_limited"] == rate_limited and cost["rate_limited_recorded"] is True


def test_per_kept_example_counts_generation_spend_only(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_run(run, kept=40)
    cost = build_cost(run)
    (gen,) = _sql(run, "SELECT SUM(cost_usd) FROM requests WHERE stage = 'self-instruct'")[0]
    g = cost["generation"]
    assert g["cost_usd"] == pytest.approx(gen) and g["cost_usd"] < cost["totals"]["cost_usd"]
    assert g["usd_per_kept"] == pytest.approx(gen / 40)
    assert g["usd_per_1000_kept"] == pytest.approx(1000 * gen / 40)
    budget = cost["budget"]
    # generate's budget covers generate's stages only: the judge's spend in the same ledger is not in it
    assert budget["command"] == "generate" and budget["stages"] == ["self-instruct"]
    assert {k: budget[k] for k in ("max_cost_usd", "spent_usd", "used_share")} == pytest.approx(
        {"max_cost_usd": 5.0, "spent_usd": gen, "used_share": gen / 5.0})
    md = write_cost_report(run).cost_md.read_text()
    assert "Budget (--max-cost of generate, covering its stages: self-instruct)" in md


def test_funnel_counts_every_rejection_reason(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_run(run, kept=40, reasons={"duplicate": 7, "length": 3, "parse": 2, "contamination": 1, "language": 4})
    f = build_cost(run)["funnel"]
    assert f["rejected_by_reason"] == {"duplicate": 7, "language": 4, "length": 3, "parse": 2, "contamination": 1}
    assert f["generated"] == 40 + 17
    assert f["after_filters"] == 57 - (4 + 3 + 2)
    assert f["after_dedup"] == f["after_filters"] - (7 + 1) == f["kept"] == 40


def test_batch_savings_price_the_same_usage_online(tmp_path: Path) -> None:
    run = tmp_path / "run"
    calls = make_run(run)
    prices = PriceTable.load()
    batch = [c for c in calls if c.batch and c.status == "done"]
    actual = sum(c.cost_usd for c in batch)
    online = sum(prices.cost(c.model, c.usage) for c in batch)
    b = build_cost(run)["batch"]
    assert b["requests"] == len(batch) == 6
    assert b["actual_usd"] == pytest.approx(actual)
    assert b["online_usd"] == pytest.approx(online)
    assert b["saved_usd"] == pytest.approx(online - actual) and b["saved_usd"] > 0


def test_unknown_price_is_unknown_not_zero(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_run(run)
    with Ledger.for_run(run) as ledger:
        ledger.record([_call("local1", "self-instruct", "my-local-model", cost=None)])
    cost = build_cost(run)
    assert cost["totals"]["cost_usd"] is None and cost["totals"]["unpriced"] == 1
    assert cost["generation"]["usd_per_kept"] is None
    row = next(r for r in cost["by_model"] if r["model"] == "my-local-model")
    assert row["cost_usd"] is None
    md = write_cost_report(run).cost_md.read_text()
    assert "unknown" in md and "1 requests have no known price" in md


def test_a_ledger_that_counts_429s_is_reported(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_run(run)
    with sqlite3.connect(run / "ledger.sqlite") as db:
        db.execute("UPDATE requests SET rate_limited = 2 WHERE key IN ('gen1', 'gen2')")
    cost = build_cost(run)
    assert cost["rate_limited_recorded"] is True and cost["totals"]["rate_limited"] == 4


def test_time_waiting_for_the_limiter_is_shown_apart_from_the_latency(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_run(run)
    with sqlite3.connect(run / "ledger.sqlite") as db:  # a run whose pace the limits set: long waits
        db.execute("UPDATE requests SET wait_s = 40.0 + CAST(SUBSTR(key, 4) AS REAL) WHERE stage = 'self-instruct'")
    cost = build_cost(run)
    t = cost["totals"]
    waits = [x for (x,) in _sql(run, "SELECT wait_s FROM requests WHERE status = 'done'")]
    assert t["wait_p50_s"] == pytest.approx(np.percentile(waits, 50))
    assert t["wait_p95_s"] == pytest.approx(np.percentile(waits, 95))
    assert t["wait_total_s"] == pytest.approx(sum(40.0 + i for i in range(24)))
    assert t["wait_p50_s"] > 10 * t["latency_p50_s"]
    md = write_cost_report(run).cost_md.read_text()
    assert "waited p50" in md and "1,236 s in all" in md and "the limits set the pace" in md


def test_a_ledger_that_does_not_time_the_waits_says_so(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_run(run)
    with sqlite3.connect(run / "ledger.sqlite") as db:
        db.execute("ALTER TABLE requests DROP COLUMN wait_s")
    cost = build_cost(run)
    assert cost["totals"]["wait_p50_s"] is None and cost["totals"]["wait_total_s"] is None
    assert "on the server" not in write_cost_report(run).cost_md.read_text()


def test_attempts_in_flight_at_a_crash_are_shown_apart_as_possibly_billed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_run(run)
    with Ledger.for_run(run) as ledger:  # two attempts sent by a run that was killed before their answers
        ledger.open_attempt("a-killed-run", "gen30", "self-instruct", "gpt-4o-mini", 0.25)
        ledger.open_attempt("a-killed-run", "gen31", "self-instruct", "gpt-4o-mini", 0.5)
    cost = build_cost(run)
    assert cost["possibly_billed"] == {"attempts": 2, "worst_usd": 0.75}
    assert cost["totals"]["requests"] == 30  # not mixed into what the ledger recorded as paid
    md = write_cost_report(run).cost_md.read_text()
    assert "Possibly billed (in flight at a crash): 2 attempts, at most $0.75" in md


def test_files_charts_and_summary_merge(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_run(run)
    (run / "report").mkdir()
    (run / "report" / "summary.json").write_text(json.dumps({"scores": {"kept": "by the judge"}}))
    before = (run / "ledger.sqlite").read_bytes()
    out = write_cost_report(run)
    summary = json.loads(out.summary_json.read_text())
    assert summary["scores"] == {"kept": "by the judge"}  # another report's key survives
    assert summary["cost"]["totals"]["requests"] == 30
    assert [c.name for c in out.charts] == ["cost_spend.png", "cost_tokens.png", "cost_funnel.png"]
    assert all(c.read_bytes().startswith(PNG) for c in out.charts)
    md = out.cost_md.read_text()
    for expected in ("duplicate", "contamination", "per 1,000", "Budget", "Batch API", "latency p95", "429s"):
        assert expected in md
    assert (run / "ledger.sqlite").read_bytes() == before  # the report only reads


def test_simulated_texts_are_labelled(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_run(run, text="[simulated] an answer")
    out = write_cost_report(run)
    assert out.cost["source"]["simulated"] is True
    assert "simulator" in out.cost_md.read_text()


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    make_run(run)
    assert factory_main(["report", "--run", str(run)]) == 0
    assert "cost.md" in capsys.readouterr().out
    assert factory_main(["report", "--run", str(tmp_path / "missing")]) == 2
    assert "no run folder" in capsys.readouterr().err


def test_a_run_without_a_ledger_is_not_given_one(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_jsonl(run / "examples.jsonl", [Example(id="e1", instruction="x", output="y")])
    cost = build_cost(run)  # examples imported from elsewhere: no requests, nothing spent
    assert cost["totals"] is None and cost["funnel"]["kept"] == 1
    assert not (run / "ledger.sqlite").exists()


def test_broken_inputs_name_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    make_run(run)
    with (run / "rejected.jsonl").open("a") as f:
        f.write("{not json\n")
        f.write(json.dumps({"id": "x", "reason": "length"}) + "\n")
    assert factory_main(["report", "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert "rejected.jsonl:14" in err and "Traceback" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert factory_main(["report", "--run", str(empty)]) == 2
    assert "just generate" in capsys.readouterr().err


def test_the_report_names_the_price_tables_date_and_warns_when_it_is_old(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_run(run)
    shipped = PriceTable.load()
    cost = build_cost(run)
    assert cost["prices"]["as_of"] == shipped.as_of and cost["prices"]["age_days"] == shipped.age_days()
    assert cost["prices"]["warning"] == shipped.staleness_warning()
    md = write_cost_report(run).cost_md.read_text()
    assert f"Priced with factory/engine/prices.toml dated {shipped.as_of}" in md
    # the run's own --prices file: its date instead of ours
    own = tmp_path / "mine.toml"
    own.write_text('[meta]\nas_of = "2019-05-01"\n\n[models."gpt-4o-mini"]\ninput = 0.15\noutput = 0.6\n')
    RunFolder(run).write_config_section("engine", EngineSettings(model="gpt-4o-mini", prices_file=str(own)))
    md = write_cost_report(run).cost_md.read_text()
    assert f"Priced with {own} dated 2019-05-01" in md and "2019-05-01): prices may have changed" in md
