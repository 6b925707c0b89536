"""Every stage's records of a run, gathered for the data page: kept examples (with their provenance),
rejected ones (with the request's model and cost from the ledger), the answers of every label to
every question (with single scores, pairwise verdicts and the judge's rationales), and the scores
of each curation of the examples.

Texts go in as they are: the page's script puts them in the page as text, never as markup.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from factory import FactoryError
from factory.engine import Ledger, usd
from factory.exporting import CurationScore, example_messages
from judge.errors import ViewerError
from judge.reports.data_page.tables import Lines, Table
from schemas import (
    Answer,
    EvalSetError,
    Judgment,
    Question,
    RunFolder,
    load_questions,
)

def _money(value: float | None) -> str | None:
    return None if value is None else usd(value)


def examples_table(examples: Lines, scores_of: dict[str, dict[str, CurationScore]]) -> dict[str, Any]:
    t = Table(["id", "lang", "recipe", "model", "system", "instruction", "input", "output", "turns", "seeds", "key",
               "cost", "cost_text", "len"], coded=("lang", "recipe", "model", "system", "key", "cost_text"))
    for e in examples.records:
        p = e.provenance
        try:
            messages = example_messages(e)
        except FactoryError as err:
            raise ViewerError(f"{err}; fix that line of examples.jsonl, then view again") from None
        turns = [m["content"] for m in messages if m["role"] != "system"]
        t.add({"id": e.id, "lang": e.lang or None, "recipe": p.recipe if p else None, "model": p.model if p else None,
               "system": e.system or None, "instruction": e.instruction, "input": e.input, "output": e.output,
               # multi-turn: every turn, user first; a single-turn example is its three fields
               "turns": turns if len(turns) > 2 else None,
               "seeds": " ".join(p.seed_ids) if p and p.seed_ids else None, "key": (p.request_key or None) if p else None,
               "cost": p.cost_usd if p else None, "cost_text": _money(p.cost_usd) if p else None,
               "len": sum(len(x) for x in turns)})
    return t.as_data(**examples.info(), curations=sorted(scores_of))


def _ledger_calls(run: RunFolder, keys: set[str]) -> dict[str, tuple[str, float | None]]:
    """request key -> (model, cost) for the keys asked, from the ledger (read only when it exists)."""
    if not keys or not run.ledger.is_file():
        return {}
    out = {}
    with Ledger(run.ledger) as ledger:
        for key in keys:
            call = ledger.get(key)
            if call is not None:
                out[key] = (call.model, call.cost_usd)
    return out


def rejected_table(run: RunFolder, rejected: Lines) -> dict[str, Any]:
    calls = _ledger_calls(run, {r.request_key for r in rejected.records if r.request_key})
    t = Table(["id", "reason", "detail", "text", "key", "model", "cost", "cost_text", "len"],
              coded=("reason", "key", "model", "cost_text"))
    for r in rejected.records:
        model, cost = calls.get(r.request_key, (None, None))
        t.add({"id": r.id, "reason": r.reason, "detail": r.detail, "text": r.text, "key": r.request_key or None,
               "model": model, "cost": cost, "cost_text": _money(cost), "len": len(r.text)})
    return t.as_data(**rejected.info())


def curation_table(name: str, scores: Iterable[CurationScore]) -> dict[str, Any]:
    scores = list(scores)
    criteria = sorted({c for s in scores for c in s.criteria})
    t = Table(["id", "status", "overall", "judge", "rubric", "why", "error", "cost", "cost_text",
               *(f"c.{c}" for c in criteria)], coded=("status", "judge", "rubric", "cost_text"))
    for s in scores:
        t.add({"id": s.example_id, "status": s.state, "overall": s.overall, "judge": s.judge_model or None,
               "rubric": s.rubric_version or None, "why": s.rationale, "error": s.error, "cost": s.cost_usd,
               "cost_text": _money(s.cost_usd), **{f"c.{c}": s.criteria.get(c) for c in criteria}})
    return t.as_data(name=name, criteria=criteria)


def _question_files(run: RunFolder) -> list[Path]:
    """The question files the run's answers and judgments were made from (config.toml records them)."""
    config = run.read_config()
    found: list[Any] = []
    for section in config.get("answer", {}).values():
        if isinstance(section, dict):
            found.append(section.get("questions"))
    found.append(config.get("judge", {}).get("questions"))
    paths: list[Path] = []
    for item in found:
        for value in item if isinstance(item, list) else [item]:
            if isinstance(value, str) and Path(value) not in paths:
                paths.append(Path(value))
    return paths


def _questions(run: RunFolder, notes: list[str]) -> dict[str, Question]:
    out: dict[str, Question] = {}
    for path in _question_files(run):
        if not path.is_file():
            notes.append(f"question file {path} not found: its questions show their id only")
            continue
        try:
            for q in load_questions(path):
                out.setdefault(q.question_id, q)
        except EvalSetError as e:
            notes.append(f"{e}: its questions show their id only")
    return out


def answers_table(run: RunFolder, answers: list[Answer], judgments: list[Judgment], notes: list[str]) -> dict[str, Any]:
    """Per question: its turns, each label's answers, the single scores and the pairwise verdicts."""
    questions = _questions(run, notes)
    order = list(dict.fromkeys([a.question_id for a in answers] + [j.question_id for j in judgments]))
    labels = list(dict.fromkeys(a.model for a in answers))
    by_q: dict[str, dict[str, Any]] = {}
    for qid in order:
        q = questions.get(qid)
        by_q[qid] = {"id": qid, "category": q.category if q else None, "lang": (q.lang or None) if q else None,
                     "turns": list(q.turns) if q else None, "reference": q.reference if q else None,
                     "answers": {}, "single": [], "pair": []}
    for a in answers:
        by_q[a.question_id]["answers"][a.model] = list(a.turns)
    for j in judgments:
        row = {"turn": j.turn, "judge": j.judge_model, "status": j.status, "why": j.rationale,
               "error": j.error, "cost": _money(j.cost_usd)}
        if j.mode == "pair":
            by_q[j.question_id]["pair"].append({**row, "model": j.model, "baseline": j.baseline, "winner": j.winner,
                                                "consistent": getattr(j, "consistent", None)})
        else:
            by_q[j.question_id]["single"].append({**row, "model": j.model, "mode": j.mode, "score": j.score})
        if by_q[j.question_id]["category"] is None and isinstance(getattr(j, "category", None), str):
            by_q[j.question_id]["category"] = j.category  # judgments carry the question's category too
    pairs = list(dict.fromkeys((j.baseline, j.model) for j in judgments if j.mode == "pair" and j.baseline))
    return {"labels": labels, "questions": list(by_q.values()), "pairs": [list(p) for p in pairs]}


__all__ = ["answers_table", "curation_table", "examples_table", "rejected_table"]
