"""bench/train_vs_trl.py on the tiny model: TRL's baseline and ours each train two steps, so the script
cannot rot; its fairness checks hold; the README's rows are the results file's."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # bench/ is not an installed package

from bench.train_vs_trl import OUT, encode, table  # noqa: E402
from bench.train_vs_trl_checks import loss_parity, trl_isolation_check  # noqa: E402


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    from trainer.tiny import build_tiny

    return str(build_tiny(tmp_path_factory.mktemp("tiny-gemma"), seed=0))


def test_trl_packed_rows_keep_examples_apart_and_both_trainers_compute_the_same_loss(tiny_dir: str) -> None:
    _, held, _ = encode(tiny_dir, 128, data_seed=0)
    isolation = trl_isolation_check(tiny_dir, [{"input_ids": e.input_ids} for e in held[:3]])
    assert isolation["isolated"], isolation
    assert isolation["attn_implementation"] == "sdpa"
    assert isolation["max_abs_logprob_gap_without_isolation"] > 1e-3  # the check can fail
    parity = loss_parity(tiny_dir, held[:4])
    assert parity["same"] and parity["supervised_tokens"] > 0, parity


@pytest.mark.slow
def test_the_benchmark_trains_both_for_two_steps_on_the_tiny_model(tiny_dir: str, tmp_path: Path) -> None:
    out = tmp_path / "train_vs_trl_tiny.json"
    proc = subprocess.run(
        [sys.executable, "bench/train_vs_trl.py", "--model", tiny_dir, "--rounds", "1", "--steps", "2",
         "--warmup-steps", "1", "--profile-steps", "1", "--token-budget", "256", "--max-len", "128",
         "--threads", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    ours, trl = r["runs"]["ours"][0], r["runs"]["trl"][0]
    for run in (ours, trl):
        assert [s["step"] for s in run["steps"]] == [1, 2]
        assert sum(s["tokens"] for s in run["steps"]) == r["data"]["train_tokens"]  # one epoch, every token once
        assert run["window"]["steps"] == 1 and run["window"]["tokens_per_s"] > 0
        assert run["peak_rss_mib"] > 0 and math.isfinite(run["heldout_loss"]) and math.isfinite(run["loss_last"])
        assert run["torch_threads"] == 1
    assert trl["packed_rows"] == 2
    assert "packing=True, packing_strategy='bfd'" in trl["used"]["batching"]
    assert trl["used"]["gradient_checkpointing"] is False and "sdpa" in trl["used"]["attention"]
    assert r["tokens_per_s_ratio"] == ours["window"]["tokens_per_s"] / trl["window"]["tokens_per_s"]
    assert r["trl_isolation"]["isolated"] and r["loss_parity_one_row"]["same"]
    assert set(r["loss_check"]) >= {"heldout_loss_before", "gap_of_means", "tolerance", "agree"}
    for side in ("ours", "trl"):
        assert r["profile"][side]["busiest_ops"] and r["profile"][side]["self_cpu_ms_per_step"] > 0
    assert r["provenance"]["machine"]["load_average_1m_at_end"] is not None
    printed = subprocess.run([sys.executable, "bench/train_vs_trl.py", "--table", "--out", str(out)], cwd=ROOT,
                             capture_output=True, text=True, timeout=120, check=True).stdout
    assert printed.strip() == table(r) and "TRL SFTTrainer" in printed


def test_the_readme_rows_are_the_results_file() -> None:
    rows = table(json.loads(OUT.read_text(encoding="utf-8")))
    assert rows in (ROOT / "README.md").read_text(encoding="utf-8")
