"""Crash safety, with the engine in a child process (engine_driver.py) and the simulator here:
`kill -9` mid-run then a rerun leaves every request done exactly once and the output file whole;
Ctrl-C drains in-flight requests and exits cleanly."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from schemas import LLMCall, ReadReport, read_jsonl

simulator = pytest.importorskip("factory.simulator")

DRIVER = Path(__file__).with_name("engine_driver.py")
ROOT = Path(__file__).resolve().parents[3]


def _start(run_dir: Path, url: str, n: int, concurrency: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(DRIVER), str(run_dir), url, str(n), "--concurrency", str(concurrency)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _wait_for_lines(path: Path, at_least: int, proc: subprocess.Popen[str], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= at_least:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the driver ended early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.01)
    raise AssertionError(f"{path} did not reach {at_least} lines in {timeout_s}s")


def _ledger_rows(run_dir: Path) -> list[tuple[str, str, int]]:
    db = sqlite3.connect(run_dir / "ledger.sqlite")
    try:
        return db.execute("SELECT key, status, attempts FROM requests").fetchall()
    finally:
        db.close()


def _served(url: str) -> int:
    return httpx.get(url.removesuffix("/v1") + "/sim/stats").json()["by_status"].get("200", 0)


def test_kill_9_mid_run_then_a_rerun_leaves_every_request_done_once(tmp_path):
    n, concurrency = 300, 16
    run_dir = tmp_path / "run"
    outputs = run_dir / "outputs.jsonl"
    config = simulator.SimConfig(seed=1, latency_base_s=0.02, jitter_s=0.08, output_tokens=20)
    with simulator.run_simulator(config) as url:
        proc = _start(run_dir, url, n, concurrency)
        _wait_for_lines(outputs, 60, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
        done_at_kill = sum(1 for _, status, _ in _ledger_rows(run_dir) if status == "done")
        assert 60 <= done_at_kill < n, "the kill should land mid-run"

        rerun = subprocess.run([sys.executable, str(DRIVER), str(run_dir), url, str(n), "--concurrency", str(concurrency)],
                               capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert rerun.returncode == 0, rerun.stderr
        stats = json.loads(rerun.stdout.strip().splitlines()[-1])
        served = _served(url)

    # The rerun paid only for what the first run had not recorded.
    assert stats["cached"] == done_at_kill and stats["done"] == n - done_at_kill
    # What the kill lost is at most what was in flight (answered, but not yet recorded).
    assert served - n <= concurrency
    rows = _ledger_rows(run_dir)
    assert len(rows) == n and all(status == "done" for _, status, _ in rows)
    report = ReadReport(outputs)
    records = read_jsonl(outputs, LLMCall, report)
    assert not report.torn_tail  # the rerun cut any torn line before appending
    assert len(records) == n and len({r.key for r in records}) == n
    assert {r.key for r in records} == {key for key, _, _ in rows}


def test_ctrl_c_drains_in_flight_requests_and_exits_cleanly(tmp_path):
    n = 200
    run_dir = tmp_path / "run"
    outputs = run_dir / "outputs.jsonl"
    config = simulator.SimConfig(seed=2, latency_base_s=0.2, jitter_s=0.1, output_tokens=20)
    with simulator.run_simulator(config) as url:
        proc = _start(run_dir, url, n, 8)
        _wait_for_lines(outputs, 10, proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        stats = json.loads(out.strip().splitlines()[-1])
        assert stats["stopped_reason"] == "interrupted"
        assert 10 <= stats["done"] < n
        served_after_interrupt = _served(url)
        # Every answer the server gave was recorded and delivered: nothing in flight was dropped.
        rows = _ledger_rows(run_dir)
        assert sum(status == "done" for _, status, _ in rows) == stats["done"] == served_after_interrupt
        assert len(read_jsonl(outputs, LLMCall)) == stats["done"]

        rerun = subprocess.run([sys.executable, str(DRIVER), str(run_dir), url, str(n), "--concurrency", "32"],
                               capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert rerun.returncode == 0, rerun.stderr
    assert len(read_jsonl(outputs, LLMCall)) == n
