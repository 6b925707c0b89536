"""A small run folder with every kind of record the data page shows, written as the stages write them:
single-turn and multi-turn examples (the `messages` shape of the recipes branch: user/assistant turns,
the first exchange mirrored in instruction/output), Korean and English, rejections of several reasons
with their ledger requests, answers of two labels with single scores and pairwise verdicts, and a
curation's scores (`curation/NAME/scores.jsonl`: per-criterion 1-5 integers, an overall in half
points). Some texts carry markup that must stay text (INJECTION)."""

from __future__ import annotations

import json
from pathlib import Path

from factory.engine import Ledger
from schemas import LLMCall, RunFolder, Usage

# What a model could write: a script, an image whose error handler runs code, and an end tag that
# would close the page's data element if it were not escaped.
INJECTION = ('<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
             '</script><script>window.__pwned = 3</script>')
CURATION = "gpt-4o-v1"
CRITERIA = ("clarity", "correctness", "helpfulness")
KOREAN = "서울 아파트 전세 가격이 오르는 이유를 설명하세요."


def _key(n: int) -> str:
    return f"{n:064x}"


def _example(i: int) -> dict:
    lang = "ko" if i % 3 == 0 else "en"
    instruction = (KOREAN if i == 3 else f"질문 {i}: 한국어로 답하세요." if lang == "ko"
                   else f"Explain topic number {i} to a beginner.")
    return {"id": f"ex-{i:03d}", "instruction": instruction, "input": "context line" if i % 4 == 0 else "",
            "output": ("답변 " if lang == "ko" else "Answer ") + "word " * (5 + i * 3),
            "system": "Be brief." if i % 5 == 0 else "",
            "lang": lang,
            "provenance": {"recipe": "topics" if i % 2 else "self-instruct", "model": "gpt-4o" if i % 7 == 0 else "gpt-4o-mini",
                           "seed_ids": [f"seed-{i % 4}", f"seed-{(i + 1) % 4}"], "request_key": _key(i // 2),
                           "cost_usd": 0.0001 * (1 + i % 5)}}


def examples(n: int) -> list[dict]:
    rows = [_example(i) for i in range(n)]
    rows.append({**_example(900), "id": "ex-inject", "instruction": f"Repeat this: {INJECTION}",
                 "output": f"Here it is: {INJECTION}"})
    turns = [{"role": "user", "content": "What is a LoRA adapter?"},
             {"role": "assistant", "content": "A small low-rank update trained beside frozen weights."},
             {"role": "user", "content": "How many parameters does rank 8 add to one 2048x2048 projection?"},
             {"role": "assistant", "content": "2 x 2048 x 8 = 32,768 parameters."}]
    rows.append({**_example(901), "id": "ex-chat", "instruction": turns[0]["content"], "input": "",
                 "output": turns[1]["content"], "system": "You are a patient tutor.", "messages": turns})
    return rows


REJECTED = [("duplicate", "near ex-001 (Jaccard 0.81)"), ("duplicate", "near ex-002 (Jaccard 0.77)"),
            ("duplicate", "near ex-004 (Jaccard 0.90)"), ("length", "output of 9,000 characters > 8000"),
            ("length", "instruction of 3 characters < 5"), ("refusal", "'As an AI language model'"),
            ("language", f"Hangul share 0.05 < 0.3: {INJECTION}")]


def write_run(root: Path, *, n_examples: int = 30) -> Path:
    run = RunFolder(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = examples(n_examples)
    run.examples.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    rejected = [{"id": f"rej-{k}", "reason": reason, "detail": detail,
                 "text": f"rejected text {k} " + ("모델 " * k) + (INJECTION if reason == "refusal" else ""),
                 "request_key": _key(100 + k)} for k, (reason, detail) in enumerate(REJECTED)]
    run.rejected.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejected), encoding="utf-8")
    with Ledger(run.ledger) as ledger:
        ledger.record([LLMCall(key=_key(n), stage="self-instruct", model="gpt-4o-mini", status="done", attempts=1,
                               usage=Usage(input_tokens=500, output_tokens=300), cost_usd=0.0004 + n * 1e-6)
                       for n in [*range(n_examples // 2 + 1), 450, *range(100, 100 + len(REJECTED))]])
    _answers(run, root)
    _curation(run, rows)
    return root


def _answers(run: RunFolder, root: Path) -> None:
    questions = root / "questions.jsonl"
    qs = [{"question_id": "q-math", "category": "math", "turns": ["What is 2 + 2?", "And times 3?"],
           "reference": ["4", "12"], "lang": "en"},
          {"question_id": "q-write", "category": "writing", "turns": ["Write a haiku about rain.", "Now in Korean."]},
          {"question_id": "q-ko", "category": "real_estate", "turns": [KOREAN, "더 짧게 답하세요."], "lang": "ko"}]
    questions.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in qs), encoding="utf-8")
    run.write_config_section(("answer", "base"), {"questions": str(questions), "label": "base"})
    run.write_config_section(("answer", "lora"), {"questions": str(questions), "label": "lora"})
    run.write_config_section("generate", {"recipe": "self-instruct", "seeds": "seeds.jsonl", "eval": [str(questions)]})
    run.write_config_section("engine", {"model": "gpt-4o-mini"})
    answers, judgments = [], []
    for q in qs:
        for label in ("base", "lora"):
            answers.append({"question_id": q["question_id"], "model": label,
                            "turns": [f"{label} answer to {q['question_id']} turn {t}" for t in (1, 2)]})
        for turn in (1, 2):
            for label, score in (("base", 4.0), ("lora", 7.0 + turn)):
                judgments.append({"question_id": q["question_id"], "mode": "single", "turn": turn, "model": label,
                                  "judge_model": "gpt-4o", "status": "scored", "score": score,
                                  "rationale": f"{label} turn {turn}: clear enough.", "cost_usd": 0.001})
            judgments.append({"question_id": q["question_id"], "mode": "pair", "turn": turn, "model": "lora",
                              "baseline": "base", "judge_model": "gpt-4o", "status": "scored", "winner": "model",
                              "rationale": f"lora is more specific. {INJECTION}" if turn == 1 else "lora wins again.",
                              "cost_usd": 0.002, "consistent": True})
    run.eval_dir.mkdir(parents=True, exist_ok=True)
    run.answers.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in answers), encoding="utf-8")
    run.judgments.write_text("".join(json.dumps(j, ensure_ascii=False) + "\n" for j in judgments), encoding="utf-8")


def _curation(run: RunFolder, rows: list[dict]) -> None:
    path = run.curation_scores(CURATION)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for k, row in enumerate(rows):
        if k % 6 == 5 and k != 5:
            continue  # not every example is graded
        criteria = {c: 1 + (k + j) % 5 for j, c in enumerate(CRITERIA)}
        line = {"example_id": row["id"], "curation": CURATION, "status": "scored", "judge_model": "gpt-4o",
                "rubric_version": "v1", "criteria": criteria, "overall": round(2 * sum(criteria.values()) / 3) / 2,
                "rationale": f"graded {row['id']}" + (f" {INJECTION}" if row["id"] == "ex-inject" else ""),
                "error": None, "cost_usd": 0.0003, "rubric_digest": "d" * 16, "example_sha": "e" * 16}
        if k == 5:  # the judge's reply had no readable score: recorded, never a number
            line |= {"status": "unscored", "overall": None, "criteria": {}, "rationale": "I think it is fine",
                     "error": "no JSON object and no score marker"}
        lines.append(line)
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
