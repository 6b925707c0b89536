"""The data page of a run: `python -m judge view --run RUN` (`just view`) and `judge.view(run)` write
RUN/report/data.html, one self-contained file (no server, no network: its script, styles and data
are inside it) that opens from disk and in a notebook's output cell.

The data goes in as JSON inside `<script type="application/json">` elements, with every `<`, `>`
and `&` written as a JSON escape, so no text of a model (untrusted input) can close that element or
open another; the page's script then puts every text in the page as a text node, never as markup.
A Content-Security-Policy allows the inline script and styles only: nothing is fetched, whatever a
text holds.

The page renders in two steps, so that a large run shows its first rows at once: the script and a
head (each table's first rows, in file order, which is what the full table shows first) come before
the whole data in the file, and the browser renders them while it still reads the rest; once the
whole data is parsed the tabs are built on it (search, filters and sorts need every row).
"""

from __future__ import annotations

import html
import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.exporting import read_scores
from factory.simulator import MARKER as SIMULATED_MARKER
from factory import ExportError
from judge.errors import ViewerError
from judge.reports.data_page.collect import answers_table, curation_table, examples_table, rejected_table
from judge.reports.data_page.tables import read_lines
from schemas import Answer, Example, JsonlError, Judgment, Rejected, RunFolder, read_jsonl

MAX_ROWS = 100_000  # rows of one table the page holds; a larger file is sampled (tables.py)
_HERE = Path(__file__).parent
SCRIPTS = ("list_view.js", "tabs.js", "answers.js", "app.js")  # in this order: each uses the ones before
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; "
       "base-uri 'none'; form-action 'none'")


@dataclass(frozen=True)
class DataPage:
    """What `write_data_page` wrote. In a notebook the object shows the page in an output cell."""

    run: Path
    path: Path  # RUN/report/data.html
    rows: dict[str, int]  # rows on the page: examples, rejected, questions, curation:NAME
    totals: dict[str, int]  # rows in the run's files (more than `rows` where sampled)
    sampled: tuple[str, ...]  # the tables that hold a sample
    bytes: int

    def html(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def iframe(self, height: int = 720) -> str:
        """The page in an iframe of its own (its script runs apart from the notebook's page)."""
        return (f'<iframe srcdoc="{html.escape(self.html(), quote=True)}" title="{html.escape(self.run.name)} data" '
                f'style="width: 100%; height: {int(height)}px; border: 1px solid #ddd"></iframe>')

    def _repr_html_(self) -> str:
        return self.iframe()

    def __str__(self) -> str:
        shown = ", ".join(f"{n:,} of {self.totals[name]:,} {name} (a random sample)" if name in self.sampled
                          else f"{n:,} {name}" for name, n in self.rows.items())
        return f"data page of {self.run} ({shown}): {self.path.resolve()}"


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: such a number is unknown (null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


_UNSAFE = re.compile("[<>&\u2028\u2029\ud800-\udfff]")


def embed_json(data: Any) -> str:
    """JSON that can sit inside a <script> element whatever its strings hold: `<`, `>`, `&`, the two
    JavaScript line separators and lone surrogates (no UTF-8 file can hold one) as \\u escapes."""
    text = json.dumps(_finite(data), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


HEAD_ROWS = 50  # rows of each table in the page's head: a first page of examples
HEAD_QUESTIONS = 10


def head_of(table: dict[str, Any], k: int = HEAD_ROWS) -> dict[str, Any]:
    """A table's first k rows, its dictionaries cut to the values those rows use."""
    cols, dicts = {}, {}
    for name, values in table["cols"].items():
        first = values[:k]
        if name in table["dicts"]:
            used = sorted({v for v in first if v is not None})
            new = {old: i for i, old in enumerate(used)}
            dicts[name] = [table["dicts"][name][old] for old in used]
            first = [None if v is None else new[v] for v in first]
        cols[name] = first
    return {**table, "n": min(k, table["n"]), "cols": cols, "dicts": dicts}


def head(data: dict[str, Any]) -> dict[str, Any]:
    """The page's head: the data with each table cut to its first rows (and marked partial)."""
    answers = {**data["answers"], "questions": data["answers"]["questions"][:HEAD_QUESTIONS]}
    return {**data, "partial": True, "examples": head_of(data["examples"]), "rejected": head_of(data["rejected"]),
            "answers": answers, "curation": [head_of(c) for c in data["curation"]]}


def collect(run: Path, max_rows: int = MAX_ROWS) -> dict[str, Any]:
    """The page's data: every table of the run, sampled where a file holds more than `max_rows`."""
    if not run.is_dir():
        raise ViewerError(f"no run folder {run}; pass --run runs/NAME of an existing run")
    if max_rows < 1:
        raise ViewerError(f"--max-rows {max_rows}: the page needs room for at least one row")
    folder = RunFolder(run)
    examples = read_lines(folder.examples, Example, max_rows)
    rejected = read_lines(folder.rejected, Rejected, max_rows)
    try:
        answers = read_jsonl(folder.answers, Answer)
        judgments = read_jsonl(folder.judgments, Judgment)
    except JsonlError as e:
        raise ViewerError(f"{e}; fix or remove that line, then view again") from None
    try:
        scores = {name: read_scores(folder, name) for name in folder.curation_names()}
    except ExportError as e:
        raise ViewerError(str(e)) from None
    if not (examples.total or rejected.total or answers or judgments or scores):
        raise ViewerError(f"{run} has nothing to show yet: no examples, rejections, answers or curation scores; "
                          f"start with `just generate --run {run} ...`")
    notes: list[str] = []
    shown = {e.id for e in examples.records}
    curation = []
    for name, by_id in scores.items():
        # A sampled page keeps the scores of the examples it holds, so the two tabs agree.
        rows = [s for s in by_id.values() if not examples.sampled or s.example_id in shown]
        curation.append(curation_table(name, rows))
    simulated = any(SIMULATED_MARKER in e.output for e in examples.records[:1000]) or any(
        SIMULATED_MARKER in j.rationale for j in judgments[:1000])
    return {
        "run": run.name, "path": str(run), "written": time.strftime("%Y-%m-%d %H:%M"),
        "recipe": folder.config_section("generate").get("recipe") or ("import" if folder.config_section("import") else None),
        "simulated": simulated, "index_html": folder.index_html.is_file(),
        "examples": examples_table(examples, scores), "rejected": rejected_table(folder, rejected),
        "answers": answers_table(folder, answers, judgments, notes), "curation": curation, "notes": notes,
        "partial": False,
    }


def render(data: dict[str, Any]) -> str:
    css = (_HERE / "viewer.css").read_text(encoding="utf-8")
    script = "\n".join((_HERE / name).read_text(encoding="utf-8") for name in SCRIPTS)
    title = html.escape(f"{data['run']} — instruct-factory data")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title><style>{css}</style></head><body>"
            '<noscript>This page shows the run\'s records with JavaScript; it fetches nothing.</noscript>'
            '<div id="app" data-page="instruct-factory-data"></div>'
            "<script>\"use strict\";\n(() => {\n"
            "const V = window.__viewer = { ready: false, indexReady: false, firstRenderMs: null, lastApplyMs: null };\n"
            "let DATA = null, RUN = \"\";\n"
            f"{script}\n}})();\n</script>"
            f'<script type="application/json" id="viewer-head">{embed_json(head(data))}</script>'
            "<script>window.__viewer.start();</script>"
            f'<script type="application/json" id="viewer-data">{embed_json(data)}</script>'
            "<script>window.__viewer.finish();</script></body></html>\n")


def write_data_page(run: str | Path, *, max_rows: int = MAX_ROWS) -> DataPage:
    """Write RUN/report/data.html; raises ViewerError for a run with nothing to show."""
    run = Path(run)
    data = collect(run, max_rows)
    folder = RunFolder(run)
    folder.report_dir.mkdir(parents=True, exist_ok=True)
    text = render(data)
    tmp = folder.data_html.with_name(f".{folder.data_html.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(folder.data_html)
    tables = {"examples": data["examples"], "rejected": data["rejected"]}
    rows = {name: t["n"] for name, t in tables.items()}
    rows["questions"] = len(data["answers"]["questions"])
    totals = {name: t["total"] for name, t in tables.items()} | {"questions": rows["questions"]}
    for c in data["curation"]:
        rows[f"curation:{c['name']}"] = totals[f"curation:{c['name']}"] = c["n"]
    return DataPage(run=run, path=folder.data_html, rows=rows, totals=totals,
                    sampled=tuple(name for name, t in tables.items() if t["sampled"]), bytes=len(text.encode("utf-8")))


__all__ = ["HEAD_ROWS", "MAX_ROWS", "DataPage", "collect", "embed_json", "head", "render", "write_data_page"]
