"""kill -9 after the server created a batch and before its id was recorded: `--status` shows the
batch and `--cancel` cancels it (the lookup a rerun does); the rerun follows it and makes no other."""

import os
import signal
import subprocess
import sys
import time

import httpx
from batch_fakes import CLI_FAST, ROOT, write_input

from factory.batch.ledger import BatchLedger
from factory.engine.ledger import Ledger
from factory.simulator import SimConfig, run_simulator
from factory.simulator.batch_config import BatchSimConfig


def sim_batches(url: str) -> dict:
    return httpx.get(url.removesuffix("/v1") + "/sim/stats").json()["batches"]


def test_status_and_cancel_find_a_batch_whose_create_reply_was_lost_to_a_kill(tmp_path, batch_cli, capsys):
    run = tmp_path / "run"
    requests = write_input(tmp_path / "requests.jsonl", [f"Explain topic {i}." for i in range(6)])
    # The first create's reply is held back long after the batch exists: the child is killed in
    # between. The batch runs for ten minutes, so it is still open when --cancel comes.
    sim = BatchSimConfig(seconds=600, late_create_replies=1, late_reply_s=600)
    with run_simulator(SimConfig(seed=5), sim) as url:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "sk-test"}
        child = subprocess.Popen([sys.executable, "-m", "factory", "batch", "--run", str(run), "--input", str(requests),
                                  "--base-url", url, *CLI_FAST], env=env, cwd=ROOT)
        try:
            deadline = time.monotonic() + 60
            while sim_batches(url)["submitted"] == 0:
                assert child.poll() is None, "the child ended before it created its batch"
                assert time.monotonic() < deadline, "the child did not create its batch"
                time.sleep(0.01)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait(10)
        assert child.returncode == -signal.SIGKILL
        (made,) = httpx.get(f"{url}/batches", headers={"authorization": "Bearer sk-test"}).json()["data"]
        with Ledger.for_run(run) as ledger, BatchLedger(ledger) as books:
            (orphan,) = books.open_files()
            assert orphan.batch_id is None and ledger.batches() == []  # the batch is not recorded
            assert made["input_file_id"] == orphan.file_id

        assert batch_cli(url, "--status") == 0
        status = capsys.readouterr().out
        assert made["id"] in status and "its create reply was lost" in status and "(to collect" in status
        assert "no batch on the server" not in status

        assert batch_cli(url, "--cancel") == 0
        assert f"cancelled 1 batches: {made['id']}" in capsys.readouterr().err
        assert sim_batches(url)["cancelled"] == 1

        # The rerun attaches to the cancelled batch (collected once it ends) and submits nothing.
        assert batch_cli(url, "--input", str(requests), "--batch-wait", "no") == 0
        assert "6 requests are in batches on the server" in capsys.readouterr().err
        counts = sim_batches(url)
    assert counts["files_uploaded"] == 1 and counts["submitted"] == 1 and counts["cancelled"] == 1
    with Ledger.for_run(run) as ledger:
        (batch,) = ledger.batches()
        assert ledger.count_by_status() == {"pending": 6, "done": 0, "failed": 0}
    assert batch["batch_id"] == made["id"] and batch["status"] == "cancelling"
