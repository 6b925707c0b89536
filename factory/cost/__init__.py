"""The cost report of a run (`python -m factory report`): what it cost and what it kept, from its own files.

Reads (never writes) `RUN/ledger.sqlite`, `RUN/examples.jsonl`, `RUN/rejected.jsonl` and
`RUN/config.toml`; writes `RUN/report/cost.md`, charts beside it (`cost_*.png`) and the "cost"
key of `RUN/report/summary.json` (the keys other reports wrote there are kept).

What it shows: spend by stage and by model; tokens (input, cached input, output, reasoning);
$ per kept example and per 1,000; the funnel generated -> filtered -> deduplicated -> kept with
every rejection reason; requests, HTTP attempts, retries, 429s and latency p50/p95; what the
Batch API saved against online prices; the budget used. Money comes from the ledger, which the
engine filled from each response's `usage`: nothing here is an estimate, and a model without a
price is "unknown", never $0.

- reading.py   the ledger's requests, the kept and rejected examples, the resolved settings
- totals.py    the figures as plain data (summary.json's "cost")
- markdown.py  cost.md, and `seconds()` for every report that shows latency (money: factory.engine.usd)
- charts.py    cost_spend.png, cost_tokens.png, cost_funnel.png
- files.py     writes them all (summary.json through the run folder's `merge_summary`)
"""

from factory.cost.charts import draw_cost_charts
from factory.cost.files import CostReport, write_cost_report
from factory.cost.markdown import render_cost_markdown, seconds
from factory.cost.reading import ReportError
from factory.cost.totals import GENERATION_STAGES, build_cost

__all__ = [
    "GENERATION_STAGES",
    "CostReport",
    "ReportError",
    "build_cost",
    "draw_cost_charts",
    "render_cost_markdown",
    "seconds",
    "write_cost_report",
]
