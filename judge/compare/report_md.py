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


COST_PARTS = (("data", "data_usd"), ("answers", "answers_usd"), ("judging", "judging_usd"), ("training", "training_usd"))


def cost_text(cost: dict[str, Any], part: str | None) -> str:
    """A cost figure with its basis: "$1.2500 shared" where the run's files cannot tell which label
    spent it (charged whole to each that may have), "$0.0000 not used" where the label did not use
    it; `part` None is the total, "shared" if any part is."""
    if part is None:
        shared = any(b == "shared" for b in (cost.get("basis") or {}).values())
        return fmt(cost.get("total_usd"), "usd") + (" shared" if shared else "")
    value = cost.get(dict(COST_PARTS)[part])
    basis = (cost.get("basis") or {}).get(part, "own")
    # no training figure (no --gpu-hour-usd or no metrics) has no basis to show
    return fmt(value, "usd") + ("" if basis == "own" or (value is None and part == "training") else f" {basis}")


def shared_text(cost: dict[str, Any]) -> str:
    """'data with lora; training with lora': the run's other labels charged the same."""
    return "; ".join(f"{part} with {', '.join(who)}" for part, who in (cost.get("shared_with") or {}).items())


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
                     fmt(r.get("wrong_language_rate"), "share"), fmt(r.get("unscored"), "int"),
                     cost_text(r["cost"], None) if r.get("cost") else fmt(cost, "usd"), fmt(r.get("usd_per_point"), "usd")])
    lines += _table(header, rows)
    lines += ["", "## Cost", ""]
    rows = []
    notes: list[str] = []
    for r in result["models"]:
        c = r.get("cost")
        if not c:
            continue
        tokens = "-" if c["tokens_trained"] is None else f"{c['tokens_trained']:,}" + (" (est.)" if c["training_estimated"] else "")
        gpu_s = "-" if c["gpu_seconds"] is None else f"{c['gpu_seconds']:.0f}"
        rows.append([r["name"], cost_text(c, "data"), cost_text(c, "answers"), cost_text(c, "judging"),
                     tokens, gpu_s, cost_text(c, "training"), cost_text(c, None)])
        if shared_text(c):
            notes.append(f"{r['name']} shares {shared_text(c)} (labels of the same run)")
    lines += _table(["model", "data", "endpoint answers", "judging", "tokens trained", "GPU-seconds", "training", "total"], rows)
    lines += ["", "Each run's ledger is split per label where the run's files tell which label a request served. "
              "\"shared\": the files cannot tell, so each label that may have used it is charged the whole of it "
              "(adding such rows counts it twice); \"not used\": the label did not use it (the base model never "
              "saw the generated data nor the training)."] + [f"- {n}" for n in notes]
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
