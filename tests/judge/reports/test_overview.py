"""The whole report: index.html from a small real run (generate and judge through the simulator,
with faults), its figures read back from the page and checked against the ledger and the files."""

from __future__ import annotations

import json
import sqlite3
import statistics
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from factory.__main__ import main as factory_main
from factory.simulator import SimConfig, run_simulator
from judge.__main__ import main as judge_main
from schemas import Answer, write_jsonl

ROOT = Path(__file__).resolve().parents[3]
SEEDS_EN = ROOT / "examples" / "seed_tasks_en.jsonl"
EVAL_EN = ROOT / "evalsets" / "en.jsonl"


class Figures(HTMLParser):
    """data-figure -> data-value of every figure on the page, and every src/href."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, object] = {}
        self.links: list[str] = []
        self.tags: Counter[str] = Counter()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        a = dict(attrs)
        if "data-figure" in a:
            raw = a.get("data-value") or ""
            self.values[a["data-figure"] or ""] = json.loads(raw) if raw else None
        self.links += [v for k, v in attrs if k in ("src", "href") and v]


def read_figures(path: Path) -> Figures:
    parser = Figures()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _metrics(run: Path, steps: int = 40) -> list[float]:
    """A trainer metrics file (its format: one JSON object per logged step)."""
    losses = [3.0 - 1.5 * s / steps for s in range(1, steps + 1)]
    lines = []
    for s, loss in enumerate(losses, start=1):
        rec = {"step": s, "loss": loss, "lr": 1e-3, "grad_norm": 0.5, "tokens": 512, "tokens_per_s": 1000.0 + s,
               "mfu": None, "peak_gib": 0.4 + s / 1000}
        if s % 10 == 0:
            rec["eval_loss"] = loss + 0.1
        lines.append(json.dumps(rec))
    (run / "train").mkdir(parents=True, exist_ok=True)
    (run / "train" / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return losses


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """generate (30 kept) and judge (single) through the simulator with 500s and truncations
    injected; a trainer metrics file; then `judge overview`."""
    run = tmp_path_factory.mktemp("overview") / "run"
    mp = pytest.MonkeyPatch()
    mp.setenv("OPENAI_API_KEY", "sk-test-overview-key")
    mp.delenv("OPENAI_BASE_URL", raising=False)
    mp.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path_factory.mktemp("tiktoken-empty")))
    questions = run.parent / "questions.jsonl"
    questions.write_text("".join(EVAL_EN.read_text(encoding="utf-8").splitlines(keepends=True)[:4]))
    qids = [json.loads(x)["question_id"] for x in questions.read_text().splitlines()]
    try:
        with run_simulator(SimConfig(seed=11, output_tokens=60, fault_rates={"500": 0.1, "length": 0.05})) as url:
            assert factory_main(["generate", "--run", str(run), "--recipe", "self-instruct", "--seeds", str(SEEDS_EN),
                                 "--n", "30", "--model", "gpt-4o-mini", "--base-url", url, "--max-cost", "1",
                                 "--no-progress"]) == 0
            _metrics(run)
            write_jsonl(run / "eval" / "answers.jsonl", [
                Answer(question_id=q, model="lora", turns=[f"answer {i} one", f"answer {i} two"]) for i, q in enumerate(qids)
            ])
            assert judge_main(["grade", "--run", str(run), "--mode", "single", "--judge-model", "gpt-4o",
                               "--questions", str(questions), "--base-url", url, "--no-progress"]) == 0
        assert judge_main(["overview", "--run", str(run), "--questions", str(questions)]) == 0
    finally:
        mp.undo()
    return run


def _sql(run: Path, query: str) -> object:
    with sqlite3.connect(run / "ledger.sqlite") as db:
        return db.execute(query).fetchone()[0]


def test_page_figures_match_the_ledger(small_run: Path) -> None:
    fig = read_figures(small_run / "report" / "index.html").values
    assert fig["cost.total_usd"] == pytest.approx(_sql(small_run, "SELECT SUM(cost_usd) FROM requests"))
    assert fig["cost.generation_usd"] == pytest.approx(
        _sql(small_run, "SELECT SUM(cost_usd) FROM requests WHERE stage = 'self-instruct'"))
    assert fig["cost.stage_model.judge.gpt-4o"] == pytest.approx(
        _sql(small_run, "SELECT SUM(cost_usd) FROM requests WHERE stage = 'judge'"))
    assert fig["cost.requests"] == _sql(small_run, "SELECT COUNT(*) FROM requests")
    retries = _sql(small_run, "SELECT SUM(attempts - 1) FROM requests")
    assert fig["requests.retries"] == retries
    assert retries > 0, "the injected 500s were retried"
    # The page says which budget covered what: generate's --max-cost its own stages, not the judge's.
    page = (small_run / "report" / "index.html").read_text()
    assert "budget (--max-cost of generate, covering self-instruct)" in page
    assert "priced with factory/engine/prices.toml dated" in page


def test_page_counts_every_rejection_reason(small_run: Path) -> None:
    fig = read_figures(small_run / "report" / "index.html").values
    reasons = Counter(json.loads(x)["reason"] for x in (small_run / "rejected.jsonl").read_text().splitlines() if x)
    kept = sum(1 for x in (small_run / "examples.jsonl").read_text().splitlines() if x)
    assert reasons, "the run rejected something (truncated answers at least)"
    assert {k.removeprefix("funnel.reason."): v for k, v in fig.items() if k.startswith("funnel.reason.")} == reasons
    assert fig["funnel.kept"] == kept >= 30
    assert fig["funnel.generated"] == kept + sum(reasons.values())


def test_page_shows_training_and_scores(small_run: Path) -> None:
    fig = read_figures(small_run / "report" / "index.html").values
    losses = [json.loads(x)["loss"] for x in (small_run / "train" / "metrics.jsonl").read_text().splitlines()]
    assert fig["training.loss_last"] == pytest.approx(statistics.fmean(losses[-4:]))  # the last tenth
    assert fig["training.loss_first"] == pytest.approx(statistics.fmean(losses[:4]))
    assert fig["training.peak_gib"] == pytest.approx(0.44)
    judgments = [json.loads(x) for x in (small_run / "eval" / "judgments.jsonl").read_text().splitlines() if x]
    scored = [j["score"] for j in judgments if j["status"] == "scored"]
    assert fig["scores.single.gpt-4o.lora.all"] == pytest.approx(statistics.fmean(scored))


def test_page_is_self_contained(small_run: Path) -> None:
    page = read_figures(small_run / "report" / "index.html")
    assert page.tags["script"] == 0 and page.tags["link"] == 0
    # The one link out of the page: the data page beside it (report/data.html, `just view`).
    links = [link for link in page.links if link != "data.html"]
    assert page.links.count("data.html") == 1 and page.values["data_page"] is False
    assert links and all(link.startswith("data:image/png;base64,") for link in links)
    summary = json.loads((small_run / "report" / "summary.json").read_text())
    charts = summary["cost"]["charts"] + [summary["training"]["chart"]] + summary["scores"]["charts"]
    assert len(links) == len(charts) >= 5
    assert page.values["simulated"] is True  # the simulator's texts are labelled as such


def test_summary_has_every_part_and_the_headline(small_run: Path) -> None:
    summary = json.loads((small_run / "report" / "summary.json").read_text())
    h = summary["headline"]
    assert h["kept_examples"] == summary["cost"]["generation"]["kept"]
    assert h["total_cost_usd"] == pytest.approx(summary["cost"]["totals"]["cost_usd"])
    assert h["loss_fell"] is True and h["simulated"] is True
    assert h["single_scores"][0]["model"] == "lora"
    assert summary["scores"]["counts"]["judgments"] == 8
    for name in ("cost.md", "scores.md", "training.png", "index.html"):
        assert (small_run / "report" / name).exists()


def test_missing_parts_say_which_command_makes_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    _metrics(run)
    (run / "report").mkdir()
    (run / "report" / "summary.json").write_text(json.dumps({"custom": {"kept": True}, "cost": {"stale": 1}}))
    assert judge_main(["overview", "--run", str(run)]) == 0
    page = (run / "report" / "index.html").read_text()
    assert "just generate --run" in page and "just judge --run" in page
    assert "Simulated run" not in page
    summary = json.loads((run / "report" / "summary.json").read_text())
    assert summary["custom"] == {"kept": True}  # a key another tool wrote is kept
    assert summary["cost"] is None  # a stale part is not passed off as this run's
    assert summary["training"]["steps"] == 40


def test_a_local_server_is_not_taken_for_the_simulator(tmp_path: Path) -> None:
    """A run against a local vLLM (a loopback address) with real texts is not labelled simulated."""
    from factory.engine.settings import EngineSettings
    from schemas import RunFolder
    from schemas import Example

    run = tmp_path / "run"
    write_jsonl(run / "examples.jsonl", [Example(id="e1", instruction="Say hi.", output="Hi!")])
    RunFolder(run).write_config_section("engine", EngineSettings(model="google/gemma-2b-it", base_url="http://localhost:8000/v1"))
    assert judge_main(["overview", "--run", str(run)]) == 0
    summary = json.loads((run / "report" / "summary.json").read_text())
    assert summary["headline"]["simulated"] is False
    assert "Simulated run" not in (run / "report" / "index.html").read_text()


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert judge_main(["overview", "--run", str(tmp_path / "missing")]) == 2
    assert "no run folder" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert judge_main(["overview", "--run", str(empty)]) == 2
    assert "nothing to report" in capsys.readouterr().err
    bad = tmp_path / "bad"
    (bad / "train").mkdir(parents=True)
    (bad / "train" / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{oops\n{"step": 3, "loss": 1.0}\n')
    assert judge_main(["overview", "--run", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "metrics.jsonl:2" in err and "Traceback" not in err
