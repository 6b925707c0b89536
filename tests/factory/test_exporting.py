"""`python -m factory export` and `factory.export`: every format, as JSONL and as Parquet, loaded back
with the `datasets` library (`load_dataset("json" | "parquet", ...)`) with the columns the trainers
read; TRL's own checks where TRL is installed; the messages export trained on by our trainer; the
curated subsets; the dataset card; and the bad inputs, refused before anything is written."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml

import factory
from factory.__main__ import main as factory_main
from factory.engine import Ledger, usd
from factory.exporting import FORMATS
from schemas import Example, LLMCall, RunFolder, Usage

datasets = pytest.importorskip("datasets", reason="the round trips load the exports with datasets: pip install -e '.[dev]'")
pytest.importorskip("pyarrow", reason="Parquet exports need pyarrow: pip install -e '.[export]'")

TURNS = [{"role": "user", "content": "What is LoRA?"}, {"role": "assistant", "content": "A low-rank update."},
         {"role": "user", "content": "And its rank?"}, {"role": "assistant", "content": "Often 8 or 16."}]
COLUMNS = {"messages": ["messages"], "alpaca": ["instruction", "input", "output", "system", "history"],
           "sharegpt": ["conversations"], "prompt-completion": ["prompt", "completion"]}


def write_run(root: Path, n: int = 12) -> Path:
    """Kept examples (single-turn with a system text and an input, Korean, one conversation in the
    `messages` shape), rejections, a ledger, the settings a generate run records, a curation."""
    run = RunFolder(root)
    root.mkdir(parents=True)
    rows = []
    for i in range(n):
        rows.append({"id": f"ex-{i}", "instruction": f"Explain idea {i}." if i % 2 else f"생각 {i}을 설명하세요.",
                     "input": "Some context." if i % 3 == 0 else "", "output": f"Idea {i} is simple, step by step.",
                     "system": "Be brief." if i % 4 == 0 else "", "lang": "en" if i % 2 else "ko",
                     "provenance": {"recipe": "self-instruct", "model": "gpt-4o-mini", "seed_ids": ["s1"],
                                    "request_key": f"{i // 2:064x}", "cost_usd": 0.0002}})
    rows.append({"id": "ex-chat", "instruction": TURNS[0]["content"], "input": "", "output": TURNS[1]["content"],
                 "system": "You are a tutor.", "lang": "en", "messages": TURNS,
                 "provenance": {"recipe": "conversation", "model": "gpt-4o-mini", "cost_usd": None}})
    run.examples.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    reasons = ["duplicate", "duplicate", "contamination", "length", "refusal"]
    run.rejected.write_text("".join(json.dumps({"id": f"r{k}", "reason": r}) + "\n" for k, r in enumerate(reasons)))
    with Ledger(run.ledger) as ledger:
        ledger.record([LLMCall(key=f"g{k}", stage="self-instruct", model="gpt-4o-mini", status="done",
                               usage=Usage(input_tokens=100, output_tokens=50), cost_usd=0.001) for k in range(7)]
                      + [LLMCall(key="j0", stage="judge", model="gpt-4o", status="done", cost_usd=0.02)])
    run.write_config_section("generate", {"recipe": "self-instruct", "seeds": "examples/seed_tasks_en.jsonl",
                                          "eval": ["evalsets/en.jsonl", "evalsets/ko.jsonl"], "lang": "en"})
    run.write_config_section("engine", {"model": "gpt-4o-mini"})
    run.write_config_section("dedup", {"threshold": 0.55, "shingle_size": 3, "text": "instruction", "index": "bands"})
    run.write_config_section("filters", {"lang": "en", "min_instruction_chars": 5, "disabled": ["refusal"]})
    scores = run.curation_scores("judge-v1")
    scores.parent.mkdir(parents=True)
    lines = [{"example_id": r["id"], "curation": "judge-v1", "status": "scored", "judge_model": "gpt-4o",
              "rubric_version": "v1", "criteria": {"helpfulness": 1 + k % 5}, "overall": 1 + (k % 9) / 2,
              "rationale": "ok", "cost_usd": 0.0001} for k, r in enumerate(rows)]
    lines[-1] |= {"status": "skipped", "overall": None, "criteria": {}, "error": "prefilter: too short"}
    scores.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(tmp_path_factory.mktemp("export") / "run")


def load(path: Path, cache: Path):
    kind = "parquet" if path.suffix == ".parquet" else "json"
    return datasets.load_dataset(kind, data_files=str(path), split="train", cache_dir=str(cache))


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_loads_back_with_datasets(run: Path, tmp_path: Path, fmt: str, suffix: str) -> None:
    out = factory.export(run, format=fmt, out=tmp_path / "data" / f"train{suffix}")
    assert out.rows == 13 == out.kept and out.columns == tuple(COLUMNS[fmt]) and out.card == tmp_path / "data" / "README.md"
    ds = load(out.path, tmp_path / "cache")
    assert ds.column_names == COLUMNS[fmt] and ds.num_rows == 13
    first, chat = ds[0], ds[12]  # ex-0: a system text and an input; ex-chat: two turns
    if fmt == "messages":
        assert first["messages"] == [{"role": "system", "content": "Be brief."},
                                     {"role": "user", "content": "생각 0을 설명하세요.\n\nSome context."},
                                     {"role": "assistant", "content": "Idea 0 is simple, step by step."}]
        assert chat["messages"] == [{"role": "system", "content": "You are a tutor."}, *TURNS]
        assert [m["role"] for m in ds[1]["messages"]] == ["user", "assistant"]  # no empty system message
    elif fmt == "alpaca":
        assert (first["instruction"], first["input"], first["system"], first["history"]) == (
            "생각 0을 설명하세요.", "Some context.", "Be brief.", [])
        assert (chat["instruction"], chat["output"], chat["history"]) == (
            "And its rank?", "Often 8 or 16.", [["What is LoRA?", "A low-rank update."]])
    elif fmt == "sharegpt":
        assert [t["from"] for t in chat["conversations"]] == ["system", "human", "gpt", "human", "gpt"]
        assert chat["conversations"][3]["value"] == "And its rank?"
    else:
        assert [m["role"] for m in chat["prompt"]] == ["system", "user", "assistant", "user"]
        assert chat["completion"] == [TURNS[3]]
        assert first["completion"] == [{"role": "assistant", "content": "Idea 0 is simple, step by step."}]


@pytest.mark.parametrize("fmt", ["messages", "prompt-completion"])
def test_the_conversational_exports_are_what_trl_reads(run: Path, tmp_path: Path, fmt: str) -> None:
    """TRL's SFTTrainer takes a `messages` column, or `prompt` and `completion`, each a list of
    {role, content} messages (its conversational types): checked with TRL's own functions."""
    data_utils = pytest.importorskip("trl.data_utils", reason="TRL is in the bench extra: pip install -e '.[bench]'")
    ds = load(factory.export(run, format=fmt, out=tmp_path / "train.jsonl").path, tmp_path / "cache")
    for row in ds:
        assert data_utils.is_conversational(row)
    from trainer.tiny import build_tiny
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(build_tiny(tmp_path / "tiny"))
    row = {k: v for k, v in ds[1].items()}  # the tiny model's template takes no system message
    rendered = data_utils.apply_chat_template(row, tokenizer)
    assert ("text" if fmt == "messages" else "completion") in rendered


def test_our_trainer_takes_the_messages_export_back(run: Path, tmp_path: Path) -> None:
    import trainer
    from trainer.data import load_examples
    from trainer.tiny import build_tiny

    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(f"ex-{i}" for i in range(12)) + "\n")  # the single-turn ones
    out = factory.export(run, format="messages", out=tmp_path / "back" / "train.jsonl", ids=ids)
    back = load_examples(out.path)
    originals = {e["id"]: e for e in map(json.loads, RunFolder(run).examples.read_text(encoding="utf-8").splitlines())}
    assert len(back) == 12
    for got, want in zip(back, (originals[f"ex-{i}"] for i in range(12)), strict=True):
        prompt = want["instruction"] + (f"\n\n{want['input']}" if want["input"] else "")
        assert (got.system, got.prompt(), got.output) == (want["system"], prompt, want["output"])
    trained = trainer.train(tmp_path / "trained", data=str(out.path), model=str(build_tiny(tmp_path / "tiny")),
                            max_steps=2, token_budget=256, max_len=256, eval_fraction=0.0, eval_every=0,
                            checkpoint_every=0, progress="line")
    assert trained.step == 2 and trained.adapter_dir.is_dir()


def test_a_conversation_row_goes_back_as_the_schema_allows(run: Path, tmp_path: Path) -> None:
    from trainer.data import load_examples

    out = factory.export(run, format="messages", out=tmp_path / "train.jsonl")
    if "messages" in Example.model_fields:  # multi-turn examples in schemas: the turns come back
        chat = load_examples(out.path)[-1]
        assert chat.system == "You are a tutor." and [m.content for m in chat.messages] == [t["content"] for t in TURNS]
    else:
        with pytest.raises(ValueError, match="row 13: a conversation of 4 messages"):
            load_examples(out.path)


def test_a_curated_selection_and_a_list_of_ids(run: Path, tmp_path: Path) -> None:
    out = factory.export(run, format="alpaca", out=tmp_path / "best.jsonl", curation="judge-v1", min_score=4)
    kept = [json.loads(x) for x in (tmp_path / "best.jsonl").read_text(encoding="utf-8").splitlines()]
    assert out.rows == len(kept) == 3  # the overall scores are 1 + (k % 9) / 2: 4 or more for k = 6, 7, 8
    assert [r["instruction"] for r in kept] == ["생각 6을 설명하세요.", "Explain idea 7.",
                                                "생각 8을 설명하세요."]
    assert "curation 'judge-v1' scored with an overall score of 4 or more" in out.selection
    card = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert f"exported: 3 ({out.selection})" in card
    every = factory.export(run, format="alpaca", out=tmp_path / "scored" / "t.jsonl", curation="judge-v1")
    assert every.rows == 12  # every example the curation scored: not the one it skipped
    ids = tmp_path / "ids.txt"
    ids.write_text("# two of them\nex-3\n\nex-chat\n")
    out = factory.export(run, format="sharegpt", out=tmp_path / "two" / "t.parquet", ids=ids)
    assert out.rows == 2 and "the 2 ids of ids.txt" in out.selection


def test_the_dataset_card(run: Path, tmp_path: Path) -> None:
    out = factory.export(run, format="messages", out=tmp_path / "train.parquet")
    text = out.card.read_text(encoding="utf-8")
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "train.parquet"}]}]
    assert meta["size_categories"] == ["n<1K"] and meta["language"] == ["en", "ko"]
    assert "text-generation" in meta["task_categories"] and "license" not in meta
    for line in ("| source model | `gpt-4o-mini` |", "| recipe | `self-instruct` |", "- kept by the run: 13",
                 "- exported: 13 (all kept examples)",
                 "- rejected by the run: 5 (duplicate 2, contamination 1, length 1, refusal 1)",
                 "exact Jaccard similarity of 0.55 or more", "`en.jsonl`, `ko.jsonl`", "switched off: refusal",
                 "- dropped as near-duplicates: 2; as contamination: 1",
                 f"- generation: {usd(0.007)} over 7 requests, {usd(0.007 / 13)} per kept example",
                 f"every stage: generation, answers, judging): {usd(0.027)}",
                 f"shares of their requests: {usd(12 * 0.0002)} (1 exported examples have no recorded cost)",
                 f"Exported on {dt.datetime.now(dt.timezone.utc).date().isoformat()}",
                 'load_dataset("parquet", data_files="train.parquet", split="train")'):
        assert line in body, line


def test_bad_input_is_refused_before_anything_is_written(run: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o" / "train.jsonl"
    cases = [
        (["--format", "csv", "--out", str(out)],
         "unknown format 'csv': use one of messages, alpaca, sharegpt, prompt-completion"),
        (["--format", "messages", "--out", str(tmp_path / "o" / "train.csv")], "name a .jsonl or a .parquet file"),
        (["--format", "messages", "--out", str(out), "--min-score", "3"], "--min-score needs --curation NAME"),
        (["--format", "messages", "--out", str(out), "--curation", "nope"], "no curation 'nope'"),
        (["--format", "messages", "--out", str(out), "--curation", "judge-v1", "--min-score", "9"],
         "holds none of the 13 kept examples"),
    ]
    for args, message in cases:
        assert factory_main(["export", "--run", str(run), *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
    # A file that exists: refused unless --force; so is another export's card in the same folder.
    assert factory_main(["export", "--run", str(run), "--format", "messages", "--out", str(out)]) == 0
    capsys.readouterr()
    assert factory_main(["export", "--run", str(run), "--format", "alpaca", "--out", str(out)]) == 2
    assert "exists; pass --force to replace it" in capsys.readouterr().err
    assert json.loads(out.read_text(encoding="utf-8").splitlines()[0]).keys() == {"messages"}  # untouched
    assert factory_main(["export", "--run", str(run), "--format", "alpaca", "--out", str(out.with_name("b.jsonl"))]) == 2
    assert "README.md exists (the card of another export?)" in capsys.readouterr().err
    assert factory_main(["export", "--run", str(run), "--format", "alpaca", "--out", str(out), "--force"]) == 0
    assert "instruction" in json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert sorted(p.name for p in out.parent.iterdir()) == ["README.md", "train.jsonl"]  # no temporary file left


def test_a_run_with_nothing_kept(tmp_path: Path) -> None:
    with pytest.raises(factory.ExportError, match="no run folder"):
        factory.export(tmp_path / "none", format="messages", out=tmp_path / "x.jsonl")
    (tmp_path / "empty").mkdir()
    RunFolder(tmp_path / "empty").examples.write_text("")
    with pytest.raises(factory.ExportError, match=r"has no kept examples .* generate some first"):
        factory.export(tmp_path / "empty", format="messages", out=tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()


def test_an_example_that_cannot_be_written_stops_the_export_whole(run: Path, tmp_path: Path) -> None:
    bad = write_run(tmp_path / "bad", n=2)
    folder = RunFolder(bad)
    with folder.examples.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"id": "ex-odd", "instruction": "x", "output": "y",
                            "messages": [{"role": "assistant", "content": "y"}, {"role": "user", "content": "x"}]}) + "\n")
    # Named by the export, or by schemas' Example where it holds multi-turn examples itself.
    with pytest.raises(factory.ExportError, match=r"ex-odd: its messages must alternate|examples.jsonl:4: .*alternate"):
        factory.export(bad, format="sharegpt", out=tmp_path / "out" / "t.jsonl")
    assert not (tmp_path / "out").exists()
