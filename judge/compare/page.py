"""The comparison's reports: compare.json (every figure), compare.md and compare.html.

The page is one file: inline CSS and inline SVG, no script and nothing fetched, so it opens from
disk anywhere. Every figure cell carries `data-model` and `data-field` (the key in compare.json),
so a test can check the page against the JSON it was made from.
"""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from typing import Any

from judge.compare.report_md import COST_PARTS, cost_text, fmt, markdown, shared_text
from judge.reports.intervals import METHOD_TEXT
from schemas import CompareFolder

_CSS = """
body{font:13.5px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1280px;color:#1d2330;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#5a6372;margin:0 0 12px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:5px 7px;border-bottom:1px solid #e3e6ec;text-align:right;white-space:nowrap}
th{background:#f4f6f9;font-weight:600;font-size:12px;color:#3b4352;white-space:normal;vertical-align:bottom}
.scroll{overflow-x:auto}
td.name,th.name{text-align:left}
tr.baseline td{color:#5a6372;font-style:italic}
.bar{vertical-align:middle}
.note{color:#5a6372;font-size:12.5px}
.matrix td{text-align:center}.matrix td.name,.matrix th.name{text-align:left}
.matrix th{font-size:11.5px}
.basis{color:#8a5a00;font-size:11.5px}
.grid{display:grid;grid-template-columns:auto minmax(0,1fr);gap:28px}
@media (max-width:900px){.grid{grid-template-columns:1fr}}
"""


def _cell(value: Any, field: str, model: str, kind: str) -> str:
    return f'<td data-model="{escape(model)}" data-field="{field}">{escape(fmt(value, kind))}</td>'


def _cost_cell(r: dict[str, Any], part: str | None) -> str:
    field = "cost.total_usd" if part is None else f"cost.{dict(COST_PARTS)[part]}"
    text = cost_text(r["cost"], part) if r.get("cost") else fmt(None, "usd")
    figure, _, basis = text.partition(" ")
    tag = f' <span class="basis">{escape(basis)}</span>' if basis else ""
    return f'<td data-model="{escape(r["name"])}" data-field="{field}">{escape(figure)}{tag}</td>'


def _interval_svg(r: dict[str, Any], width: int = 130) -> str:
    """The score and its interval on a 0-100 axis, with the baseline's 50 marked."""
    if r.get("score") is None:
        return ""
    def x(v: float) -> float:
        return 4 + (width - 8) * v / 100
    return (f'<svg class="bar" width="{width}" height="14" role="img" aria-label="interval">'
            f'<line x1="{x(50):.1f}" y1="0" x2="{x(50):.1f}" y2="14" stroke="#b9c0cc" stroke-dasharray="2,2"/>'
            f'<line x1="{x(r["score_low"]):.1f}" y1="7" x2="{x(r["score_high"]):.1f}" y2="7" stroke="#3465a4" stroke-width="3"/>'
            f'<circle cx="{x(r["score"]):.1f}" cy="7" r="4" fill="#1f3f73"/></svg>')


_COLUMNS = [  # (field, header, kind)
    ("score", "score", "pct"), ("score_low", "low", "pct"), ("score_high", "high", "pct"),
    ("win", "win", "share"), ("tie", "tie", "share"), ("loss", "loss", "share"),
    ("raw_win_rate", "raw win rate", "pct"), ("lc_win_rate", "LC win rate", "pct"),
    ("mean_length", "mean length, chars", "int"), ("wrong_language_rate", "wrong language", "share"),
    ("unscored", "unscored", "int"), ("cost.total_usd", "cost", "usd"), ("usd_per_point", "$ / point", "usd"),
]


def _get(r: dict[str, Any], field: str) -> Any:
    value: Any = r
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _leaderboard(result: dict[str, Any]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for _, h, _ in _COLUMNS)
    rows = []
    for r in result["models"]:
        cells = "".join(_cost_cell(r, None) if f == "cost.total_usd" else _cell(_get(r, f), f, r["name"], k)
                        for f, _, k in _COLUMNS)
        cls = ' class="baseline"' if r["is_baseline"] else ""
        rows.append(f'<tr{cls}><td>{r["rank"]}</td><td class="name">{escape(r["name"])}</td>'
                    f"<td>{_interval_svg(r)}</td>{cells}</tr>")
    return (f'<div class="scroll"><table id="leaderboard"><tr><th>#</th><th class="name">model</th>'
            f'<th>score, 95% interval</th>{head}</tr>' + "".join(rows) + "</table></div>")


def _costs(result: dict[str, Any]) -> str:
    """Each model's cost by part, "shared" or "not used" beside a figure where that is its basis."""
    rows = []
    for r in result["models"]:
        if not r.get("cost"):
            continue
        shared = shared_text(r["cost"])
        cells = "".join(_cost_cell(r, part) for part, _ in COST_PARTS) + _cost_cell(r, None)
        rows.append(f'<tr><td class="name">{escape(r["name"])}</td>{cells}<td class="name note">{escape(shared)}</td></tr>')
    head = "".join(f"<th>{escape(part)}</th>" for part, _ in COST_PARTS)
    return (f'<div class="scroll"><table id="costs"><tr><th class="name">model</th>{head}<th>total</th>'
            '<th class="name">shared with (same run)</th></tr>' + "".join(rows) + "</table></div>"
            '<p class="note">Each run\'s ledger is split per label where the run\'s files tell which label a request '
            "served (answers by their request keys or the endpoint's model, the run's judging by its judgments, data "
            "and training by the labels that answered with the run's adapter). <i>shared</i>: the files cannot tell, "
            "so each label that may have used it is charged the whole of it; <i>not used</i>: the label did not use "
            "it (the base model never saw the generated data nor the training).</p>")


def _chart(result: dict[str, Any], width: int = 560, height: int = 340) -> str:
    """Score (with its interval) against total cost, one point per model with a known cost."""
    pts = [r for r in result["models"] if not r["is_baseline"] and r.get("score") is not None
           and _get(r, "cost.total_usd") is not None]
    if not pts:
        return '<p class="note">No model has a known cost, so there is no chart (see the cost column).</p>'
    left, right, top, bottom = 56, 16, 12, 44
    step = _nice_step(max(_get(r, "cost.total_usd") for r in pts) * 1.1 / 4)
    xmax = 4 * step
    lo = min(min(r["score_low"] for r in pts), 50.0)
    hi = max(max(r["score_high"] for r in pts), 50.0)
    ystep = _nice_step((hi - lo + 4) / 5)
    ylo, yhi = max(0.0, ystep * math.floor((lo - 2) / ystep)), min(100.0, ystep * math.ceil((hi + 2) / ystep))

    def sx(v: float) -> float:
        return left + (width - left - right) * v / xmax

    def sy(v: float) -> float:
        return top + (height - top - bottom) * (1 - (v - ylo) / (yhi - ylo))

    parts = [f'<svg id="score-cost" width="{width}" height="{height}" role="img" aria-label="score against cost">',
             f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" fill="#fafbfc" stroke="#d6dae1"/>',
             f'<line x1="{left}" x2="{width - right}" y1="{sy(50):.1f}" y2="{sy(50):.1f}" stroke="#9aa3b2" stroke-dasharray="4,3"/>',
             f'<text x="{width - right - 4}" y="{sy(50) - 4:.1f}" font-size="11" text-anchor="end" fill="#5a6372">baseline 50</text>']
    v = ylo
    while v <= yhi + 1e-9:
        parts.append(f'<text x="{left - 6}" y="{sy(v) + 4:.1f}" font-size="11" text-anchor="end">{v:g}</text>')
        v += ystep
    for i in range(5):
        c = step * i
        label = f"${c:.2f}" if step < 1 else f"${c:,.0f}"
        parts.append(f'<text x="{sx(c):.1f}" y="{height - bottom + 16}" font-size="11" text-anchor="middle">{label}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 8}" font-size="12" text-anchor="middle">'
                 "total cost (USD)</text>")
    parts.append(f'<text transform="translate(14,{(top + height - bottom) / 2}) rotate(-90)" font-size="12" '
                 'text-anchor="middle">score vs baseline (%)</text>')
    for r in pts:
        x, name = sx(_get(r, "cost.total_usd")), escape(r["name"])
        right_half = x > left + 0.6 * (width - left - right)  # label on the left side there, inside the frame
        tx, anchor = (x - 8, "end") if right_half else (x + 8, "start")
        parts.append(f'<g data-model="{name}"><line x1="{x:.1f}" x2="{x:.1f}" y1="{sy(r["score_low"]):.1f}" '
                     f'y2="{sy(r["score_high"]):.1f}" stroke="#3465a4" stroke-width="2"/>'
                     f'<circle cx="{x:.1f}" cy="{sy(r["score"]):.1f}" r="5" fill="#1f3f73"/>'
                     f'<text x="{tx:.1f}" y="{sy(r["score"]) - 6:.1f}" font-size="11" text-anchor="{anchor}">{name}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _nice_step(raw: float) -> float:
    """1, 2, 2.5 or 5 times a power of ten, at least `raw` (axis ticks at round amounts)."""
    if raw <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def _shade(p: float | None) -> str:
    if p is None:
        return "#eceff3"
    t = max(-1.0, min(1.0, (p - 50) / 50))
    return f"rgba(46,125,50,{t * 0.75:.2f})" if t >= 0 else f"rgba(198,40,40,{-t * 0.75:.2f})"


def _matrix(result: dict[str, Any]) -> str:
    players, m = result["pairwise"]["players"], result["pairwise"]["win_probability"]
    head = "".join(f'<th>{escape(p)}</th>' for p in players)
    rows = []
    for a, row in zip(players, m, strict=True):
        cells = "".join(f'<td style="background:{_shade(v)}" data-model="{escape(a)}" data-field="pairwise:{escape(b)}">'
                        f'{escape(fmt(v, "pct"))}</td>' for b, v in zip(players, row, strict=True))
        rows.append(f'<tr><th class="name">{escape(a)}</th>{cells}</tr>')
    return (f'<table class="matrix" id="pairwise"><tr><th class="name">P(row beats column), %</th>{head}</tr>'
            + "".join(rows) + "</table>")


def _categories(result: dict[str, Any]) -> str:
    names, scores = result["categories"]["names"], result["categories"]["scores"]
    if not names:
        return '<p class="note">No scored comparison yet.</p>'
    head = "".join(f"<th>{escape(c)}</th>" for c in names)
    rows = []
    for r in result["models"]:
        if r["name"] not in scores:
            continue
        cells = "".join(f'<td style="background:{_shade(scores[r["name"]].get(c))}" data-model="{escape(r["name"])}" '
                        f'data-field="category:{escape(c)}">{escape(fmt(scores[r["name"]].get(c), "pct"))}</td>' for c in names)
        rows.append(f'<tr><td class="name">{escape(r["name"])}</td>{cells}</tr>')
    return f'<table class="matrix" id="categories"><tr><th class="name">model</th>{head}</tr>' + "".join(rows) + "</table>"


def html_page(result: dict[str, Any]) -> str:
    s, g = result["settings"], result["grading"]
    meta = (f"judge {escape(result['judge_model'])} · baseline {escape(result['baseline'])} · {result['questions']} questions · "
            f"{g['scored']} of {g['planned']} comparisons scored ({g['unscored']} unscored, {g['missing']} not graded) · "
            f"{escape(result['created'])}")
    method = (f"Scores: Bradley-Terry fit over every verdict (both orders; a strong verdict weighs {s['strong_weight']:g}, "
              f"a tie is half a win), as the win probability against the baseline; {s['confidence']:.0%} intervals from "
              f"{s['bootstrap_rounds']} bootstrap rounds over questions (both turns and orders together; "
              f"{METHOD_TEXT.get(s.get('interval_method', ''), 'percentile')}). LC win rate: a logistic regression on the "
              "answers' length difference and each question's difficulty, read at equal length and averaged over the "
              "questions (AlpacaEval 2 style; length only where noted). Wrong language: "
              f"an answer to a Korean question with under {s['hangul_threshold']:.0%} Hangul letters; "
              + ("counted as a loss." if s["wrong_language"] == "loss" else "flagged only, the verdicts stand.")
              + " Cost: the run's ledger (data, endpoint answers, judging) plus this comparison's grading"
              + (f", plus training at ${s['gpu_hour_usd']:g} per GPU-hour" if s["gpu_hour_usd"] is not None else "")
              + "; $ / point: cost per percentage point of score over the baseline's 50.")
    notes = "".join(f"<li>{escape(n)}</li>" for n in result["notes"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Comparison against {escape(result['baseline'])}</title>
<style>{_CSS}</style></head><body>
<h1>Leaderboard against {escape(result['baseline'])}</h1>
<p class="meta">{meta}</p>
{_leaderboard(result)}
<p class="note">{escape(method)}</p>
<div class="grid"><div><h2>Score against cost</h2>{_chart(result)}</div>
<div><h2>Pairwise win probability</h2>{_matrix(result)}</div></div>
<h2>Score by category</h2>{_categories(result)}
<h2>Cost by part</h2>{_costs(result)}
{f'<h2>Notes</h2><ul class="note">{notes}</ul>' if notes else ''}
</body></html>
"""


def write_reports(out: Path, result: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    texts = {"json": json.dumps(result, indent=2, ensure_ascii=False, allow_nan=False) + "\n",
             "md": markdown(result), "html": html_page(result)}
    for kind, path in CompareFolder(out).reports.items():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(texts[kind], encoding="utf-8")
        tmp.replace(path)


def parse_figure(text: str) -> float | None:
    """A figure as the page shows it, back to a number ('-' is None); for tests and readers."""
    t = text.strip().split(" ")[0] if text.strip() else ""  # a basis after the figure ("shared") is no number
    t = t.replace("$", "").replace("%", "").replace(",", "")
    if t in ("-", ""):
        return None
    v = float(t)
    return v if math.isfinite(v) else None
