"""compare.md: the leaderboard, the pairwise matrix and the per-category scores as Markdown tables,
and the one formatting of figures that the page uses too."""

from __future__ import annotations

from typing import Any

from factory.engine import usd

# kind -> how a figure is shown; "-" is a figure that does not exist (unknown cost, no score yet)
KINDS = ("pct", "share", "int", "usd")


def fmt(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "pct":  # already in percent
        return f"{value:.1f}"
    if kind == "share":  # 0..1
        return f"{100 * value:.1f}%"
    if kind == "int":
        return f"{value:.0f}"
    if kind == "usd":
        return usd(value)
    raise ValueError(f"unknown figure kind {kind!r}; one of {KINDS}")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def markdown(result: dict[str, Any]) -> str:
    s, g = result["settings"], result["grading"]
    lines = [f"# Leaderboard against {result['baseline']}", "",
             f"Judge {result['judge_model']}, {result['questions']} questions, {g['scored']} of {g['planned']} "
             f"comparisons scored ({g['unscored']} unscored, {g['missing']} not graded yet). Scores are Bradley-Terry "
             f"win probabilities against the baseline in %, with {s['confidence']:.0%} intervals from "
             f"{s['bootstrap_rounds']} bootstrap rounds over questions. Wrong language: Hangul share under "
             f"{s['hangul_threshold']:.0%} on Korean questions ({s['wrong_language']}).", ""]
    header = ["#", "model", "score", "95% interval", "win", "tie", "loss", "raw WR", "LC WR", "mean length",
              "wrong lang.", "unscored", "cost", "$ / point"]
    rows = []
    for r in result["models"]:
        cost = (r.get("cost") or {}).get("total_usd")
        interval = "-" if r.get("score") is None else f"{fmt(r['score_low'], 'pct')} - {fmt(r['score_high'], 'pct')}"
        rows.append([str(r["rank"]), r["name"] + (" (baseline)" if r["is_baseline"] else ""), fmt(r.get("score"), "pct"),
                     interval, fmt(r.get("win"), "share"), fmt(r.get("tie"), "share"), fmt(r.get("loss"), "share"),
                     fmt(r.get("raw_win_rate"), "pct"), fmt(r.get("lc_win_rate"), "pct"), fmt(r.get("mean_length"), "int"),
                     fmt(r.get("wrong_language_rate"), "share"), fmt(r.get("unscored"), "int"), fmt(cost, "usd"),
                     fmt(r.get("usd_per_point"), "usd")])
    lines += _table(header, rows)
    lines += ["", "## Cost", ""]
    rows = []
    for r in result["models"]:
        c = r.get("cost")
        if not c:
            continue
        tokens = "-" if c["tokens_trained"] is None else f"{c['tokens_trained']:,}" + (" (est.)" if c["training_estimated"] else "")
        gpu_s = "-" if c["gpu_seconds"] is None else f"{c['gpu_seconds']:.0f}"
        rows.append([r["name"], fmt(c["data_usd"], "usd"), fmt(c["answers_usd"], "usd"), fmt(c["judging_usd"], "usd"),
                     tokens, gpu_s, fmt(c["training_usd"], "usd"), fmt(c["total_usd"], "usd")])
    lines += _table(["model", "data", "endpoint answers", "judging", "tokens trained", "GPU-seconds", "training", "total"], rows)
    players, matrix = result["pairwise"]["players"], result["pairwise"]["win_probability"]
    if players:
        lines += ["", "## Pairwise win probability (row beats column, %)", ""]
        lines += _table([""] + players, [[a] + [fmt(v, "pct") for v in row] for a, row in zip(players, matrix, strict=True)])
    cats = result["categories"]
    if cats["names"]:
        lines += ["", "## Score by category", ""]
        lines += _table(["model"] + cats["names"],
                        [[m] + [fmt(cats["scores"][m].get(c), "pct") for c in cats["names"]] for m in cats["scores"]])
    if result["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"
