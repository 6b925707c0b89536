"""The conversation recipe: a first turn from topics' stages, then follow-ups that build on the last
answer, until an example of `turns` user turns; turns filtered, whole conversations deduplicated,
a crash between a result and its bookkeeping repaired without a turn added twice; and the whole
run against the simulator, dry run included."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from test_recipes import answer, build, close, plan

from factory.__main__ import main
from factory.engine import Ledger
from factory.recipes.conversation import FOLLOWUPS, _text_followup
from factory.recipes.driver import Driver
from factory.recipes.textparse import ParseError
from factory.simulator import SimConfig, run_simulator
from schemas import Example, Rejected, RunFolder, read_jsonl

QUESTIONS = [{"keyword": "rent", "question": "How much deposit is usual when renting a flat?"},
             {"keyword": "home loans", "question": "What is a fixed-rate home loan?"}]
ANSWERS = {"answer_1": "Usually one or two months' rent, held by the landlord.",
           "answer_2": "A loan whose interest rate stays the same for an agreed number of years."}


def first_turns(tmp_path: Path, **settings):
    """A recipe whose two questions are asked, kept and answered: two conversations open."""
    recipe, ctx = build(tmp_path, "conversation", keywords_per_request=2, questions_per_keyword=1,
                        answers_per_request=2, assumed_yield=1.0, **settings)
    driver = Driver(recipe, ctx)
    q = recipe.request(plan(recipe))
    driver.finish(answer(q, json.dumps({"questions": QUESTIONS})))
    a_entry = plan(recipe)
    assert a_entry.stage == "answers"
    driver.finish(answer(recipe.request(a_entry), json.dumps(ANSWERS), cost=0.004))
    return recipe, ctx, driver


def followup(question: str, reply: str) -> str:
    return json.dumps({"question": question, "answer": reply})


def test_a_follow_up_builds_on_the_last_answer_and_the_conversation_becomes_an_example(tmp_path):
    recipe, ctx, driver = first_turns(tmp_path, n=2, turns=3)
    assert ctx.outputs.kept == 0  # first turns open conversations; they are not examples yet
    entry = plan(recipe)
    assert entry.stage == FOLLOWUPS and entry.meta["turn"] == 2
    request = recipe.request(entry)
    prompt = request.messages[-1]["content"]
    assert "How much deposit is usual when renting a flat?" in prompt and ANSWERS["answer_1"] in prompt
    assert request.params["response_format"]["json_schema"]["schema"]["required"] == ["question", "answer"]
    driver.finish(answer(request, followup("Can the landlord keep the deposit for small repairs?",
                                           "Only for damage beyond normal wear, and it must be itemised."), cost=0.002))
    third = recipe.request(plan(recipe))  # the other conversation's turn 2 comes next, then this one's turn 3
    assert json.loads(json.dumps(third.messages))[-1]["content"].count("[User]") == 1
    turn3 = recipe.request(plan(recipe))
    assert "Only for damage beyond normal wear" in turn3.messages[-1]["content"]
    driver.finish(answer(turn3, followup("What counts as normal wear, say for a carpet?",
                                         "Light fading and flattening in walkways; stains and burns do not."), cost=0.002))
    close(ctx)
    [example] = read_jsonl(RunFolder(tmp_path / "run").examples, Example)
    assert [m.role for m in example.messages] == ["user", "assistant"] * 3
    assert example.instruction == QUESTIONS[0]["question"] and example.output == ANSWERS["answer_1"]
    assert example.messages[4].content == "What counts as normal wear, say for a carpet?"
    p = example.provenance
    assert p.recipe == "conversation" and len(p.followup_request_keys) == 2
    assert p.cost_usd == pytest.approx(0.003 / 2 + 0.004 / 2 + 0.002 + 0.002)  # its shares, then its own turns


def test_a_turn_that_fails_a_filter_closes_its_conversation_with_the_reason(tmp_path):
    recipe, ctx, driver = first_turns(tmp_path, n=2)
    entry = plan(recipe)
    driver.finish(answer(recipe.request(entry), followup("Why?", "I'm sorry, but I can't help with that.")))
    other = plan(recipe)
    driver.finish(answer(recipe.request(other), "not json at all"))
    close(ctx)
    rejected = read_jsonl(RunFolder(tmp_path / "run").rejected, Rejected)
    assert Counter((r.model_extra or {}).get("stage") for r in rejected) == Counter({FOLLOWUPS: 2})
    assert {r.reason for r in rejected} >= {"parse"} and len(rejected) == 2
    assert not RunFolder(tmp_path / "run").examples.exists() or not read_jsonl(RunFolder(tmp_path / "run").examples, Example)
    assert all(c.closed for c in recipe.conversations.values())


def test_a_result_handled_again_after_a_crash_adds_no_turn_twice(tmp_path):
    recipe, ctx, driver = first_turns(tmp_path, n=2)
    entry = plan(recipe)
    result = answer(recipe.request(entry), followup("And if the flat is furnished?", "Then the deposit is often higher."))
    recipe.handle(entry, result)  # handled, but the journal never heard (a crash before mark_processed)
    close(ctx)
    recipe2, ctx2 = build(tmp_path, "conversation", keywords_per_request=2, questions_per_keyword=1,
                          answers_per_request=2, assumed_yield=1.0, n=2)
    assert [e.index for e in ctx2.journal.unprocessed()] == [entry.index]  # the driver sends it again
    Driver(recipe2, ctx2).finish(answer(recipe2.request(entry), result.call.content))
    close(ctx2)
    examples = read_jsonl(RunFolder(tmp_path / "run").examples, Example)
    assert len(examples) == 1 and len(examples[0].messages) == 4


def test_matching_follow_ups_are_fine_but_a_near_copy_of_a_whole_conversation_is_dropped(tmp_path):
    recipe, ctx, driver = first_turns(tmp_path, n=2)
    short = followup("Is it the same everywhere?", "No; it depends on the region and on the contract.")
    long_reply = ("Check who pays for repairs and how fast they must be done. Read the notice period for both sides "
                  "and whether it changes after the first year. Ask where the deposit is held and how it is returned. "
                  "Look at the inventory with photographs, room by room, and sign it only when it matches the flat. "
                  "Find out which bills are included, whether pets or subletting are allowed, and what happens if "
                  "the owner sells. Keep every message in writing, note the meter readings on the day you move in, "
                  "and ask a tenants' association when a clause seems unusual or one-sided.")
    driver.finish(answer(recipe.request(plan(recipe)), short))
    driver.finish(answer(recipe.request(plan(recipe)), short))  # the same follow-up turn in another conversation
    assert ctx.outputs.kept == 2
    recipe2, ctx2, driver2 = first_turns(tmp_path / "again", n=2)
    for _ in range(2):  # now the follow-ups dominate: the two conversations are near-copies as a whole
        driver2.finish(answer(recipe2.request(plan(recipe2)), followup("What should I check?", long_reply)))
    close(ctx)
    close(ctx2)
    assert ctx2.outputs.kept == 1
    (dup,) = read_jsonl(RunFolder(tmp_path / "again" / "run").rejected, Rejected)
    assert dup.reason == "duplicate" and dup.id.startswith("cv-")


def test_the_text_format_of_a_follow_up():
    assert _text_followup("[Question]\nWhy so?\n[Answer]\nBecause.", "en") == ("Why so?", "Because.")
    assert _text_followup("[질문]\n왜 그런가요?\n[답변]\n그렇기 때문입니다.", "ko") == ("왜 그런가요?", "그렇기 때문입니다.")
    with pytest.raises(ParseError, match=r"\[Question\]"):
        _text_followup("Sure! Here is a follow-up.", "en")


def test_against_the_simulator_every_example_has_its_turns_and_a_rerun_pays_nothing_twice(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    keywords = tmp_path / "keywords.txt"
    keywords.write_text("전세 계약\n청약 통장\n", encoding="utf-8")
    run = tmp_path / "runs" / "c"
    with run_simulator(SimConfig(seed=1)) as url:
        args = ["generate", "--run", str(run), "--recipe", "conversation", "--seeds", str(keywords),
                "--model", "gpt-4o-mini", "--base-url", url, "--no-progress", "--turns", "3"]
        assert main([*args, "--n", "5", "--dry-run"]) == 0
        assert not run.exists()
        assert main([*args, "--n", "5"]) == 0
        assert main([*args, "--n", "5"]) == 0  # done: nothing more is asked
    examples = read_jsonl(RunFolder(run).examples, Example)
    assert len(examples) >= 5 and len({e.id for e in examples}) == len(examples)
    assert all([m.role for m in e.messages] == ["user", "assistant"] * 3 and e.lang == "ko" for e in examples)
    with Ledger.for_run(run) as ledger:
        stages = Counter(c.stage for c in ledger.calls())
    assert set(stages) - {"probe"} == {"questions", "answers", FOLLOWUPS}  # and the structured-output probe
    assert stages[FOLLOWUPS] >= 2 * len(examples)


def test_through_the_batch_api_stage_by_stage(tmp_path, monkeypatch):
    from factory.simulator.batches import BatchSimConfig

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    keywords = tmp_path / "keywords.txt"
    keywords.write_text("home loans\nrenting a flat\n", encoding="utf-8")
    run = tmp_path / "runs" / "b"
    with run_simulator(SimConfig(seed=3), BatchSimConfig(seconds=0.1)) as url:
        assert main(["generate", "--run", str(run), "--recipe", "conversation", "--seeds", str(keywords), "--n", "4",
                     "--model", "gpt-4o-mini", "--base-url", url, "--no-progress", "--batch", "--batch-poll", "0.02",
                     "--batch-poll-max", "0.05", "--max-cost", "1"]) == 0
    examples = read_jsonl(RunFolder(run).examples, Example)
    assert len(examples) >= 4 and all(len(e.messages) == 4 and e.lang == "en" for e in examples)
    with Ledger.for_run(run) as ledger:
        assert all(c.batch for c in ledger.calls(stage=FOLLOWUPS)) and ledger.spent_usd(FOLLOWUPS) > 0
