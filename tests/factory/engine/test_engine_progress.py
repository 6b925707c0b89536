"""The progress line: what it shows, and how it is written to a terminal or a log."""

from __future__ import annotations

import io

import pytest

from engine_fakes import FakeAPI, request, run

from factory.engine.progress import ProgressLine, RateMeter, Snapshot, format_line


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
