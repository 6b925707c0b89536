"""Generation recipes: how seeds become prompts, and model answers become examples.

- seeds.py          the files a run starts from: seed tasks, keywords, evaluation questions
- self_instruct.py  seed tasks -> new tasks (Stanford Alpaca / Self-Instruct)
- topics.py         keywords -> questions -> answers (the Korean tutorial's method), with
                    optional grounding from the Naver Search API (naver.py)
- base.py           the Recipe interface, the gate every example passes (filters.py, then dedup),
                    yield measurements; driver.py runs a recipe online or through the Batch API
- journal.py        the planned requests of a run, so a rerun sends exactly the same ones again
- templates.py      the editable prompt files in factory/prompts/<lang>/
- imported.py       existing data sets (Alpaca JSON, Q&A JSONL) as examples, filtered and deduplicated
The `generate` command (factory/commands/generate.py, over factory/generation.py) puts them together;
`import` (factory/commands/importer.py) uses imported.py.
"""

