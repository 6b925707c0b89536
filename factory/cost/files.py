"""The cost report's files: report/cost.md, its charts, and the "cost" key of report/summary.json."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.cost.charts import draw_cost_charts
from factory.cost.markdown import render_cost_markdown
from factory.cost.reading import ReportError
from factory.cost.totals import build_cost

REPORT_DIR = "report"
SUMMARY_FILE = "summary.json"


@dataclass
class CostReport:
    cost_md: Path
    summary_json: Path
    charts: list[Path] = field(default_factory=list)
    cost: dict[str, Any] = field(default_factory=dict)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def merge_summary(path: Path, key: str, value: Any) -> None:
    """Set `key` of the JSON object at `path`, keeping its other keys (other reports'); atomic."""
    current: dict[str, Any] = {}
    if path.exists():
        try:
            current = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ReportError(f"{path} is not valid JSON ({e}); fix or remove it, then rerun the report") from None
        if not isinstance(current, dict):
            raise ReportError(f"{path} holds a JSON {type(current).__name__}, not an object; fix or remove it")
    current[key] = _json_safe(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(current, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_cost_report(run: Path) -> CostReport:
    cost = build_cost(run)
    out_dir = run / REPORT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = draw_cost_charts(cost, out_dir)
    cost["charts"] = [c.name for c in charts]
    md = out_dir / "cost.md"
    md.write_text(render_cost_markdown(cost, charts), encoding="utf-8")
    summary = out_dir / SUMMARY_FILE
    merge_summary(summary, "cost", cost)
    return CostReport(cost_md=md, summary_json=summary, charts=charts, cost=cost)
