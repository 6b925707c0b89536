"""Curation: grade a run's training data with an LLM and keep the best (`python -m judge curate`).

rubric (criteria, the prompt, the schema, the strict reading of a reply) and signals (what costs
nothing: lengths, loops, duplicate clusters; the prefilter) -> items (one per kept example, and
what an earlier run left) -> the judge's grading rounds (judge.grading.rounds) -> selection (the
best as a run folder of its own); run.py puts them together, settings.py holds `[curate]`.
The report's curation section is judge/reports/curation.py.
"""
