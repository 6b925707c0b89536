"""The report's curation section: for each curation of the run (RUN/curation/NAME/scores.jsonl),
the histogram of overall grades, the share kept at each bar, the lowest- and highest-rated
examples with the judge's rationales, the cost of grading per 1,000 examples beside the cost of
generating them, and, for each selection written from it that was trained and graded as the
graded run was, the mean single-mode scores side by side (points gained, with intervals, and
dollars of curation per point).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from factory.engine import usd
from factory.exporting import CurationScore
from judge.curation.items import read_done
from judge.curation.rubric import OVERALL
from judge.curation.selection import PROVENANCE
from judge.reports.stats import bootstrap_mean, latest_judgments
from schemas import Example, Judgment, RunFolder, iter_jsonl, read_jsonl

SHOWN = 3  # lowest- and highest-rated examples shown


def curation_summary(run: Path, cost: dict[str, Any] | None) -> list[dict[str, Any]]:
    """summary.json's "curation": one entry per curation that holds scores."""
    folder = RunFolder(run)
    names = folder.curation_names()
    if not names:
        return []
    examples = {ex.id: ex for ex in iter_jsonl(folder.examples, Example)} if folder.examples.is_file() else {}
    generation = (cost or {}).get("generation") or {}
    return [_one(folder, name, examples, generation) for name in names]


def _one(folder: RunFolder, name: str, examples: dict[str, Example], generation: dict[str, Any]) -> dict[str, Any]:
    latest: dict[str, CurationScore] = {}
    for s in read_done(folder.curation_scores(name)):
        latest[s.example_id] = s
    scores = [s for s in latest.values() if s.example_id in examples or not examples]
    scored = [s for s in scores if s.state == "scored" and s.overall is not None]
    spent = sum(s.cost_usd or 0.0 for s in scores)
    graded = sum(1 for s in scores if s.state != "skipped")
    ranked = sorted(scored, key=lambda s: (s.overall, s.example_id))

    def shown(s: CurationScore) -> dict[str, Any]:
        ex = examples.get(s.example_id)
        return {"id": s.example_id, "overall": s.overall, "criteria": s.criteria, "rationale": s.rationale,
                "instruction": ex.instruction[:300] if ex else ""}

    return {
        "name": name,
        "judge_model": next((s.judge_model for s in scores if s.judge_model), ""),
        "rubric_version": next((s.rubric_version for s in scores if s.rubric_version), ""),
        "examples": len(examples) or len(scores),
        "scored": len(scored),
        "unscored": sum(1 for s in scores if s.state == "unscored"),
        "skipped": sum(1 for s in scores if s.state == "skipped"),
        "histogram": {f"{x:g}": sum(1 for s in scored if s.overall == x) for x in OVERALL},
        "kept_at": [{"min": x, "kept": sum(1 for s in scored if s.overall >= x)} for x in OVERALL],
        "lowest": [shown(s) for s in ranked[:SHOWN]],
        "highest": [shown(s) for s in reversed(ranked[-SHOWN:])],
        "cost_usd": spent,
        "usd_per_1000_graded": 1000 * spent / graded if graded else None,
        "generation_usd_per_1000_kept": generation.get("usd_per_1000_kept"),
        "selections": _selections(folder, name, spent),
    }


def _selections(folder: RunFolder, name: str, spent: float) -> list[dict[str, Any]]:
    """The selection folders beside the run written from this curation, and how each did."""
    found = []
    source = str(folder.root.resolve())
    for other in sorted(folder.root.parent.iterdir()) if folder.root.parent.is_dir() else []:
        section = RunFolder(other).config_section(PROVENANCE) if RunFolder(other).config.is_file() else {}
        if section.get("run") != source or section.get("curation") != name:
            continue
        entry = {"folder": other.name, "rule": section.get("rule"), "value": section.get("value"),
                 "kept": section.get("kept"), "compared": _side_by_side(folder, RunFolder(other), spent)}
        found.append(entry)
    return found


def _single_scores(run: RunFolder) -> dict[tuple[str, str], list[tuple[str, float]]]:
    """(label, judge model) -> [(question turn, score)] of the run's scored single-mode judgments."""
    if not run.judgments.is_file():
        return {}
    out: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for j in latest_judgments(read_jsonl(run.judgments, Judgment)):
        if j.mode == "single" and j.status == "scored" and j.score is not None:
            out.setdefault((j.model, j.judge_model), []).append((f"{j.question_id}/{j.turn}", float(j.score)))
    return out


def _side_by_side(graded: RunFolder, selection: RunFolder, spent: float) -> list[dict[str, Any]]:
    """Labels graded in both runs by the same judge: each mean with its interval, and the gain."""
    a, b = _single_scores(graded), _single_scores(selection)
    rows = []
    for key in sorted(a.keys() & b.keys()):
        before = bootstrap_mean([s for _, s in a[key]], [q for q, _ in a[key]])
        after = bootstrap_mean([s for _, s in b[key]], [q for q, _ in b[key]])
        gain = after.value - before.value
        rows.append({"label": key[0], "judge_model": key[1], "uncurated": before.as_dict(), "curated": after.as_dict(),
                     "points_gained": gain, "usd_per_point": spent / gain if gain > 0 else None})
    return rows


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fig(key: str, value: Any, text: str) -> str:
    return f'<span data-figure="{_e(key)}" data-value="{_e(json.dumps(value))}">{_e(text)}</span>'


def _interval(e: dict[str, Any]) -> str:
    return f"{e['value']:.2f} [{e['low']:.2f}, {e['high']:.2f}] (n={e['n']})"


def _bars(histogram: dict[str, int]) -> str:
    """The histogram as a table of bars (no image: the page stays text)."""
    top = max(histogram.values(), default=0) or 1
    rows = "".join(f"<tr><td>{_e(k)}</td><td><span style=\"display:inline-block;background:#4c78a8;height:0.8em;"
                   f"width:{12 * n / top:.2f}em\"></span> {n}</td></tr>" for k, n in histogram.items())
    return f"<table><tr><th>overall</th><th>examples</th></tr>{rows}</table>"


def curation_html(curations: list[dict[str, Any]]) -> str:
    parts = ["<h2>Curation</h2>"]
    for c in curations:
        key = f"curation.{c['name']}"
        per = c["usd_per_1000_graded"]
        gen = c["generation_usd_per_1000_kept"]
        parts.append(f"<h3>{_e(c['name'])} ({_e(c['judge_model'])}, rubric {_e(c['rubric_version'])})</h3><ul>"
                     f"<li>{_fig(key + '.scored', c['scored'], str(c['scored']))} of {c['examples']} examples scored, "
                     f"{_fig(key + '.unscored', c['unscored'], str(c['unscored']))} unscored (no readable grade), "
                     f"{_fig(key + '.skipped', c['skipped'], str(c['skipped']))} skipped by the prefilter</li>"
                     f"<li>grading cost {_fig(key + '.cost_usd', c['cost_usd'], usd(c['cost_usd']))}: "
                     f"{_fig(key + '.usd_per_1000', per, usd(per) if per is not None else 'n/a')} per 1,000 examples, "
                     f"beside {_e(usd(gen) if gen is not None else 'an unknown amount')} per 1,000 kept to generate them"
                     "</li></ul>")
        parts.append(_bars(c["histogram"]))
        scored = c["scored"] or 1
        parts.append("<table><tr><th>keep overall &ge;</th><th>examples kept</th><th>share of scored</th></tr>"
                     + "".join(f"<tr><td>{k['min']:g}</td><td>{k['kept']}</td><td>{k['kept'] / scored:.0%}</td></tr>"
                               for k in c["kept_at"] if k["min"] >= 3) + "</table>")
        for title, rows in (("Lowest rated", c["lowest"]), ("Highest rated", c["highest"])):
            parts.append(f"<h4>{title}</h4><table><tr><th>overall</th><th>instruction</th><th>rationale</th></tr>"
                         + "".join(f"<tr><td>{r['overall']:g}</td><td>{_e(r['instruction'])}</td>"
                                   f"<td>{_e(r['rationale'])}</td></tr>" for r in rows) + "</table>")
        for s in c["selections"]:
            rule = f"overall &ge; {s['value']:g}" if s["rule"] == "min" else f"the best {s['value']:.0%}"
            parts.append(f"<p>Selection <code>{_e(s['folder'])}</code>: {s['kept']} examples ({rule}).</p>")
            if s["compared"]:
                parts.append("<table><tr><th>answers</th><th>judge</th><th>uncurated (mean, 95% interval)</th>"
                             "<th>curated</th><th>points gained</th><th>curation $ per point</th></tr>" + "".join(
                                 f"<tr><td>{_e(r['label'])}</td><td>{_e(r['judge_model'])}</td>"
                                 f"<td>{_interval(r['uncurated'])}</td><td>{_interval(r['curated'])}</td>"
                                 f"<td>{r['points_gained']:+.2f}</td><td>"
                                 f"{_e(usd(r['usd_per_point'])) if r['usd_per_point'] else 'no gain'}</td></tr>"
                                 for r in s["compared"]) + "</table>")
            else:
                parts.append('<p class="missing">Not compared yet: train on the selection, answer and grade it as '
                             f"the graded run was (<code>just train --run {_e(s['folder'])}</code>, then the same "
                             "answer and single-mode judge commands).</p>")
    return "".join(parts)


__all__ = ["curation_html", "curation_summary"]
