"""Helpers of the compare tests (this module holds no tests): run folders whose answers carry a
marker of their model (`[#1]` ..., the baseline's `[#0]`) for the planted judge to read."""

from __future__ import annotations

from pathlib import Path

from judge_fakes import load_questions

from schemas import Answer, Question, write_jsonl

PLANTED = {"1": -0.7, "2": 0.1, "3": 0.9}  # marker -> theta against the baseline (marker "0")
RUNS = {"1": "weak", "2": "mid", "3": "strong"}


def some_questions(n_en: int, n_ko: int) -> list[Question]:
    qs = load_questions()
    return [q for q in qs if q.lang == "en"][:n_en] + [q for q in qs if q.lang == "ko"][:n_ko]


def _text(q: Question, marker: str, reps: int) -> str:
    unit = " 답변입니다." if q.lang == "ko" else " An answer."
    return f"[#{marker}]" + unit * reps  # the marker has no letters: it does not change the Hangul share


def make_runs(tmp: Path, questions: list[Question], english_in_korean: str | None = None) -> list[Path]:
    runs = []
    for marker, name in RUNS.items():
        run = tmp / "runs" / name
        answers = []
        for q in questions:
            own = [_text(q, marker, 2 + int(marker)) for _ in q.turns]
            if marker == english_in_korean and q.lang == "ko":
                own = [f"[#{marker}] Sorry, I answer in English only." for _ in q.turns]
            answers.append(Answer(question_id=q.question_id, model="lora", turns=own))
            answers.append(Answer(question_id=q.question_id, model="base", turns=[_text(q, "0", 3) for _ in q.turns]))
        write_jsonl(run / "eval" / "answers.jsonl", answers)
        runs.append(run)
    write_jsonl(tmp / "questions.jsonl", questions)
    return runs
