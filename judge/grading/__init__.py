"""Grading a run's answers with an LLM judge, through the factory engine (`python -m judge grade`).

settings (the `[judge]` table) -> inputs (answers, questions, what is left to grade) -> plan (the
items a mode asks for, each with its prompt from prompts) -> rounds (what each round sends through
the engine or the Batch API, and what a reply makes of an item) -> parse (a verdict or an unreadable
reply, never a guess) -> verdicts (`schemas.Judgment` records); run.py puts them together.
The comparison of several runs (judge/compare/) reuses all of it.
"""
