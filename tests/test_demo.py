"""`just demo`: the reduced version (`--quick`: fewer examples, steps and questions; every step
real) runs end to end and leaves a complete report; the simulator is stopped however the demo ends.

The full demo (`just demo`, about 65 s on our 2-core machine) runs the same steps with 300 examples,
300 training steps and the whole evaluation set; this test keeps the CI's time for the rest.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_script", ROOT / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["demo_script"] = module
    spec.loader.exec_module(module)
    return module


def _demo_command(*args: str) -> list[str]:
    # `just demo` where `just` is installed (the dev extra brings it), else the script it runs.
    just = shutil.which("just")
    return [just, "demo", *args] if just else [sys.executable, "scripts/demo.py", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["OPENAI_API_KEY"] = "sk-a-real-looking-ke"
    env.pop("OPENAI_BASE_URL", None)
    return env


def _refused(url: str) -> bool:
    try:
        httpx.get(url.removesuffix("/v1") + "/health", timeout=2)
    except httpx.TransportError:
        return True
    return False


@pytest.mark.slow
def test_quick_demo_leaves_a_complete_report(tmp_path: Path) -> None:
    run = tmp_path / "demo"
    done = subprocess.run(_demo_command("--quick", "--run", str(run)), check=False, cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=300)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]

    report = run / "report"
    for name in ("index.html", "summary.json", "cost.md", "scores.md", "training.png", "cost_funnel.png"):
        assert (report / name).is_file(), name
    summary = json.loads((report / "summary.json").read_text())
    assert summary["cost"]["generation"]["kept"] >= 60
    assert summary["training"]["loss_fell"] is True
    assert summary["training"]["steps"] == 60
    modes = {r["mode"] for r in map(json.loads, (run / "eval" / "judgments.jsonl").read_text().splitlines())}
    assert modes == {"single", "pair"}
    assert summary["scores"]["counts"]["judgments"] > 0
    assert summary["headline"]["simulated"] is True
    assert summary["simulator"]["requests"] > 0 and sum(summary["simulator"]["faults"].values()) > 0

    # It says plainly where the texts come from, how to do it for real, and where the report is.
    assert "SIMULATED" in out and "OPENAI_API_KEY" in out and "OPENAI_BASE_URL" in out
    assert f"report: {report / 'index.html'}" in out
    assert "training loss fell" in out
    # The simulator is gone, and the environment's key went nowhere.
    url = re.search(r"simulator at (http://127\.0\.0\.1:\d+/v1)", out)
    assert url and _refused(url.group(1))
    for path in run.rglob("*"):
        if path.is_file() and path.suffix in {".toml", ".json", ".jsonl", ".md", ".html"}:
            assert "sk-a-real-looking-key" not in path.read_text(encoding="utf-8", errors="replace"), path


def test_the_simulator_is_stopped_when_a_step_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    demo_mod = load_demo()
    demo = demo_mod.Demo(tmp_path / "demo", "en", demo_mod.QUICK)
    demo.prepare()
    seen: list[str] = []

    def failing_generate(base_url: str) -> None:
        seen.append(base_url)
        assert not _refused(base_url)  # it is up while the steps run
        raise demo_mod.DemoError("generate failed")

    monkeypatch.setattr(demo, "generate", failing_generate)
    with pytest.raises(demo_mod.DemoError):
        demo_mod.run_with_simulator(demo, demo_mod.SimConfig(port=0))
    assert seen and _refused(seen[0])


def test_the_demo_never_replaces_a_folder_it_did_not_make(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "examples.jsonl").write_text("{}\n")
    done = subprocess.run([sys.executable, "scripts/demo.py", "--run", str(mine)], check=False, cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "not a demo run folder" in done.stderr
    assert (mine / "examples.jsonl").read_text() == "{}\n"


def test_the_closing_spend_line_says_what_each_figure_covers() -> None:
    demo = load_demo()
    line = demo.spend_line({"generation_cost_usd": 0.0123, "usd_per_kept_example": 0.00004,
                            "other_stages_cost_usd": 0.002, "total_cost_usd": 0.0143})
    assert "generation $0.0123 ($0.00004 per kept example)" in line
    assert "judging and other stages $0.002" in line and "all stages $0.0143" in line
    unknown = demo.spend_line({"generation_cost_usd": None, "usd_per_kept_example": None,
                               "other_stages_cost_usd": None, "total_cost_usd": 0.0})
    assert "generation unknown (unknown per kept example)" in unknown


@pytest.mark.parametrize("plan", ["REAL", "FULL"])  # 60 examples (the real model's demo), 300 (the tiny model's)
def test_the_dry_runs_range_holds_the_requests_the_demos_generate_sends(tmp_path, plan, capsys, monkeypatch):
    import sqlite3

    from factory.__main__ import main
    from factory.simulator import run_simulator

    demo = load_demo()
    monkeypatch.setenv("OPENAI_API_KEY", demo.DEMO_KEY)
    run = tmp_path / "run"
    with run_simulator(demo.simulator_config(0)) as url:
        args = demo.Demo(run, "en", getattr(demo, plan)).generate_args(url)
        assert main([*args, "--dry-run"]) == 0
        m = re.search(r"total: \d+ requests expected \(between (\d+) and (\d+)\)", capsys.readouterr().out)
        assert m is not None
        assert main(args) == 0
    db = sqlite3.connect(run / "ledger.sqlite")
    try:
        (sent,) = db.execute("SELECT COUNT(*) FROM requests").fetchone()
    finally:
        db.close()
    assert int(m.group(1)) <= sent <= int(m.group(2))
