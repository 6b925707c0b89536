"""cost.md: the cost report's figures as Markdown tables, money as `usd()` writes it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from factory.engine.money import usd



def seconds(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f} s"


def _duration(x: float) -> str:
    return f"{x:,.0f} s" if x >= 10 else f"{x:.2f} s"


def _n(x: int | None) -> str:
    return "not recorded" if x is None else f"{x:,}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")
    return ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(map(esc, r)) + " |" for r in rows], ""]


def render_cost_markdown(cost: dict[str, Any], charts: Sequence[Path] = ()) -> str:
    t, g, f = cost["totals"], cost["generation"], cost["funnel"]
    src = cost["source"]
    out = [f"# Cost — {cost['run']}", ""]
    if src["simulated"]:
        out += ["> The texts of this run come from the local **simulator** (`python -m factory simulate`), "
                "not a model: its token counts are simulated, and its dollar figures are what the same "
                "usage would cost at the listed prices.", ""]
    described = [f"{name} `{src[key]}`" for name, key in (("endpoint", "base_url"), ("model", "model"),
                                                           ("recipe", "recipe")) if src[key]]
    if described:
        out += ["Generated with " + ", ".join(described) + ".", ""]
    out += [
        "## Headline", "",
        f"- Spent: **{usd(t['cost_usd'] if t else 0.0)}** in all "
        f"({t['requests'] if t else 0:,} requests)"
        + (f"; {t['unpriced']} requests have no known price (known part {usd(t['known_cost_usd'])})"
           if t and t["unpriced"] else ""),
        f"- Generation: {usd(g['cost_usd'])} for **{g['kept']:,}** kept examples: "
        f"**{usd(g['usd_per_kept'])} per example**, {usd(g['usd_per_1000_kept'])} per 1,000",
        f"- Priced with {cost['prices']['table']}",
    ]
    if cost["prices"]["warning"]:
        out += [f"- **{cost['prices']['warning']}**"]
    if (pb := cost.get("possibly_billed")) and pb["attempts"]:
        out.append(f"- Possibly billed (in flight at a crash): {pb['attempts']:,} attempts, at most "
                   f"{usd(pb['worst_usd'])}, not in the figures above; every later --max-cost counts them")
    if cost["budget"]:
        b = cost["budget"]
        share = "unknown" if b["used_share"] is None else f"{b['used_share']:.1%}"
        covers = ", ".join(b["stages"]) or "no stage yet"
        out.append(f"- Budget (--max-cost of generate, covering its stages: {covers}): {usd(b['spent_usd'])} of "
                   f"{usd(b['max_cost_usd'])} used ({share})")
    else:
        out.append("- Budget: none set (generate ran without --max-cost)")
    out.append("")

    if cost["by_stage_model"]:
        out += ["## Spend and tokens by stage and model", ""]
        out += _table(
            ["stage", "model", "requests", "cost", "input", "cached input", "output", "reasoning"],
            [[r["stage"], r["model"], f"{r['requests']:,}", usd(r["cost_usd"]), f"{r['input_tokens']:,}",
              f"{r['cached_input_tokens']:,}", f"{r['output_tokens']:,}", f"{r['reasoning_tokens']:,}"]
             for r in cost["by_stage_model"]],
        )
        out += ["Reasoning tokens are part of the output tokens (as the API reports them); cached input "
                "tokens are part of the input tokens and are billed at the cached price.", ""]
        out += ["### By model", ""]
        out += _table(["model", "requests", "cost", "input", "output"],
                      [[r["model"], f"{r['requests']:,}", usd(r["cost_usd"]), f"{r['input_tokens']:,}",
                        f"{r['output_tokens']:,}"] for r in cost["by_model"]])

    out += ["## Funnel", "",
            *_table(["step", "items", "removed", "by reason"], [
                ["generated", f"{f['generated']:,}", "", ""],
                ["after filters", f"{f['after_filters']:,}", f"{f['generated'] - f['after_filters']:,}",
                 ", ".join(f"{r} {n:,}" for r, n in f["removed_by_filters"].items()) or "—"],
                ["after dedup", f"{f['after_dedup']:,}", f"{f['after_filters'] - f['after_dedup']:,}",
                 ", ".join(f"{r} {n:,}" for r, n in f["removed_by_dedup"].items()) or "—"],
                ["kept (examples.jsonl)", f"{f['kept']:,}", "", ""],
            ])]
    if f["rejected_by_reason"]:
        out += _table(["rejection reason (rejected.jsonl)", "count", "share of generated"],
                      [[r, f"{n:,}", f"{n / f['generated']:.1%}"] for r, n in f["rejected_by_reason"].items()])

    if cost["by_stage"]:
        out += ["## Requests", ""]
        rows = [[r["stage"], f"{r['requests']:,}", f"{r['failed']:,}", f"{r['pending']:,}",
                 f"{r['http_attempts']:,}", f"{r['retries']:,}", _n(r["rate_limited"]),
                 seconds(r["latency_p50_s"]), seconds(r["latency_p95_s"]),
                 seconds(r["wait_p50_s"]), seconds(r["wait_p95_s"])] for r in cost["by_stage"]]
        rows.append(["**all**", f"{t['requests']:,}", f"{t['failed']:,}", f"{t['pending']:,}",
                     f"{t['http_attempts']:,}", f"{t['retries']:,}", _n(t["rate_limited"]),
                     seconds(t["latency_p50_s"]), seconds(t["latency_p95_s"]),
                     seconds(t["wait_p50_s"]), seconds(t["wait_p95_s"])])
        out += _table(["stage", "requests", "failed", "pending", "HTTP attempts", "retries", "429s",
                       "latency p50", "latency p95", "waited p50", "waited p95"], rows)
        out += ["Retries are attempts beyond the first (a 429, a 5xx, a timeout, a dropped connection). "
                "Latency is the server's: of the answered attempt, from sending to the whole answer. "
                "Waited is the engine's: the time a request spent before its attempts went out, for the "
                "rate limiter (RPM, TPM reservations, a 429 pause), the budget and retry back-off"
                + (f"; {_duration(t['wait_total_s'])} in all, against {_duration(t['latency_total_s'])} "
                   "on the server. When the waits are far above the latency, the limits set the pace."
                   if t["wait_total_s"] is not None and t["latency_total_s"] is not None else ".")
                + ("" if cost["rate_limited_recorded"] else
                   " This ledger does not count 429s per request: the live progress line and the "
                   "command's closing summary show them."), ""]

    out += ["## Batch API", ""]
    b = cost["batch"]
    if b is None:
        out += ["No request went through the Batch API (`--batch`); it would halve the price of most models "
                "at the cost of waiting (up to 24 hours).", ""]
    else:
        share = "" if b["saved_share"] is None else f" ({b['saved_share']:.0%})"
        out += [f"{b['requests']:,} requests answered through the Batch API cost {usd(b['actual_usd'])}; "
                f"the same usage at online prices ({b['prices_as_of']}) would cost {usd(b['online_usd'])}: "
                f"saved **{usd(b['saved_usd'])}**{share}.", ""]
    if charts:
        out += ["## Charts", "", *[f"![{c.stem}]({c.name})" for c in charts], ""]
    return "\n".join(out)
