"""The evol recipe (Evol-Instruct): what an evolve request asks, the elimination rules as named
reasons before any answer is paid for, provenance back to the parent, and the whole run against
the simulator from a run's kept examples."""

from __future__ import annotations

import json
from collections import Counter

from test_recipes import SEEDS, answer, build, close, plan

from factory.__main__ import main
from factory.engine import Ledger
from factory.recipes.driver import Driver
from factory.recipes.evol import EVOLVE, KINDS, _text_items
from factory.simulator import SimConfig, run_simulator
from schemas import Example, Rejected, RunFolder, read_jsonl


def evolved(*items: tuple[str, str]) -> str:
    return json.dumps({"instructions": [{"id": i, "instruction": t} for i, t in items]})


def test_an_evolve_request_names_each_parent_and_its_evolution(tmp_path):
    recipe, ctx = build(tmp_path, "evol", seeds=SEEDS, evolve_per_request=3)
    entry = plan(recipe)
    assert entry.stage == EVOLVE and len(entry.meta["keywords"]) == 3
    assert all(k in KINDS for k in entry.meta["kinds"])
    request = recipe.request(entry)
    prompt = request.messages[-1]["content"]
    for pid in entry.meta["keywords"]:
        assert f"[{pid}]" in prompt and recipe.parents[pid].instruction in prompt
    schema = request.params["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["instructions"]["items"]["properties"]["id"]["enum"] == entry.meta["keywords"]
    # a parent's next turn asks for the next kind
    later = [recipe.kind_of(entry.meta["keywords"][0], r) for r in range(len(KINDS))]
    assert sorted(later) == sorted(KINDS)
    close(ctx)


def test_the_elimination_rules_drop_before_any_answer_is_paid_and_provenance_names_the_parent(tmp_path):
    recipe, ctx = build(tmp_path, "evol", seeds=SEEDS, evolve_per_request=4, answers_per_request=4, n=1, assumed_yield=1.0)
    driver = Driver(recipe, ctx)
    entry = plan(recipe)
    ids = entry.meta["keywords"]
    parent = {i: recipe.parents[i].instruction for i in ids}
    reply = evolved(
        (ids[0], parent[ids[0]] + " Please."),  # the parent again
        (ids[1], "#Rewritten Prompt#: " + parent[ids[1]] + " in under fifty words"),  # the prompt's own words
        (ids[2], "Explain, step by step, why the midday sky looks blue but sunsets look red, citing Rayleigh scattering."),
        (ids[3], "Show me a photo of a limerick about a forgetful cat."),  # a filter's (unsupported)
    )
    driver.finish(answer(recipe.request(entry), reply))
    reasons = Counter(r.reason for r in read_jsonl(RunFolder(tmp_path / "run").rejected, Rejected))
    assert reasons["no_gain"] == 1 and reasons["prompt_copy"] == 1 and reasons["unsupported"] == 1
    a_entry = plan(recipe)
    assert a_entry.stage == "answers" and len(a_entry.meta["questions"]) == 1  # only the one that gained
    driver.finish(answer(recipe.request(a_entry), json.dumps({"answer_1": "Sunlight scatters off air molecules ..."})))
    close(ctx)
    [example] = read_jsonl(RunFolder(tmp_path / "run").examples, Example)
    p = example.provenance
    assert p.recipe == "evol" and p.parent_id == ids[2] and p.evolution == entry.meta["kinds"][2]
    assert p.seed_ids == [ids[2]]


def test_the_text_format_of_evolved_instructions():
    assert _text_items("[Instruction 1]\nDo A harder.\n[Instruction 2]\nDo B harder.", ["a", "b"]) == [
        ("a", "Do A harder."), ("b", "Do B harder.")]
    assert _text_items("[지시 1]\n더 어렵게.", ["x", "y"]) == [("x", "더 어렵게.")]


def test_from_a_runs_kept_examples_against_the_simulator(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    first = tmp_path / "runs" / "first"
    RunFolder(first).examples.parent.mkdir(parents=True)
    RunFolder(first).examples.write_text("".join(
        json.dumps({"id": s.id, "instruction": s.instruction, "output": "an answer"}) + "\n" for s in SEEDS))
    run = tmp_path / "runs" / "evolved"
    with run_simulator(SimConfig(seed=5)) as url:
        args = ["generate", "--run", str(run), "--recipe", "evol", "--seeds", str(RunFolder(first).examples),
                "--n", "6", "--model", "gpt-4o-mini", "--base-url", url, "--no-progress", "--lang", "en"]
        assert main([*args, "--dry-run"]) == 0
        assert main(args) == 0
    examples = read_jsonl(RunFolder(run).examples, Example)
    assert len(examples) >= 6
    parents = {s.id for s in SEEDS}
    assert all(e.provenance.parent_id in parents and e.provenance.evolution in KINDS for e in examples)
    with Ledger.for_run(run) as ledger:
        assert {c.stage for c in ledger.calls()} - {"probe"} == {EVOLVE, "answers"}


def test_only_the_evolving_prompts_own_labels_count_as_a_copy():
    from factory.recipes.evol import _PROMPT_WORDS

    assert _PROMPT_WORDS.search("#Rewritten Prompt#: list three rivers") and _PROMPT_WORDS.search("The given prompt asks")
    assert _PROMPT_WORDS.search("재작성된 프롬프트: 세 강을 나열하세요")
    assert not _PROMPT_WORDS.search("Write a new prompt for an image generator that draws a lighthouse at dusk.")
