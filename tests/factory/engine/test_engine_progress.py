"""The progress line: what it shows, and how it is written to a terminal or a log."""

from __future__ import annotations

import io

import anyio
import pytest

from engine_fakes import FakeAPI, request, run

from factory.engine.progress import Goal, ProgressLine, RateMeter, Snapshot, format_line


def snapshot(**overrides) -> Snapshot:
    values = dict(done=900, failed=10, cached=90, total=2000, elapsed_s=120.0, req_per_min=500.0,
                  tok_per_min=148_000.0, rpm_limit=600.0, tpm_limit=150_000.0, spent_usd=0.5, rate_limited=3,
                  retries=7, in_flight=12, concurrency=32)
    values.update(overrides)
    return Snapshot(**values)


def test_the_line_shows_progress_rates_against_limits_money_and_eta():
    line = format_line(snapshot())
    assert "1000/2000 done (10 failed, 90 cached)" in line
    assert "500 req/min of 600" in line and "148k tok/min of 150k" in line
    # $0.50 for 910 paid requests, 1000 still to go
    assert "$0.50 spent, ~$1.05 projected" in line
    assert "429s 3" in line and "retries 7" in line and "in flight 12/32" in line
    assert "ETA 2m00s" in line


def test_unknown_prices_and_totals_are_said_not_guessed():
    line = format_line(snapshot(spent_usd=None, total=None, rpm_limit=None))
    assert "$ unknown" in line and "ETA" not in line and "projected" not in line
    assert "1000 done" in line and "req/min of" not in line


def test_a_terminal_gets_one_line_rewritten_a_log_gets_plain_lines():
    tty = io.StringIO()
    tty.isatty = lambda: True  # type: ignore[method-assign]
    line = ProgressLine(tty)
    line.show(snapshot())
    line.close(snapshot(done=1910))
    assert tty.getvalue().count("\r") == 2 and tty.getvalue().endswith("\n")

    log = io.StringIO()
    plain = ProgressLine(log, plain_every_s=5)
    assert plain.interval_s == 5
    plain.show(snapshot())
    plain.show(snapshot())
    assert "\r" not in log.getvalue() and log.getvalue().count("\n") == 2


def test_the_rate_meter_counts_the_last_minute():
    now = [0.0]
    meter = RateMeter(clock=lambda: now[0])
    for _ in range(120):
        meter.add(100)
        now[0] += 0.5
    per_min, tokens_per_min = meter.per_minute()
    assert per_min == pytest.approx(120, rel=0.02) and tokens_per_min == pytest.approx(12_000, rel=0.02)
    now[0] += 120  # nothing for two minutes
    assert meter.per_minute() == (0.0, 0.0)


def test_an_engine_with_progress_on_reports_its_final_state(make_engine, capsys):
    engine = make_engine(FakeAPI())
    engine._progress = True  # the fixtures turn it off, as tests should
    run(engine, [request(i) for i in range(5)], total=5)
    assert "5/5 done (0 failed, 0 cached)" in capsys.readouterr().err


def test_the_line_says_what_holds_the_pace():
    assert "held by TPM reservations" in format_line(snapshot(held_by="TPM reservations"))
    assert "held by" not in format_line(snapshot())  # nothing waits: the server's answers set the pace


@pytest.mark.parametrize("rpm, tpm, expected", [(None, 2, "TPM reservations"), (2, None, "RPM")])  # a minute to wait
def test_the_limiter_names_the_limit_a_request_waits_for(rpm, tpm, expected):
    import anyio

    from factory.engine.limiter import RateLimiter

    async def main() -> str | None:
        limiter = RateLimiter(rpm=rpm, tpm=tpm)
        for bucket in limiter._buckets.values():
            if bucket is not None:
                bucket.clamp(0.0)  # used up: the next request waits
        seen: list[str | None] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(limiter.acquire, 50)
            await anyio.wait_all_tasks_blocked()
            seen.append(limiter.holding)
            tg.cancel_scope.cancel()
        return seen[0]

    assert anyio.run(main) == expected


def test_a_paused_limiter_and_a_waiting_budget_are_named(make_engine):
    import anyio

    from factory.engine.budget import Budget

    engine = make_engine(FakeAPI(), max_concurrency=4)

    async def main() -> tuple[str | None, str | None]:
        engine.rate.pause(30.0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(engine.rate.acquire, 10)
            await anyio.wait_all_tasks_blocked()
            paused = engine.rate.holding
            tg.cancel_scope.cancel()
        budget = Budget(1.0)
        assert await budget.reserve(0.9)
        async with anyio.create_task_group() as tg:
            tg.start_soon(budget.reserve, 0.5)  # waits for the 0.9 in flight to settle
            await anyio.wait_all_tasks_blocked()
            waiting = "the budget" if budget.waiting else None
            tg.cancel_scope.cancel()
        return paused, waiting

    assert anyio.run(main) == ("a 429 pause", "the budget")


def test_a_goal_leads_the_line_and_projects_money_and_time_from_its_yield():
    # 300 examples kept in this run from 1,000 requests (0.3 per request); 700 more to keep: about
    # 2,333 more requests at the same yield, at $0.50 per 910 paid requests and 500 requests a minute.
    goal = Goal(done=300, target=1000, done_now=300)
    line = format_line(snapshot(total=None, goal=goal))
    assert line.startswith("kept 300/1000 | yield 0.30 per request | 1000 requests (10 failed, 90 cached)")
    assert "~$1.78 projected" in line and "ETA 4m40s" in line


def test_a_goal_before_any_result_says_its_yield_is_not_measured_yet():
    line = format_line(snapshot(done=0, failed=0, cached=0, total=None, goal=Goal(done=40, target=100, done_now=0)))
    assert "kept 40/100 | yield not measured yet" in line and "projected" not in line and "ETA" not in line


def test_an_engine_run_with_a_goal_shows_it(make_engine, capsys):
    engine = make_engine(FakeAPI())
    engine._progress = True
    kept: list[object] = []
    run_goal = lambda: Goal(done=len(kept), target=10, done_now=len(kept))  # noqa: E731
    anyio.run(lambda: engine.run([request(i) for i in range(5)], kept.append, goal=run_goal))
    assert "kept 5/10 | yield 1.00 per request | 5 requests (0 failed, 0 cached)" in capsys.readouterr().err
