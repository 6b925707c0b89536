"""`python -m factory generate` against the simulator: both recipes reach --n kept, unique examples
with provenance; reruns continue without paying twice; dry runs send nothing; bad inputs fail
before any request with a message naming the file and line."""

from __future__ import annotations

import json
import re
import sqlite3
import time
import tomllib
from pathlib import Path

import httpx
import pytest

from factory.__main__ import main
from factory.quality import Deduper
from factory.recipes.journal import JournalEntry
from factory.recipes.topics import KeptQuestion
from factory.simulator import SimConfig, run_simulator
from factory.simulator.batches import BatchSimConfig
from schemas import Example, Rejected, SeedTask, read_jsonl

ROOT = Path(__file__).resolve().parents[2]
SEEDS_EN = ROOT / "examples" / "seed_tasks_en.jsonl"
SEEDS_KO = ROOT / "examples" / "seed_tasks_ko.jsonl"
KEYWORDS_KO = ROOT / "examples" / "keywords_ko.txt"
MODEL = ["--model", "gpt-4o-mini", "--no-progress"]
EN_KEYWORDS = ["first home purchase", "mortgage rates", "renting a flat", "property tax", "moving house",
               "home insurance", "tenant rights", "house viewing"]


@pytest.fixture(scope="module")
def sim() -> str:
    with run_simulator(SimConfig(seed=3, output_tokens=60), BatchSimConfig(seconds=0.2)) as url:
        yield url


@pytest.fixture
def keywords(tmp_path: Path) -> Path:
    path = tmp_path / "keywords.txt"
    path.write_text("\n".join(EN_KEYWORDS) + "\n", encoding="utf-8")
    return path


def generate(run: Path, url: str, *extra: str) -> int:
    return main(["generate", "--run", str(run), "--base-url", url, *MODEL, *extra])


def served(url: str) -> int:
    """Chat completions the simulator has handled (its own /sim/stats calls not counted)."""
    return httpx.get(url.removesuffix("/v1") + "/sim/stats").json()["chat_completions"]


def ledger_rows(run: Path) -> list[tuple[str, str, str]]:
    db = sqlite3.connect(run / "ledger.sqlite")
    try:
        return db.execute("SELECT key, stage, status FROM requests").fetchall()
    finally:
        db.close()


def assert_unique(examples: list[Example]) -> None:
    assert len({e.id for e in examples}) == len(examples), "no example id twice"
    fresh = Deduper()
    dups = [e.id for e in examples if fresh.check_and_add(e.id, e.instruction).is_dup]
    assert not dups, f"near-duplicates kept: {dups[:5]}"


def test_self_instruct_keeps_n_unique_examples_with_provenance(tmp_path, sim, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-01234")
    run = tmp_path / "run"
    assert generate(run, sim, "--recipe", "self-instruct", "--seeds", str(SEEDS_EN), "--n", "200") == 0
    out = capsys.readouterr().out
    examples = read_jsonl(run / "examples.jsonl", Example)
    assert len(examples) >= 200
    assert_unique(examples)
    seed_ids = {t.id for t in read_jsonl(SEEDS_EN, SeedTask)}
    done = {key: stage for key, stage, status in ledger_rows(run) if status == "done"}
    for e in examples:
        p = e.provenance
        assert p is not None and p.recipe == "self-instruct" and p.model == "gpt-4o-mini" and e.lang == "en"
        assert p.seed_ids and set(p.seed_ids) <= seed_ids
        assert done[p.request_key] == "self-instruct"
        assert p.cost_usd is not None and p.cost_usd > 0
    # every rejection says why, and duplicates name what they duplicate
    rejected = read_jsonl(run / "rejected.jsonl", Rejected)
    assert all(r.reason and r.request_key for r in rejected)
    assert all("duplicate of" in r.detail and "similarity" in r.detail for r in rejected if r.reason == "duplicate")
    assert "done: " in out and "per kept example" in out and "rejected in this run" in out
    config = (run / "config.toml").read_text()
    assert "sk-test-secret" not in config
    saved = tomllib.loads(config)
    assert saved["generate"]["recipe"] == "self-instruct" and saved["generate"]["lang"] == "en"
    assert saved["engine"]["model"] == "gpt-4o-mini" and saved["filters"]["lang"] == "en"


def test_topics_dedups_questions_before_paying_for_answers(tmp_path, sim, keywords, capsys):
    run = tmp_path / "run"
    assert generate(run, sim, "--recipe", "topics", "--seeds", str(keywords), "--n", "200") == 0
    examples = read_jsonl(run / "examples.jsonl", Example)
    assert len(examples) >= 200
    assert_unique(examples)
    kept_questions = {q.id: q for q in read_jsonl(run / "generate" / "questions.jsonl", KeptQuestion)}
    journal = read_jsonl(run / "generate" / "requests.jsonl", JournalEntry)
    answered = [q["id"] for e in journal if e.kind == "planned" and e.stage == "answers" for q in e.meta["questions"]]
    rejected_questions = {r.id for r in read_jsonl(run / "rejected.jsonl", Rejected) if getattr(r, "stage", "") == "questions"}
    assert answered and set(answered) <= set(kept_questions), "only kept questions are answered"
    assert not set(answered) & rejected_questions
    assert len(answered) == len(set(answered)), "no question is answered twice"
    for e in examples:
        q = kept_questions[e.provenance.question_id]
        assert e.instruction == q.text and e.provenance.seed_ids == [q.keyword] and q.keyword in EN_KEYWORDS
        assert e.provenance.cost_usd > q.cost_usd > 0  # the answer's share plus the question's
    stages = {stage for _, stage, _ in ledger_rows(run)}
    assert stages == {"probe", "questions", "answers"}  # (the probe: whether the server takes json_schema)


def test_rerun_continues_without_paying_twice(tmp_path, sim, capsys):
    run = tmp_path / "run"
    args = ["--recipe", "self-instruct", "--seeds", str(SEEDS_EN), "--n", "60"]
    assert generate(run, sim, *args) == 0
    first_rows = ledger_rows(run)
    before = served(sim)
    assert generate(run, sim, *args) == 0  # nothing left to do
    assert served(sim) == before and ledger_rows(run) == first_rows
    assert "kept 0 examples in this run" in capsys.readouterr().out
    assert generate(run, sim, "--recipe", "self-instruct", "--seeds", str(SEEDS_EN), "--n", "120") == 0
    rows = ledger_rows(run)
    assert served(sim) - before == len(rows) - len(first_rows), "only new requests were sent"
    assert len({k for k, _, _ in rows}) == len(rows) and all(s == "done" for _, _, s in rows)
    examples = read_jsonl(run / "examples.jsonl", Example)
    assert len(examples) >= 120
    assert_unique(examples)


def test_dry_run_sends_nothing_and_projects_tokens_cost_and_duration(tmp_path, sim, keywords, capsys):
    run = tmp_path / "run"
    before = served(sim)
    code = generate(run, sim, "--recipe", "self-instruct", "--seeds", str(SEEDS_KO), "--n", "500", "--dry-run",
                    "--rpm", "500", "--tpm", "200000", "--max-cost", "5")
    out = capsys.readouterr().out
    assert code == 0 and served(sim) == before
    assert not run.exists(), "a dry run writes nothing, not even the ledger"
    assert "stage self-instruct:" in out and "requests" in out
    assert "fallback-heuristic-v1" in out  # the estimator that counted the rendered prompts
    assert "input tokens:" in out and "output tokens: at most" in out
    assert "cost: at most $" in out and "duration: at least" in out and "TPM 200,000" in out
    assert "assumed_yield 70%" in out and "a default" in out
    # topics: both stages, and grounding assumptions are named
    code = generate(run, sim, "--recipe", "topics", "--seeds", str(keywords), "--n", "100", "--dry-run",
                    "--grounding", "naver")
    out = capsys.readouterr().out
    assert code == 0 and not run.exists()
    assert "stage questions:" in out and "stage answers:" in out and "placeholder questions" in out
    assert "Naver snippets" in out and "duration: not projected" in out


def test_a_resumed_runs_dry_run_uses_the_measured_yield_and_its_range_holds(tmp_path, sim, capsys):
    run = tmp_path / "run"
    args = ["--recipe", "self-instruct", "--seeds", str(SEEDS_EN)]
    # 60 examples: about 25 requests, a sample whose replies (one to five tasks each) vary enough
    # that the range must carry that spread, not only the kept share's.
    assert generate(run, sim, *args, "--n", "60") == 0
    rows = ledger_rows(run)
    capsys.readouterr()
    assert generate(run, sim, *args, "--n", "300", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "measured in this run folder" in out
    assert re.search(r"examples to keep: 300 \(6\d kept already, \d+ to go\)", out)
    assert ledger_rows(run) == rows
    # The range from the folder's own yield holds what the resumed run then sends.
    low, high = map(int, re.search(r"total: \d+ requests expected \(between (\d+) and (\d+)\)", out).groups())
    before = served(sim)
    assert generate(run, sim, *args, "--n", "300") == 0
    assert low <= served(sim) - before <= high


@pytest.mark.parametrize("case", ["missing", "empty", "malformed"])
def test_a_bad_seed_file_fails_before_any_request(tmp_path, sim, capsys, case):
    seeds = tmp_path / "seeds.jsonl"
    if case == "empty":
        seeds.write_text("", encoding="utf-8")
    elif case == "malformed":
        good = SEEDS_EN.read_text(encoding="utf-8").splitlines()
        seeds.write_text("\n".join([good[0], good[1], '{"id": "x", "instruction": ', good[2]]) + "\n", encoding="utf-8")
    before = served(sim)
    run = tmp_path / "run"
    code = generate(run, sim, "--recipe", "self-instruct", "--seeds", str(seeds), "--n", "10")
    err = capsys.readouterr().err.strip()
    assert code == 2 and served(sim) == before
    assert err.startswith("error:") and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "seeds.jsonl" in err
    if case == "malformed":
        assert "3" in err.split("seeds.jsonl", 1)[1][:12], "the message names line 3"
    assert not (run / "ledger.sqlite").exists()


def test_a_bad_keyword_file_fails_too(tmp_path, sim, capsys):
    code = generate(tmp_path / "run", sim, "--recipe", "topics", "--seeds", str(tmp_path / "nope.txt"), "--n", "10")
    err = capsys.readouterr().err
    assert code == 2 and "nope.txt" in err


def test_eval_questions_are_kept_out(tmp_path, sim, capsys):
    """The same requests in a fresh run folder give the same tasks (the simulator is deterministic);
    with some of them as evaluation questions they are dropped as contamination."""
    args = ["--recipe", "self-instruct", "--seeds", str(SEEDS_EN), "--n", "30", "--generated-examples", "0"]
    first = tmp_path / "first"
    assert generate(first, sim, *args) == 0
    kept = read_jsonl(first / "examples.jsonl", Example)[:5]
    evalset = tmp_path / "eval.jsonl"
    evalset.write_text("".join(json.dumps({"question_id": f"e{i}", "turns": [e.instruction]}) + "\n"
                               for i, e in enumerate(kept)), encoding="utf-8")
    second = tmp_path / "second"
    assert generate(second, sim, *args, "--eval", str(evalset)) == 0
    contaminated = [r for r in read_jsonl(second / "rejected.jsonl", Rejected) if r.reason == "contamination"]
    assert {r.id for r in contaminated} >= {e.id for e in kept}
    assert all("eval question eval.jsonl:e" in r.detail for r in contaminated)
    assert not {e.id for e in kept} & {e.id for e in read_jsonl(second / "examples.jsonl", Example)}


def test_text_mode_on_an_endpoint_that_ignores_the_format_stops_on_a_collapsed_yield(tmp_path, sim, capsys):
    # The simulator answers free text, not the requested task list: every request is a parse failure.
    run = tmp_path / "run"
    code = generate(run, sim, "--recipe", "self-instruct", "--seeds", str(SEEDS_EN), "--n", "50",
                    "--structured", "no", "--yield-window", "6")
    out = capsys.readouterr().out
    assert code == 1
    assert "the yield collapsed" in out and "parse" in out and "rerun the same command" in out
    assert len(ledger_rows(run)) < 40, "it stops soon after the window fills"
    rejected = read_jsonl(run / "rejected.jsonl", Rejected)
    assert rejected and all(r.reason == "parse" and "Instruction:" in r.detail for r in rejected)


def test_korean_topics_give_korean_examples(tmp_path, sim, capsys):
    run = tmp_path / "run"
    assert generate(run, sim, "--recipe", "topics", "--seeds", str(KEYWORDS_KO), "--n", "20") == 0
    examples = read_jsonl(run / "examples.jsonl", Example)
    assert len(examples) >= 20 and all(e.lang == "ko" for e in examples)
    assert all(sum("\uac00" <= c <= "\ud7a3" for c in e.output) > 10 for e in examples)
    journal = read_jsonl(run / "generate" / "requests.jsonl", JournalEntry)
    assert any("키워드마다" in m["content"] for e in journal if e.kind == "planned" for m in e.messages)


def test_budget_stops_the_run_and_is_never_exceeded(tmp_path, sim, capsys):
    run = tmp_path / "run"
    code = generate(run, sim, "--recipe", "self-instruct", "--seeds", str(SEEDS_EN), "--n", "500", "--max-cost", "0.003")
    out = capsys.readouterr().out
    assert code == 1 and "budget" in out
    db = sqlite3.connect(run / "ledger.sqlite")
    (spent,) = db.execute("SELECT SUM(cost_usd) FROM requests").fetchone()
    db.close()
    assert 0 < spent <= 0.003


def test_a_bad_key_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-12345678")
    run = tmp_path / "run"
    with run_simulator(SimConfig(api_key="sk-right-key-87654321")) as url:
        code = generate(run, url, "--recipe", "self-instruct", "--seeds", str(SEEDS_EN), "--n", "50")
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: the API rejected the key (401)")
    assert len(err.splitlines()) == 1 and "sk-wrong-key-12345678" not in err
    assert all(status != "done" for _, _, status in ledger_rows(run))


def test_batch_api_path_and_submit_then_collect(tmp_path, sim, keywords, capsys):
    fast = ["--batch", "--batch-poll", "0.05", "--batch-poll-max", "0.1"]
    run = tmp_path / "run"
    assert generate(run, sim, "--recipe", "topics", "--seeds", str(keywords), "--n", "40", *fast) == 0
    examples = read_jsonl(run / "examples.jsonl", Example)
    assert len(examples) >= 40
    assert_unique(examples)
    db = sqlite3.connect(run / "ledger.sqlite")
    assert db.execute("SELECT COUNT(*) FROM requests WHERE batch = 0").fetchone() == (0,)
    db.close()

    # --batch-wait no: each invocation submits or collects one stage and exits; reruns finish.
    run2 = tmp_path / "run2"
    args = ["--recipe", "self-instruct", "--seeds", str(SEEDS_EN), "--n", "40", *fast, "--batch-wait", "no"]
    capsys.readouterr()
    outputs = []
    for _ in range(40):
        assert generate(run2, sim, *args) == 0
        outputs.append(capsys.readouterr().out)
        if "done: " in outputs[-1]:
            break
        time.sleep(0.05)  # the simulated batches take 0.2 s
    assert "rerun the same command to collect them" in outputs[0]
    assert "done: " in outputs[-1]
    examples = read_jsonl(run2 / "examples.jsonl", Example)
    assert len(examples) >= 40
    assert_unique(examples)
    rows = ledger_rows(run2)
    assert len({k for k, _, _ in rows}) == len(rows) and all(s == "done" for _, _, s in rows)


def test_an_unknown_model_stops_at_once(tmp_path, capsys):
    run = tmp_path / "run"
    with run_simulator(SimConfig(models=("gpt-4o-mini",))) as url:
        code = main(["generate", "--run", str(run), "--base-url", url, "--model", "gpt-9-imaginary", "--no-progress",
                     "--recipe", "self-instruct", "--seeds", str(SEEDS_EN), "--n", "50"])
        sent = served(url)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: not found (404): model 'gpt-9-imaginary'") and len(err.splitlines()) == 1
    assert sent == 1, "the first request goes alone: one refusal, not fifty"


def test_settings_from_a_toml_file_with_command_line_overrides(tmp_path, sim, capsys):
    config = tmp_path / "gen.toml"
    config.write_text(
        f'[generate]\nrecipe = "self-instruct"\nseeds = "{SEEDS_EN}"\nn = 500\ntasks_per_request = 5\n'
        '[engine]\nmodel = "gpt-4o-mini"\n[dedup]\nthreshold = 0.6\n[filters]\nmax_output_chars = 5000\n',
        encoding="utf-8")
    run = tmp_path / "run"
    assert main(["generate", "--run", str(run), "--config", str(config), "--base-url", sim, "--n", "20",
                 "--no-progress"]) == 0
    saved = tomllib.loads((run / "config.toml").read_text())
    assert saved["generate"]["n"] == 20 and saved["generate"]["tasks_per_request"] == 5
    assert saved["dedup"]["threshold"] == 0.6 and saved["filters"]["max_output_chars"] == 5000
    assert saved["engine"]["base_url"] == sim

    code = main(["generate", "--run", str(run), "--config", str(config), "--n", "0", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and "n: Input should be greater than 0 (from command line)" in err
    config.write_text(config.read_text().replace("tasks_per_request = 5", "tasks_per_reqest = 5"), encoding="utf-8")
    code = main(["generate", "--run", str(run), "--config", str(config), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and "tasks_per_reqest: unknown setting" in err


def test_a_wrong_option_value_is_one_line_not_the_whole_usage(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["generate", "--run", str(tmp_path / "run"), "--recipe", "self_instruct", "--n", "3"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "usage:" not in "\n".join(err)
    assert "--recipe: invalid choice: 'self_instruct'" in err[0] and "self-instruct" in err[0]
    assert "python -m factory generate --help" in err[1]
    assert not (tmp_path / "run").exists()


def test_dry_run_and_cost_report_name_the_price_tables_date(tmp_path, sim, capsys):
    import datetime as dt

    old = tmp_path / "old-prices.toml"
    old.write_text('[meta]\nas_of = "2020-01-01"\n\n[models."gpt-4o-mini"]\ninput = 0.15\noutput = 0.6\n')
    fresh = tmp_path / "fresh-prices.toml"
    fresh.write_text(old.read_text().replace("2020-01-01", dt.date.today().isoformat()))
    run = tmp_path / "run"
    assert generate(run, sim, "--recipe", "self-instruct", "--seeds", str(SEEDS_KO), "--n", "50", "--dry-run",
                    "--prices", str(old)) == 0
    out = capsys.readouterr().out
    assert f"prices: {old} dated 2020-01-01" in out and "warning: the price table" in out
    assert generate(run, sim, "--recipe", "self-instruct", "--seeds", str(SEEDS_KO), "--n", "50", "--dry-run",
                    "--prices", str(fresh)) == 0
    out = capsys.readouterr().out
    assert f"prices: {fresh} dated" in out and "warning: the price table" not in out


def _projected(out: str) -> tuple[int, int, int]:
    m = re.search(r"total: (\d+) requests expected \(between (\d+) and (\d+)\)", out)
    assert m, out
    expected, low, high = (int(x) for x in m.groups())
    return expected, low, high


def test_dry_run_projects_a_range_and_the_duration_from_limits_an_earlier_run_learned(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--recipe", "self-instruct", "--seeds", str(SEEDS_EN)]
    with run_simulator(SimConfig(seed=5, output_tokens=60, rpm=6000, tpm=10_000_000)) as url:
        assert generate(run, url, *args, "--n", "20", "--dry-run") == 0
        expected, low, high = _projected(capsys.readouterr().out)
        assert low < expected < high  # nothing measured: the assumed range of yields
        assert generate(run, url, *args, "--n", "20") == 0
        capsys.readouterr()
        # No --rpm/--tpm: the limits come from the headers the first run saw.
        assert generate(run, url, *args, "--n", "200", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "RPM 6,000 and TPM 10,000,000, learned from the server's headers in an earlier run of this folder" in out
    expected, low, high = _projected(out)
    assert low <= expected <= high
    assert "kept from" in out and "measured in this run folder" in out
