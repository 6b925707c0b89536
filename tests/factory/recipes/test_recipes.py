"""Recipes without a server: what they ask for, and what they make of every kind of answer
(structured, text, cut short, refused, processed twice), with the results built by hand."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import anyio
import pytest

from factory.quality import DedupSettings
from factory.engine import ChatResult
from factory.quality.filters import FilterSettings
from factory.generation import Resolved, build_recipe
from factory.recipes.seeds import detect_lang
from factory.engine import wants_structured
from factory.recipes.base import StageYield, YieldWindow, per_request_range
from factory.recipes.driver import Driver
from factory.recipes.journal import Journal
from factory.recipes.naver import NaverSettings
from factory.recipes.settings import GenerateSettings
from factory.engine.settings import EngineSettings
from factory.recipes.topics import KeptQuestion
from schemas import Example, Instance, LLMCall, Rejected, SeedTask, Usage, read_jsonl

SEEDS = [
    SeedTask(id=f"s{i}", instruction=text, instances=[Instance(input="", output=f"answer {i}")])
    for i, text in enumerate([
        "Write a limerick about a forgetful cat.", "Explain why the sky looks blue at noon.",
        "List four ways to reduce food waste at home.", "Translate 'good morning' into French.",
        "Classify these animals as mammals or birds: bat, owl, whale.",
    ])
]


def build(tmp_path: Path, recipe: str = "self-instruct", *, structured: bool = True, lang: str = "en",
          seeds=None, **settings):
    gen = GenerateSettings(recipe=recipe, seeds=tmp_path / "seeds", n=settings.pop("n", 50), lang=lang, **settings)
    seeds = seeds if seeds is not None else (SEEDS if recipe == "self-instruct" else ["home loans", "rent"])
    resolved = Resolved(run=tmp_path / "run", gen=gen, engine=EngineSettings(model="gpt-4o-mini"), dedup=DedupSettings(),
                        filters=FilterSettings(lang=lang), naver=NaverSettings(), batch=None, seeds=seeds, eval_items=[],
                        lang=lang, structured=structured)
    return build_recipe(resolved, dry_run=False)


def answer(request, content, *, finish="stop", cost=0.003, error=None) -> ChatResult:
    call = LLMCall(key=request.key, stage=request.stage, model=request.model, status="done", content=content,
                   finish_reason=finish, cost_usd=cost, usage=Usage(input_tokens=100, output_tokens=50), error=error)
    return ChatResult(request, call, cached=False)


def plan(recipe):
    return anyio.run(recipe.next_request)


def tasks_json(*tasks) -> str:
    return json.dumps({"tasks": [{"instruction": i, "input": inp, "output": o} for i, inp, o in tasks]})


def close(ctx):
    ctx.journal.close()
    ctx.outputs.close()


def test_self_instruct_prompt_shows_seeds_then_generated_tasks_and_asks_for_json(tmp_path):
    recipe, ctx = build(tmp_path, seed_examples=2, generated_examples=1, tasks_per_request=6)
    entry = plan(recipe)
    request = recipe.request(entry)
    user = request.messages[-1]["content"]
    assert "Come up with 6 new tasks" in user and '{"tasks": [' in user
    assert sum(s.instruction in user for s in SEEDS) == 3, "generated places are filled with seeds at first"
    assert request.params["response_format"]["json_schema"]["strict"] is True
    assert request.params["max_tokens"] == 2400 and request.params["seed"] == entry.index
    Driver(recipe, ctx).finish(answer(request, tasks_json(("Name three rivers in Africa.", "", "Nile, Congo, Niger."))))
    later = recipe.request(plan(recipe))
    assert "Name three rivers in Africa." in later.messages[-1]["content"]
    assert entry.meta["seed_ids"] and later.key != request.key
    close(ctx)


def test_the_same_index_renders_the_same_prompt(tmp_path):
    recipe, ctx = build(tmp_path)
    assert recipe.render(7) == recipe.render(7) and recipe.render(7) != recipe.render(8)
    close(ctx)


def test_structured_answers_become_examples_with_their_cost_share(tmp_path):
    recipe, ctx = build(tmp_path)
    entry = plan(recipe)
    request = recipe.request(entry)
    content = tasks_json(("Describe a sunrise over the sea in two sentences.", "", "The sea turns gold..."),
                         ("Sort the numbers in ascending order.", "5, 2, 9", "2, 5, 9"),
                         ("Describe a sunrise over the sea in two sentences!", "", "Dupe."),
                         ("Look at the attached image and describe it.", "", "It shows..."))
    outcome = recipe.handle(entry, answer(request, content, cost=0.004))
    assert (outcome.kept, outcome.candidates) == (2, 4)
    assert outcome.reasons == Counter({"duplicate": 1, "unsupported": 1})
    close(ctx)
    examples = read_jsonl(tmp_path / "run" / "examples.jsonl", Example)
    assert [e.input for e in examples] == ["", "5, 2, 9"]
    assert all(e.provenance.cost_usd == pytest.approx(0.001) and e.provenance.request_key == request.key for e in examples)
    rejected = {r.reason: r for r in read_jsonl(tmp_path / "run" / "rejected.jsonl", Rejected)}
    assert rejected["duplicate"].detail.startswith(f"duplicate of {examples[0].id} (similarity")


def test_an_answer_cut_short_keeps_its_complete_tasks(tmp_path):
    recipe, ctx = build(tmp_path)
    entry = plan(recipe)
    cut = tasks_json(("Give two synonyms for happy.", "", "Glad, cheerful."),
                     ("Write a haiku about winter.", "", "Snow on the branches"))[:-30]
    outcome = recipe.handle(entry, answer(recipe.request(entry), cut, finish="length"))
    assert (outcome.kept, outcome.reasons) == (1, Counter({"truncated": 1}))
    close(ctx)


def test_text_mode_parses_alpaca_format_and_rejects_the_cut_last_task(tmp_path):
    recipe, ctx = build(tmp_path, structured=False)
    entry = plan(recipe)
    request = recipe.request(entry)
    assert "response_format" not in request.params and "1. Instruction:" in request.messages[-1]["content"]
    text = ("###\n1. Instruction: Suggest a name for a bakery.\n1. Input: <noinput>\n1. Output: Rise & Shine.\n###\n"
            "2. Instruction: Convert 3 km to miles.\n2. Input:\n2. Output: About 1.86")
    outcome = recipe.handle(entry, answer(request, text, finish="length"))
    assert (outcome.kept, outcome.reasons) == (1, Counter({"truncated": 1}))
    close(ctx)


def test_a_refusal_or_garbage_is_one_parse_rejection_and_processing_twice_writes_nothing_new(tmp_path):
    recipe, ctx = build(tmp_path)
    first, second = plan(recipe), plan(recipe)
    refused = answer(recipe.request(first), None, error="refusal: I can't help with that")
    assert recipe.handle(first, refused).reasons == Counter({"parse": 1})
    good = answer(recipe.request(second), tasks_json(("Name a prime number above 50.", "", "53.")))
    assert recipe.handle(second, good).kept == 1
    assert recipe.handle(second, good).candidates == 0, "a request processed again adds nothing"
    assert recipe.handle(first, refused).candidates == 0
    close(ctx)
    assert len(read_jsonl(tmp_path / "run" / "examples.jsonl", Example)) == 1
    [r] = read_jsonl(tmp_path / "run" / "rejected.jsonl", Rejected)
    assert r.reason == "parse" and "refusal" in r.detail


def test_a_failed_request_stays_unprocessed_for_the_rerun(tmp_path):
    recipe, ctx = build(tmp_path)
    driver = Driver(recipe, ctx)
    entry = plan(recipe)
    request = recipe.request(entry)
    call = LLMCall(key=request.key, stage=request.stage, model=request.model, status="failed", error="500 x6")
    driver.finish(ChatResult(request, call, cached=False))
    assert driver.report.failed == 1 and driver._unprocessed() == []  # not again in this run
    close(ctx)
    with Journal(tmp_path / "run" / "generate" / "requests.jsonl") as journal:
        assert [e.index for e in journal.unprocessed()] == [entry.index]  # but in the next


def test_topics_questions_then_answers(tmp_path):
    recipe, ctx = build(tmp_path, "topics", keywords_per_request=2, questions_per_keyword=2, answers_per_request=2,
                        n=2, assumed_yield=1.0)
    driver = Driver(recipe, ctx)
    q_entry = plan(recipe)
    assert q_entry.stage == "questions"
    q_request = recipe.request(q_entry)
    schema = q_request.params["response_format"]["json_schema"]["schema"]
    keywords = schema["properties"]["questions"]["items"]["properties"]["keyword"]["enum"]
    assert sorted(keywords) == ["home loans", "rent"]
    questions = [{"keyword": "rent", "question": "How much deposit is usual when renting a flat?"},
                 {"keyword": "rent", "question": "How much deposit is usual when renting a flat??"},
                 {"keyword": "home loans", "question": "What is a fixed-rate home loan?"},
                 {"keyword": "home loans", "question": "Show me a photo of a typical loan contract."}]
    driver.finish(answer(q_request, json.dumps({"questions": questions}), cost=0.002))
    assert ctx.outputs.rejected_now == Counter({"questions: duplicate": 1, "questions: unsupported": 1})
    a_entry = plan(recipe)
    assert a_entry.stage == "answers" and len(a_entry.meta["questions"]) == 2
    a_request = recipe.request(a_entry)
    assert a_request.params["response_format"]["json_schema"]["schema"]["required"] == ["answer_1", "answer_2"]
    assert "1. How much deposit is usual when renting a flat?" in a_request.messages[-1]["content"]
    driver.finish(answer(a_request, json.dumps({"answer_1": "Usually one or two months' rent.", "answer_2": ""}),
                         cost=0.004))
    assert ctx.outputs.kept == 1 and ctx.outputs.rejected_now["parse"] == 1
    close(ctx)
    [example] = read_jsonl(tmp_path / "run" / "examples.jsonl", Example)
    kept_q = {q.id: q for q in read_jsonl(tmp_path / "run" / "generate" / "questions.jsonl", KeptQuestion)}
    q = kept_q[example.provenance.question_id]
    assert example.instruction == q.text and example.provenance.seed_ids == ["rent"]
    assert example.provenance.cost_usd == pytest.approx(0.004 / 2 + 0.002 / 4)


def test_topics_keywords_come_round_again_with_their_earlier_questions(tmp_path):
    recipe, ctx = build(tmp_path, "topics", keywords_per_request=2, seeds=["a-word", "b-word"])
    driver = Driver(recipe, ctx)
    first = plan(recipe)
    driver.finish(answer(recipe.request(first), json.dumps(
        {"questions": [{"keyword": "a-word", "question": "What does a-word mean in daily speech?"}]})))
    messages, meta = recipe.render_questions(1)
    assert "What does a-word mean in daily speech?" in messages[-1]["content"] and "already written" in messages[-1]["content"]
    close(ctx)


def test_structured_output_by_model_name():
    assert wants_structured("auto", "gpt-4o-mini") and wants_structured("auto", "gpt-4.1") and wants_structured("auto", "my-vllm-model")
    assert not wants_structured("auto", "gpt-4-turbo") and not wants_structured("auto", "gpt-3.5-turbo")
    assert not wants_structured("auto", "gpt-4o-2024-05-13")
    assert wants_structured("yes", "gpt-4-turbo") and not wants_structured("no", "gpt-4o")


def test_the_yield_window_names_the_reasons():
    window = YieldWindow(3, 0.1)
    window.add(0, 5, Counter({"duplicate": 4, "parse": 1}))
    window.add(0, 5, Counter({"duplicate": 5}))
    assert window.collapsed() is None, "not judged before the window is full"
    window.add(1, 5, Counter({"language": 4}))
    why = window.collapsed()
    assert why is not None and "kept 1 of 15" in why and "duplicate 9, language 4, parse 1" in why
    window.add(5, 5, Counter())
    assert window.collapsed() is None


def test_language_of_the_seeds():
    assert detect_lang(["전세 계약을 할 때 확인할 서류는? (checklist)"]) == "ko"
    assert detect_lang(["Explain LTV and DSR"]) == "en"


def test_the_range_of_kept_per_request_carries_the_spread_between_replies():
    # Every candidate kept, so the kept share's interval alone is narrow; replies of one to five
    # items make the mean per request uncertain, and the range must say so.
    uneven = [1, 5, 1, 5, 1, 5, 1, 5, 1, 5]
    y = StageYield(requests=10, candidates=30, kept=30, counts=uneven)
    low, high = per_request_range(y, 5, (0.5, 0.95))
    share_only = per_request_range(StageYield(requests=10, candidates=30, kept=30), 5, (0.5, 0.95))
    assert low < share_only[0] and high > share_only[1]
    assert low < 3.0 - 1.2 and high > 3.0 + 1.2  # two standard errors of the mean each side
    even = per_request_range(StageYield(requests=10, candidates=30, kept=30, counts=[3] * 10), 5, (0.5, 0.95))
    assert even == share_only


def test_the_journal_keeps_what_each_processed_request_added(tmp_path):
    path = tmp_path / "requests.jsonl"
    with Journal(path) as j:
        entries = [j.plan("self-instruct", [{"role": "user", "content": str(i)}], {}) for i in range(3)]
        j.mark_processed(entries[0], "k0", kept=4)
        j.mark_processed(entries[2], "k2", kept=1)
    again = Journal(path, write=False)
    assert again.kept_counts("self-instruct") == [4, 1]
    assert again.kept_counts("answers") == []


def test_an_empty_question_in_a_reply_that_parsed_is_empty_not_parse(tmp_path):
    # A grammar-constrained reply (llama.cpp's json_object with the schema) always parses, yet may
    # hold an empty string where the question goes: that is the `empty` gate's, not a parse failure.
    recipe, ctx = build(tmp_path, "topics", keywords_per_request=2, seeds=["home loans", "rent"])
    driver = Driver(recipe, ctx)
    request = recipe.request(plan(recipe))
    driver.finish(answer(request, json.dumps({"questions": [
        {"keyword": "rent", "question": "  "}, {"keyword": "rent", "question": "Is a deposit refundable?"},
        {"keyword": "rent"}]})))
    assert ctx.outputs.rejected_now == Counter({"questions: empty": 1, "questions: parse": 1})
    close(ctx)
