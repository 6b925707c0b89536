"""The whole report of a run: `python -m judge overview --run RUN` (`just report --run RUN`), and
`judge.report(run)` in Python.

Runs the three parts a run can have and puts them on one page:

  cost      factory's cost report (ledger, examples, rejections)  -> report/cost.md, cost_*.png
  training  train/metrics.jsonl, read as plain JSON               -> report/training.png
  scores    the judge's report (eval/answers, eval/judgments)     -> report/scores.md, charts

then `report/summary.json` (each part under its own key, plus "headline" with the figures a
reader wants first; keys written by other tools are kept) and `report/index.html`: everything on
one self-contained page (charts embedded as data URIs, no script, no network) that opens from
disk and can be mailed as one file. A part the run has not reached yet is shown as missing, with
the command that makes it.

It lives in `judge` because only `judge` may import both `factory` (the cost report) and its own
score report; the trainer's output is read as a file, never imported.
"""

from __future__ import annotations

import base64
import html
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory import FactoryError
from factory.cost import seconds, write_cost_report
from factory.engine import budget_use, usd
from factory.simulator import MARKER as SIMULATED_MARKER
from judge.errors import CurateError, OverviewError
from judge.grading import settings as grade
from judge.reports import scores as score_report
from judge.reports.curation import curation_html, curation_summary
from judge.reports.training import TrainingReportError, write_training_report
from schemas import RunFolder, RunFolderError


@dataclass
class OverviewOutput:
    index_html: Path
    summary_json: Path
    summary: dict[str, Any]
    parts: dict[str, bool]  # which parts the run had: cost, training, scores, curation


# --------------------------------------------------------------------------------------------
# Running the parts


def write_overview(run: Path, *, questions: Sequence[Path] = ()) -> OverviewOutput:
    if not run.is_dir():
        raise OverviewError(f"no run folder {run}; pass --run runs/NAME of an existing run")
    folder = RunFolder(run)
    out_dir = folder.report_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    summary_path = folder.summary
    parts = {"cost": False, "training": False, "scores": False, "curation": False}
    cost: dict[str, Any] | None = None
    try:
        if any(path.exists() for path in (folder.ledger, folder.examples, folder.rejected)):
            cost = write_cost_report(run).cost
            parts["cost"] = True
        training = write_training_report(run, out_dir)
        if training is not None:
            folder.merge_summary("training", training)
            parts["training"] = True
        if folder.judgments.exists() or folder.answers.exists():
            score_report.write_report(run, questions=questions)
            parts["scores"] = True
        curations = curation_summary(run, cost)
        if curations:
            folder.merge_summary("curation", curations)
            parts["curation"] = True
    except (FactoryError, RunFolderError, score_report.ReportError, TrainingReportError, CurateError) as e:
        raise OverviewError(str(e)) from None
    if not any(parts.values()):  # curation alone needs examples, so the cost part is there too
        raise OverviewError(f"{run} has nothing to report yet: no ledger or examples, no train/metrics.jsonl, "
                            f"no eval/ answers; start with `just generate --run {run} ...`")
    for name, present in parts.items():
        if not present:  # a part of an earlier report whose inputs are gone is not this run's
            folder.merge_summary(name, None)
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    summary["headline"] = headline(summary, folder.read_config(), simulated=_is_simulated(run, summary.get("cost")))
    folder.merge_summary("headline", summary["headline"])
    index = folder.index_html
    index.write_text(render_html(run, summary, out_dir), encoding="utf-8")
    return OverviewOutput(index_html=index, summary_json=summary_path, summary=summary, parts=parts)


def _is_simulated(run: Path, cost: dict[str, Any] | None) -> bool:
    """Whether the texts came from the simulator: it marks every free text it writes (examples,
    and the judge's rationales). The endpoint's address says nothing: a local vLLM is real."""
    if cost and cost["source"].get("simulated"):
        return True
    judgments = RunFolder(run).judgments
    if not judgments.exists():
        return False
    with judgments.open(encoding="utf-8", errors="replace") as f:
        return any(SIMULATED_MARKER in line for line in f)


def judge_budget(config: dict[str, Any], cost: dict[str, Any] | None) -> dict[str, Any] | None:
    """`--max-cost` of `judge grade` (its [judge.engine] section) against what the judge stage spent."""
    max_cost = config.get(grade.SECTION, {}).get("engine", {}).get("max_cost")
    if max_cost is None or not cost:
        return None
    spent: float | None = 0.0
    for r in cost["by_stage"]:
        if r["stage"] == grade.STAGE:
            spent = r["cost_usd"]
    return budget_use("judge grade", [grade.STAGE], float(max_cost), spent)


def headline(summary: dict[str, Any], config: dict[str, Any], *, simulated: bool) -> dict[str, Any]:
    """The figures a reader wants first, gathered from the parts (None where a part is missing)."""
    cost, training, scores = summary.get("cost"), summary.get("training"), summary.get("scores")
    out: dict[str, Any] = {"simulated": simulated, "judge_budget": judge_budget(config, cost),
                           "writers": writers(config)}
    if cost:
        t, g, f = cost["totals"] or {}, cost["generation"], cost["funnel"]
        total = t.get("cost_usd", 0.0)
        out.update({
            "total_cost_usd": total,
            "generation_cost_usd": g["cost_usd"],
            "other_stages_cost_usd": None if total is None or g["cost_usd"] is None else total - g["cost_usd"],
            "kept_examples": g["kept"],
            "usd_per_kept_example": g["usd_per_kept"],
            "usd_per_1000_kept": g["usd_per_1000_kept"],
            "generated": f["generated"],
            "rejected": f["rejected"],
            "requests": t.get("requests", 0),
            "retries": t.get("retries", 0),
            "rate_limited": t.get("rate_limited"),
            "latency_p50_s": t.get("latency_p50_s"),
            "latency_p95_s": t.get("latency_p95_s"),
            "batch_saved_usd": (cost["batch"] or {}).get("saved_usd"),
            "budget_used_share": (cost["budget"] or {}).get("used_share"),
        })
    if training:
        out.update({k: training[k] for k in ("steps", "loss_first", "loss_last", "loss_fell", "eval_loss_first",
                                             "eval_loss_last", "tokens_per_s_median", "peak_gib")})
    if scores:
        out["single_scores"] = [
            {"judge_model": r["judge_model"], "model": r["model"], **(r["score"] or {})}
            for r in scores.get("single", []) if r["category"] == "all" and r["turn"] is None and r["score"]
        ]
        out["pairwise"] = [
            {"judge_model": r["judge_model"], "model": r["model"], "baseline": r["baseline"],
             **{k: r[k]["value"] for k in ("win", "tie", "loss") if r.get(k)}, "consistency": r["consistency"]}
            for r in scores.get("pair", []) if r["category"] == "all"
        ]
        out["unscored"] = sum(r["unscored"] for r in scores.get("unscored", []))
    return out


def writers(config: dict[str, Any]) -> list[dict[str, str]]:
    """Which model wrote each kind of text of the run, from the settings each stage recorded."""
    rows: list[dict[str, str]] = []
    engine = config.get("engine", {})
    if config.get("generate") and engine.get("model"):
        rows.append({"texts": "examples", "model": str(engine["model"]), "where": str(engine.get("base_url", ""))})
    for label, entry in sorted((config.get("answer") or {}).items()):
        if isinstance(entry, dict) and entry.get("model"):
            model = str(entry["model"]) + (" + its adapter" if entry.get("adapter") else "")
            rows.append({"texts": f"answers '{label}'", "model": model,
                         "where": str(entry.get("endpoint") or "this machine (python -m trainer answer)")})
    judge = config.get(grade.SECTION)
    if isinstance(judge, dict) and judge.get("judge_model"):
        rows.append({"texts": "verdicts", "model": str(judge["judge_model"]),
                     "where": str((judge.get("engine") or {}).get("base_url", ""))})
    return rows


# --------------------------------------------------------------------------------------------
# HTML (plain strings: every text goes through html.escape; figures carry their raw value in
# data-value, so a test or a script can read them back without parsing formatted numbers)


_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1100px;
       padding: 1.5em; color: #222; }
h1 { margin-bottom: .2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
.banner { background: #fff4d6; border: 1px solid #e6c35c; padding: .7em 1em; border-radius: 6px; }
.missing { color: #777; font-style: italic; }
.cards { display: flex; flex-wrap: wrap; gap: .8em; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .6em .9em; min-width: 150px; }
.card .label { color: #666; font-size: 85%; } .card .value { font-size: 140%; font-weight: 600; }
table { border-collapse: collapse; margin: .6em 0 1em; font-size: 92%; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; } th { background: #f5f5f5; }
img { max-width: 100%; display: block; margin: .6em 0; }
.note { color: #555; font-size: 90%; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _fig(key: str, value: Any, text: str) -> str:
    """A figure: formatted text, with the raw value for machines."""
    raw = "" if value is None else json.dumps(value)
    return f'<span data-figure="{_e(key)}" data-value="{_e(raw)}">{_e(text)}</span>'


def _n(x: int | None, unknown: str = "not recorded") -> str:
    return unknown if x is None else f"{x:,}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Cells are HTML already (escaped by the caller or built by `_fig`)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(path: Path, alt: str) -> str:
    if not path.is_file():
        return f'<p class="missing">chart {_e(path.name)} is missing</p>'
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _card(label: str, body: str) -> str:
    return f'<div class="card"><div class="label">{_e(label)}</div><div class="value">{body}</div></div>'


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def _headline_html(h: dict[str, Any]) -> str:
    cards = []
    if "total_cost_usd" in h:
        cards += [
            _card("spent in all", _fig("headline.total_cost_usd", h["total_cost_usd"], usd(h["total_cost_usd"]))),
            _card("kept examples", _fig("headline.kept_examples", h["kept_examples"], f"{h['kept_examples']:,}")),
            _card("$ per kept example", _fig("headline.usd_per_kept_example", h["usd_per_kept_example"],
                                              usd(h["usd_per_kept_example"]))),
            _card("$ per 1,000 kept", _fig("headline.usd_per_1000_kept", h["usd_per_1000_kept"],
                                            usd(h["usd_per_1000_kept"]))),
        ]
    if "loss_last" in h:
        cards.append(_card("train loss, first → last", _fig("headline.loss_last", h["loss_last"],
                                                             f"{h['loss_first']:.3f} → {h['loss_last']:.3f}")))
        if h["eval_loss_last"] is not None:
            cards.append(_card("eval loss, last", _fig("headline.eval_loss_last", h["eval_loss_last"],
                                                       f"{h['eval_loss_last']:.3f}")))
        if h["tokens_per_s_median"] is not None:
            cards.append(_card("tokens / s (median)", _fig("headline.tokens_per_s_median", h["tokens_per_s_median"],
                                                           f"{h['tokens_per_s_median']:,.0f}")))
    for s in h.get("single_scores", []):
        cards.append(_card(f"score of {s['model']} ({s['judge_model']})",
                           _fig(f"headline.score.{s['model']}", s["value"], f"{s['value']:.2f} / 10")))
    for p in h.get("pairwise", []):
        if "win" in p:
            cards.append(_card(f"{p['model']} vs {p['baseline']}: win / tie / loss",
                               _fig(f"headline.win.{p['model']}", p["win"],
                                    f"{p['win']:.0%} / {p['tie']:.0%} / {p['loss']:.0%}")))
    return f'<div class="cards">{"".join(cards)}</div>' if cards else ""


def _cost_html(cost: dict[str, Any], judge_budget_of: dict[str, Any] | None, out_dir: Path) -> str:
    t, g, f = cost["totals"], cost["generation"], cost["funnel"]
    parts = ["<h2>Cost</h2>"]
    total = t["cost_usd"] if t else 0.0
    lines = [f"Spent {_fig('cost.total_usd', total, usd(total))} in all over "
             f"{_fig('cost.requests', t['requests'] if t else 0, _n(t['requests'] if t else 0))} requests"]
    if t and t["unpriced"]:
        lines.append(f"{t['unpriced']:,} requests have no known price (known part {_e(usd(t['known_cost_usd']))})")
    lines.append(f"generation ({_e(', '.join(g['stages']) or 'no stage')}): "
                 f"{_fig('cost.generation_usd', g['cost_usd'], usd(g['cost_usd']))} for "
                 f"{_fig('cost.kept', g['kept'], format(g['kept'], ','))} kept examples, "
                 f"{_fig('cost.usd_per_kept', g['usd_per_kept'], usd(g['usd_per_kept']))} each, "
                 f"{_fig('cost.usd_per_1000_kept', g['usd_per_1000_kept'], usd(g['usd_per_1000_kept']))} per 1,000")
    prices = cost.get("prices")  # absent in a summary written before prices were dated
    if prices:
        lines.append(f"priced with {_e(prices['table'])}")
        if prices["warning"]:
            lines.append(f"<strong>{_e(prices['warning'])}</strong>")
    b = cost["budget"]
    if b:
        lines.append(f"budget (--max-cost of generate, covering {_e(', '.join(b['stages']) or 'no stage yet')}): "
                     f"{_e(usd(b['spent_usd']))} of {_e(usd(b['max_cost_usd']))} "
                     f"used ({_fig('cost.budget_used_share', b['used_share'], _pct(b['used_share']))})")
    else:
        lines.append("no budget was set for generate (--max-cost)")
    jb = judge_budget_of
    if jb:
        lines.append(f"budget (--max-cost of judge grade, covering {_e(', '.join(jb['stages']))}): "
                     f"{_e(usd(jb['spent_usd']))} of {_e(usd(jb['max_cost_usd']))} "
                     f"used ({_fig('cost.judge_budget_used_share', jb['used_share'], _pct(jb['used_share']))})")
    parts.append("<ul>" + "".join(f"<li>{x}</li>" for x in lines) + "</ul>")

    if cost["by_stage_model"]:
        parts.append("<h3>By stage and model</h3>")
        parts.append(_table(
            ["stage", "model", "requests", "cost", "input tokens", "cached input", "output tokens", "reasoning"],
            [[_e(r["stage"]), _e(r["model"]), f"{r['requests']:,}",
              _fig(f"cost.stage_model.{r['stage']}.{r['model']}", r["cost_usd"], usd(r["cost_usd"])),
              f"{r['input_tokens']:,}", f"{r['cached_input_tokens']:,}", f"{r['output_tokens']:,}",
              f"{r['reasoning_tokens']:,}"] for r in cost["by_stage_model"]]))
        parts.append("<h3>By model</h3>")
        parts.append(_table(["model", "requests", "cost", "input tokens", "output tokens"],
                            [[_e(r["model"]), f"{r['requests']:,}",
                              _fig(f"cost.model.{r['model']}", r["cost_usd"], usd(r["cost_usd"])),
                              f"{r['input_tokens']:,}", f"{r['output_tokens']:,}"] for r in cost["by_model"]]))

    parts.append("<h3>Funnel</h3>")
    parts.append(_table(["step", "items", "removed, by reason"], [
        ["generated", _fig("funnel.generated", f["generated"], f"{f['generated']:,}"), ""],
        ["after filters", _fig("funnel.after_filters", f["after_filters"], f"{f['after_filters']:,}"),
         _e(", ".join(f"{r} {n:,}" for r, n in f["removed_by_filters"].items()) or "—")],
        ["after dedup", _fig("funnel.after_dedup", f["after_dedup"], f"{f['after_dedup']:,}"),
         _e(", ".join(f"{r} {n:,}" for r, n in f["removed_by_dedup"].items()) or "—")],
        ["kept", _fig("funnel.kept", f["kept"], f"{f['kept']:,}"), ""],
    ]))
    if f["rejected_by_reason"]:
        parts.append(_table(["rejection reason", "count", "share of generated"],
                            [[_e(r), _fig(f"funnel.reason.{r}", n, f"{n:,}"), _e(_pct(n / f["generated"]))]
                             for r, n in f["rejected_by_reason"].items()]))

    if cost["by_stage"]:
        parts.append("<h3>Requests</h3>")
        rows = [[_e(r["stage"]), f"{r['requests']:,}", f"{r['failed']:,}", f"{r['pending']:,}",
                 f"{r['http_attempts']:,}", _fig(f"requests.retries.{r['stage']}", r["retries"], f"{r['retries']:,}"),
                 _e(_n(r["rate_limited"])), _e(seconds(r["latency_p50_s"])), _e(seconds(r["latency_p95_s"]))]
                for r in cost["by_stage"]]
        rows.append(["<b>all</b>", f"{t['requests']:,}", f"{t['failed']:,}", f"{t['pending']:,}",
                     f"{t['http_attempts']:,}", _fig("requests.retries", t["retries"], f"{t['retries']:,}"),
                     _e(_n(t["rate_limited"])), _fig("requests.latency_p50_s", t["latency_p50_s"], seconds(t["latency_p50_s"])),
                     _fig("requests.latency_p95_s", t["latency_p95_s"], seconds(t["latency_p95_s"]))])
        parts.append(_table(["stage", "requests", "failed", "pending", "HTTP attempts", "retries", "429s",
                             "latency p50", "latency p95"], rows))
        if not cost["rate_limited_recorded"]:
            parts.append('<p class="note">This ledger does not count 429s per request; the commands\' live '
                         "progress line and closing summary show them.</p>")

    bt = cost["batch"]
    if bt is None:
        parts.append('<p class="note">No request went through the Batch API (<code>--batch</code>).</p>')
    else:
        parts.append(f"<p>Batch API: {bt['requests']:,} requests cost {_e(usd(bt['actual_usd']))}; at online "
                     f"prices ({_e(bt['prices_as_of'])}) {_e(usd(bt['online_usd']))}: saved "
                     f"{_fig('batch.saved_usd', bt['saved_usd'], usd(bt['saved_usd']))}.</p>")
    parts += [_image(out_dir / name, name) for name in cost.get("charts", [])]
    return "".join(parts)


def _simulator_html(sim: dict[str, Any]) -> str:
    """The simulator's own counters (the demo records them): what it served, 429s and faults."""
    faults = ", ".join(f"{k} {v:,}" for k, v in sim.get("faults", {}).items()) or "none"
    return ("<h3>Simulator (server side)</h3>"
            f"<p>The simulator answered {_fig('simulator.requests', sim['requests'], format(sim['requests'], ','))} "
            f"HTTP requests: {_fig('simulator.rate_limited', sim['rate_limited'], format(sim['rate_limited'], ','))} "
            f"429s from its RPM/TPM limits (rpm {_e(sim.get('rpm'))}, tpm {_e(sim.get('tpm'))}) and these injected "
            f"faults: {_e(faults)}. The engine retried the errors among them (the retries column above); "
            "answers cut short (length) are not errors and went to the filters (truncated).</p>")


def _training_html(training: dict[str, Any], out_dir: Path) -> str:
    s = training["settings"]
    fell = "fell" if training["loss_fell"] else "did NOT fall"
    items = [
        f"{_fig('training.steps', training['steps'], str(training['steps']))} optimizer steps",
        f"train loss {_fig('training.loss_first', training['loss_first'], format(training['loss_first'], '.4f'))} → "
        f"{_fig('training.loss_last', training['loss_last'], format(training['loss_last'], '.4f'))} "
        f"(mean of the first and last {training['loss_averaged_over']} logged steps): it {fell}",
    ]
    if training["eval_loss_last"] is not None:
        items.append(f"eval loss {training['eval_loss_first']:.4f} → "
                     f"{_fig('training.eval_loss_last', training['eval_loss_last'], format(training['eval_loss_last'], '.4f'))}"
                     f" ({training['eval_points']} evaluations)")
    if training["tokens_per_s_median"] is not None:
        items.append(f"{_fig('training.tokens_per_s', training['tokens_per_s_median'], format(training['tokens_per_s_median'], ',.0f'))}"
                     " tokens/s (median over logged steps)")
    if training["peak_gib"] is not None:
        items.append(f"peak memory {_fig('training.peak_gib', training['peak_gib'], format(training['peak_gib'], '.2f'))} GiB"
                     " (CUDA allocations on a GPU; the process's peak resident set on a CPU)")
    if training["mfu_median"] is not None:
        items.append(f"MFU {training['mfu_median']:.1%} (median)")
    if s:
        items.append("settings: " + _e(", ".join(f"{k} {v}" for k, v in s.items())))
    return ("<h2>Training</h2><ul>" + "".join(f"<li>{x}</li>" for x in items) + "</ul>"
            + _image(out_dir / training["chart"], "training curves"))


def _est(e: dict[str, Any] | None, pct: bool = False) -> str:
    if not e:
        return "—"
    if pct:
        return f"{e['value']:.0%} [{e['low']:.0%}, {e['high']:.0%}]"
    return f"{e['value']:.2f} [{e['low']:.2f}, {e['high']:.2f}]"


def _scores_html(scores: dict[str, Any], out_dir: Path) -> str:
    parts = ["<h2>Scores</h2>",
             f"<p>{scores['counts']['judgments']:,} judgments of {scores['counts']['answers']:,} answers; "
             f"intervals: {scores['settings']['confidence']:.0%} bootstrap. Unparseable verdicts are "
             "<b>unscored</b>, never a number.</p>"]
    for mode, title in (("single", "Single-answer grading (1-10)"), ("reference", "Reference-guided grading (1-10)")):
        rows = [r for r in scores.get(mode, []) if r["turn"] is None]
        if rows:
            rows.sort(key=lambda r: (r["judge_model"], r["category"] != "all", r["category"], r["model"]))
            parts.append(f"<h3>{_e(title)}</h3>")
            parts.append(_table(["category", "model", "judge", "mean [95% CI]", "n", "unscored"], [
                [_e(r["category"]), _e(r["model"]), _e(r["judge_model"]),
                 _fig(f"scores.{mode}.{r['judge_model']}.{r['model']}.{r['category']}",
                      r["score"]["value"] if r["score"] else None, _est(r["score"])),
                 str(r["score"]["n"] if r["score"] else 0), str(r["unscored"])] for r in rows]))
    pairs = [r for r in scores.get("pair", []) if r["category"] == "all"]
    if pairs:
        parts.append("<h3>Pairwise (both orders asked; a disagreement counts as a tie)</h3>")
        parts.append(_table(["model vs baseline", "judge", "win", "tie", "loss", "position consistency", "unscored"], [
            [_e(f"{r['model']} vs {r['baseline']}"), _e(r["judge_model"]),
             _fig(f"scores.pair.{r['judge_model']}.{r['model']}.win", r["win"]["value"] if r["win"] else None,
                  _est(r["win"], pct=True)),
             _e(_est(r["tie"], pct=True)), _e(_est(r["loss"], pct=True)),
             _e(_pct(r["consistency"])), f"{r['unscored']}/{r['total']}"] for r in pairs]))
    unscored = [r for r in scores.get("unscored", []) if r["unscored"]]
    if unscored:
        parts.append("<h3>Unscored</h3>")
        parts.append(_table(["judge", "mode", "model", "unscored", "rate", "top reason"], [
            [_e(r["judge_model"]), _e(r["mode"]), _e(r["model"]), f"{r['unscored']}/{r['total']}", _e(_pct(r["rate"])),
             _e(r["top_reasons"][0]["reason"][:100] if r["top_reasons"] else "—")] for r in unscored]))
    if scores.get("verbosity"):
        parts.append("<h3>Answer length</h3>")
        parts.append(_table(["model", "answers", "mean characters per turn", "mean tokens per turn"], [
            [_e(r["model"]), str(r["answers"]), "—" if r["mean_chars"] is None else f"{r['mean_chars']:.0f}",
             "—" if r["mean_tokens"] is None else f"{r['mean_tokens']:.0f}"] for r in scores["verbosity"]]))
    parts += [_image(out_dir / name, name) for name in scores.get("charts", [])]
    return "".join(parts)


def _data_page_link(run: Path) -> str:
    """The data page (judge/reports/data_page): every record of the run, beside these aggregates."""
    page = RunFolder(run).data_html
    state = "" if page.is_file() else " (not written yet)"
    return (f'<p class="note" data-figure="data_page" data-value="{_e(json.dumps(page.is_file()))}">The records '
            f'themselves (kept and rejected examples, answers side by side, curation scores): '
            f'<a href="{_e(page.name)}">{_e(page.name)}</a>{state}, which <code>just view --run {_e(run)}</code> '
            "writes.</p>")


def _missing(title: str, what: str, command: str) -> str:
    return f'<h2>{_e(title)}</h2><p class="missing">{_e(what)}: <code>{_e(command)}</code></p>'


def render_html(run: Path, summary: dict[str, Any], out_dir: Path) -> str:
    run_name = run.name
    h = summary.get("headline", {})
    body = [f"<h1>instruct-factory report — {_e(run_name)}</h1>",
            f'<p class="note">Written {_e(time.strftime("%Y-%m-%d %H:%M"))} by <code>just report --run '
            f"{_e(run)}</code>; the same figures are in report/summary.json, cost.md and scores.md.</p>",
            _data_page_link(run)]
    if h.get("simulated"):
        body.append('<p class="banner" data-figure="simulated" data-value="true"><b>Simulated run.</b> The texts, '
                    "token counts and judge scores on this page come from the local simulator "
                    "(<code>python -m factory simulate</code>), not from a model: they show that the pipeline works "
                    "end to end, not how good any model is. Dollar figures are what the same usage would cost "
                    "at the listed prices.</p>")
    for note in summary.get("notes") or []:  # what a stage or the demo says the reader must know first
        body.append(f'<p class="banner">{_e(str(note))}</p>')
    body.append(_headline_html(h))
    if h.get("writers"):
        body.append("<h2>Who wrote what</h2>" + _table(["texts", "model", "where"],
                                                         [[_e(w["texts"]), _e(w["model"]), _e(w["where"])] for w in h["writers"]]))
    cost, training, scores = summary.get("cost"), summary.get("training"), summary.get("scores")
    body.append(_cost_html(cost, h.get("judge_budget"), out_dir) if cost else
                _missing("Cost", "no ledger or examples in this run yet", f"just generate --run {run} ..."))
    if isinstance(summary.get("simulator"), dict) and "requests" in summary["simulator"]:
        body.append(_simulator_html(summary["simulator"]))
    body.append(_training_html(training, out_dir) if training else
                _missing("Training", "no train/metrics.jsonl yet", f"just train --run {run}"))
    if summary.get("curation"):
        body.append(curation_html(summary["curation"]))
    body.append(_scores_html(scores, out_dir) if scores else
                _missing("Scores", "no eval/answers.jsonl or judgments.jsonl yet",
                         f"python -m trainer answer --run {run} ... then just judge --run {run} ..."))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>instruct-factory — {_e(run_name)}</title><style>{_CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")
