"""A long self-instruct run against the simulator reaches --n, and the simulator's
duplicate_share sets how much of what it writes the near-duplicate check drops."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from factory.__main__ import main
from factory.simulator import SimConfig, run_simulator
from schemas import Example, Rejected, read_jsonl

ROOT = Path(__file__).resolve().parents[2]
SEEDS = {lang: ROOT / "examples" / f"seed_tasks_{lang}.jsonl" for lang in ("en", "ko")}


def _run(tmp_path: Path, name: str, n: int, share: float, lang: str = "en") -> tuple[int, Counter]:
    run = tmp_path / name
    with run_simulator(SimConfig(seed=4, output_tokens=40, duplicate_share=share)) as url:
        code = main(["generate", "--run", str(run), "--base-url", url, "--model", "gpt-4o-mini", "--no-progress",
                     "--recipe", "self-instruct", "--seeds", str(SEEDS[lang]), "--n", str(n)])
    assert code == 0
    kept = sum(1 for _ in read_jsonl(run / "examples.jsonl", Example))
    return kept, Counter(r.reason for r in read_jsonl(run / "rejected.jsonl", Rejected))


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_a_run_of_thousands_reaches_its_target(tmp_path: Path, lang: str) -> None:
    kept, reasons = _run(tmp_path, "long", 2500, SimConfig().duplicate_share, lang)
    assert kept >= 2500
    assert reasons["duplicate"] < 0.2 * (kept + sum(reasons.values()))


def test_duplicate_share_changes_the_drop_share(tmp_path: Path) -> None:
    shares = {}
    for share in (0.0, 0.4):
        kept, reasons = _run(tmp_path, f"share-{share}", 600, share)
        shares[share] = reasons["duplicate"] / (kept + sum(reasons.values()))
    assert shares[0.0] < 0.02
    assert shares[0.4] > shares[0.0] + 0.15
