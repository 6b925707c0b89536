"""The cost report's files: report/cost.md, its charts, and the "cost" key of report/summary.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.cost.charts import draw_cost_charts
from factory.cost.markdown import render_cost_markdown
from factory.cost.totals import build_cost
from schemas import RunFolder


@dataclass
class CostReport:
    cost_md: Path
    summary_json: Path
    charts: list[Path] = field(default_factory=list)
    cost: dict[str, Any] = field(default_factory=dict)


def write_cost_report(run: Path) -> CostReport:
    cost = build_cost(run)
    folder = RunFolder(run)
    folder.report_dir.mkdir(parents=True, exist_ok=True)
    charts = draw_cost_charts(cost, folder.report_dir)
    cost["charts"] = [c.name for c in charts]
    folder.cost_md.write_text(render_cost_markdown(cost, charts), encoding="utf-8")
    summary = folder.merge_summary("cost", cost)
    return CostReport(cost_md=folder.cost_md, summary_json=summary, charts=charts, cost=cost)
