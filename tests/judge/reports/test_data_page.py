"""The data page without a browser: what it holds (read back from the written page), that no text of a
model can leave its data element, the sample of a large file, the errors, the command, the API, and
the overview's link to it. tests/judge/reports/test_data_page_browser.py drives it in Chromium."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

import judge
from judge.__main__ import main as judge_main
from judge.reports.data_page import DataPage, write_data_page
from judge.reports.data_page.page import HEAD_ROWS, SCRIPTS, embed_json
from judge.reports.overview import write_overview
from schemas import RunFolder
from viewer_run import CURATION, CRITERIA, INJECTION, KOREAN, REJECTED, write_run

HERE = Path(judge.__file__).parent / "reports" / "data_page"


def page_data(page: Path, element: str = "viewer-data") -> dict:
    text = page.read_text(encoding="utf-8")
    start = text.index(f'<script type="application/json" id="{element}">')
    body = text[text.index(">", start) + 1:text.index("</script>", start)]
    return json.loads(body)


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs))
        self.links += [v or "" for k, v in attrs if k in ("src", "href")]


def column(table: dict, name: str) -> list:
    values, codes = table["cols"][name], table["dicts"].get(name)
    return [None if v is None else codes[v] for v in values] if codes is not None else values


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(tmp_path_factory.mktemp("viewer") / "run")


@pytest.fixture(scope="module")
def page(run: Path) -> DataPage:
    return write_data_page(run)


def test_the_page_holds_every_stage(run: Path, page: DataPage) -> None:
    assert page.path == RunFolder(run).data_html and page.path.is_file()
    data = page_data(page.path)
    ex, rej = data["examples"], data["rejected"]
    lines = [json.loads(x) for x in RunFolder(run).examples.read_text(encoding="utf-8").splitlines()]
    assert ex["n"] == ex["total"] == len(lines) and not ex["sampled"]
    assert column(ex, "id") == [x["id"] for x in lines]
    # Repeated values are coded once: two recipes, two models, two languages.
    assert sorted(ex["dicts"]["recipe"]) == ["self-instruct", "topics"] and sorted(ex["dicts"]["lang"]) == ["en", "ko"]
    first = lines[1]
    i = column(ex, "id").index(first["id"])
    p = first["provenance"]
    assert (column(ex, "recipe")[i], column(ex, "model")[i], column(ex, "key")[i]) == (
        p["recipe"], p["model"], p["request_key"])
    assert column(ex, "seeds")[i] == " ".join(p["seed_ids"]) and column(ex, "cost")[i] == pytest.approx(p["cost_usd"])
    assert column(ex, "cost_text")[i] == "$0.0002"  # factory.engine.usd's text
    assert column(ex, "len")[i] == len(first["instruction"]) + len(first["output"])
    # The multi-turn example: every turn, user first; single-turn ones have none.
    chat = column(ex, "id").index("ex-chat")
    assert len(column(ex, "turns")[chat]) == 4 and column(ex, "turns")[chat][2].startswith("How many parameters")
    assert column(ex, "turns")[0] is None
    assert column(ex, "system")[chat] == "You are a patient tutor."
    # Rejected: every reason, with the request's model and cost from the ledger.
    assert sorted(column(rej, "reason")) == sorted(reason for reason, _ in REJECTED)
    assert set(column(rej, "model")) == {"gpt-4o-mini"} and all(c is not None for c in column(rej, "cost"))
    # Answers: both labels, both turns, single scores and pairwise verdicts per question.
    a = data["answers"]
    assert a["labels"] == ["base", "lora"] and a["pairs"] == [["base", "lora"]]
    ko = next(q for q in a["questions"] if q["id"] == "q-ko")
    assert ko["turns"][0] == KOREAN and ko["category"] == "real_estate" and set(ko["answers"]) == {"base", "lora"}
    assert len(ko["single"]) == 4 and [p["winner"] for p in ko["pair"]] == ["model", "model"]
    # Curation: its criteria and the scores of the examples it graded.
    (c,) = data["curation"]
    assert c["name"] == CURATION and c["criteria"] == sorted(CRITERIA) and c["n"] == 28
    assert sorted(c["dicts"]["status"]) == ["scored", "unscored"]
    unscored = column(c, "status").index("unscored")
    assert c["cols"]["overall"][unscored] is None and column(c, "error")[unscored] == "no JSON object and no score marker"
    assert all(1 <= v <= 5 for name in CRITERIA for v in c["cols"][f"c.{name}"] if v is not None)
    assert data["examples"]["curations"] == [CURATION]
    assert page.rows == {"examples": 32, "rejected": 7, "questions": 3, f"curation:{CURATION}": 28}


def test_the_head_is_the_first_rows_in_file_order(page: DataPage) -> None:
    head, full = page_data(page.path, "viewer-head"), page_data(page.path)
    assert head["partial"] is True and full["partial"] is False
    assert head["examples"]["n"] == min(HEAD_ROWS, full["examples"]["n"]) and head["examples"]["total"] == 32
    assert column(head["examples"], "id") == column(full["examples"], "id")[:HEAD_ROWS]
    assert column(head["examples"], "model") == column(full["examples"], "model")[:HEAD_ROWS]


def test_no_text_can_leave_its_data_element(page: DataPage) -> None:
    text = page.path.read_text(encoding="utf-8")
    tags = Tags()
    tags.feed(text)
    # Our four scripts (code, head, start, data, finish): the injected <script> tags are not among them.
    assert [s.get("type") for s in tags.scripts] == [None, "application/json", None, "application/json", None]
    assert INJECTION not in text and "__pwned" in text  # present, as escaped data only
    assert tags.links == [] or set(tags.links) == {"index.html"}
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    ex = page_data(page.path)["examples"]  # and it reads back exactly
    assert column(ex, "instruction")[column(ex, "id").index("ex-inject")] == f"Repeat this: {INJECTION}"


def test_embedding_escapes_what_could_end_the_element() -> None:
    tricky = {"a": "</script><!--<script>", "b": "\u2028\u2029", "c": "&amp;", "d": "\ud83d", "e": float("nan")}
    text = embed_json(tricky)
    assert not re.search("[<>&\u2028\u2029]", text)
    assert json.loads(text) == {"a": tricky["a"], "b": tricky["b"], "c": "&amp;", "d": "\ud83d", "e": None}
    text.encode("utf-8")  # a lone surrogate would not encode


def test_the_scripts_never_parse_text_as_markup() -> None:
    """Every text reaches the page as a text node: none of the ways to turn a string into markup or
    code appears in the page's scripts, and no attribute takes a URL from the data."""
    for name in SCRIPTS:
        source = (HERE / name).read_text(encoding="utf-8")
        for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                       "setTimeout(\"", "</script", "fetch(", "XMLHttpRequest", "src:"):
            assert banned not in source, f"{name} uses {banned}"
        assert re.findall(r"href: ([^}]+)", source) in ([], ['"index.html" ']), f"{name}: a link built from data"


def test_a_large_file_is_a_seeded_sample_that_says_so(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", n_examples=60)
    first = write_data_page(run, max_rows=20)
    data = page_data(first.path)
    ex = data["examples"]
    assert ex["sampled"] and ex["total"] == 62 and ex["n"] == ex["on_page"] == 20 and ex["seed"] == 0
    assert first.sampled == ("examples",) and "20 of 62 examples (a random sample)" in str(first)
    ids = column(ex, "id")
    assert ids == sorted(ids, key=lambda x: column(ex, "id").index(x))  # the file's order is kept
    assert column(page_data(write_data_page(run, max_rows=20).path)["examples"], "id") == ids  # the same sample
    # The curation tab keeps the scores of the sampled examples only, so both tabs agree.
    assert set(data["curation"][0]["cols"]["id"]) <= set(ids)


def test_a_torn_last_line_is_left_out_and_a_bad_line_is_named(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", n_examples=4)
    folder = RunFolder(run)
    with folder.examples.open("a", encoding="utf-8") as f:
        f.write('{"id": "torn", "instruction": "cut by a cra')
    assert "torn" not in column(page_data(write_data_page(run).path)["examples"], "id")
    folder.examples.write_text('{"id": "x", "instruction": "fine", "output": "fine"}\n{"id": "y"}\n', encoding="utf-8")
    with pytest.raises(judge.ViewerError, match=r"examples.jsonl:2: not a Example \(instruction: Field required\)"):
        write_data_page(run)


def test_a_run_with_answers_only(tmp_path: Path) -> None:
    """A run whose answers were made from an endpoint, with no data of its own: the answers tab alone."""
    run = write_run(tmp_path / "full", n_examples=2)
    only = tmp_path / "answers-only"
    (only / "eval").mkdir(parents=True)
    for name in ("answers", "judgments"):
        getattr(RunFolder(only), name).write_bytes(getattr(RunFolder(run), name).read_bytes())
    data = page_data(write_data_page(only).path)
    assert data["examples"]["n"] == data["rejected"]["n"] == 0 and data["curation"] == []
    assert [q["id"] for q in data["answers"]["questions"]] == ["q-math", "q-write", "q-ko"]
    assert data["answers"]["questions"][0]["turns"] is None  # no config.toml: no question file to read
    assert data["answers"]["questions"][0]["category"] is None


def test_errors_say_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert judge_main(["view", "--run", str(tmp_path / "none")]) == 2
    assert "no run folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert judge_main(["view", "--run", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing to show yet" in err and "just generate --run" in err
    assert not (tmp_path / "empty" / "report").exists()


def test_the_command_and_the_api(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert judge_main(["view", "--run", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"data page of {run} (32 examples, 7 rejected, 3 questions") and "data.html" in out
    page = judge.view(run)
    assert isinstance(page, judge.DataPage) and page.bytes == page.path.stat().st_size
    frame = page._repr_html_()  # a notebook's output cell: the page in an iframe of its own
    assert frame.startswith("<iframe srcdoc=\"&lt;!DOCTYPE html&gt;") and "<script" not in frame.split('"')[1]


def test_the_overview_links_to_the_data_page(run: Path) -> None:
    write_data_page(run)
    out = write_overview(run)
    tags = Tags()
    tags.feed(out.index_html.read_text(encoding="utf-8"))
    assert tags.links.count(RunFolder(run).data_html.name) == 1
    assert 'data-figure="data_page" data-value="true"' in out.index_html.read_text(encoding="utf-8")
