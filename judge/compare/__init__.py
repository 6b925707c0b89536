"""`python -m judge compare`: several runs graded against one baseline, and a leaderboard of them.

inputs (the runs' answers) -> strength (five-label verdicts) -> run (settings, and grading through
judge.grading's machinery) -> analysis (bt: Bradley-Terry and the bootstrap; winrate: raw and length-controlled;
language: the Hangul check; cost: ledgers and training compute) -> page and report_md (the
reports). The command is judge/commands/compare.py. planted is a judge of known behaviour for the tests, the benchmark and the example.
"""
