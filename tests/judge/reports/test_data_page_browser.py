"""The data page in a real browser: headless Chromium (Debian's chromium and chromedriver, driven by
selenium) over a run with every kind of record. It loads with no console error and no request,
search narrows the rows, the reason filter shows only that reason, sorts and ranges work, the
answers sit side by side with their grades, a model's `<script>` stays text, a sampled page says
so, and the page runs inside an iframe as a notebook's output cell shows it. A screenshot is written
under the test's tmp folder.

Where Chromium is missing these tests skip and say how to install it (tests/headless.py); CI
installs it and sets INSTRUCT_FACTORY_REQUIRE_BROWSER=1, so there they cannot skip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headless import chromium, console_problems, require_browser, wait_ready
from judge.reports.data_page import DataPage, write_data_page
from viewer_run import INJECTION, KOREAN, write_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_browser()
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> DataPage:
    return write_data_page(write_run(tmp_path_factory.mktemp("viewer") / "run"))


def load(driver: Any, page: DataPage) -> dict:
    driver.get(page.path.resolve().as_uri())
    return wait_ready(driver)


def css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def status(driver: Any) -> str:
    return driver.execute_script("return document.querySelector('section.view .status').textContent")


def type_search(driver: Any, text: str) -> None:
    """Select what the search box holds and type over it, as a person does (each key an input event)."""
    from selenium.webdriver.common.keys import Keys

    box = css(driver, "section.view input[type=search]")[0]
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(text or Keys.BACKSPACE)


def ids_shown(driver: Any) -> list[str]:
    return [row.find_elements("css selector", "td")[0].text for row in css(driver, "tr.row")]


def test_it_loads_without_console_errors_or_requests(browser: Any, page: DataPage, tmp_path: Path) -> None:
    state = load(browser, page)
    assert state["ready"] and state["firstRenderMs"] <= state["readyMs"]
    assert console_problems(browser) == []
    # Nothing was fetched: no resource besides the page itself.
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    tabs = {b.get_attribute("data-tab"): b.text for b in css(browser, "nav button")}
    assert tabs == {"examples": "Kept examples32", "rejected": "Rejected7", "answers": "Answers3",
                    "curation": "Curation28"}
    assert status(browser) == "1–32 of 32 rows" and len(css(browser, "tr.row")) == 32
    shot = tmp_path / "data-page.png"
    assert browser.save_screenshot(str(shot)) and shot.read_bytes()[:4] == b"\x89PNG"


def test_search_narrows_the_rows(browser: Any, page: DataPage) -> None:
    load(browser, page)
    type_search(browser, "전세 가격")  # Korean, two words: both must match
    assert ids_shown(browser) == ["ex-003"] and status(browser) == "1–1 of 1 rows (of 32)"
    type_search(browser, "rank 8 parameters")  # a later turn of the multi-turn example
    assert ids_shown(browser) == ["ex-chat"]
    css(browser, "tr.row")[0].click()
    turns = [t.text.split("\n")[0] for t in css(browser, "tr.detail .turn")]
    assert turns == ["SYSTEM", "USER", "ASSISTANT", "USER", "ASSISTANT"]
    assert css(browser, "tr.row .tag.turns")[0].text == "2 turns"
    type_search(browser, "")
    assert len(css(browser, "tr.row")) == 32
    type_search(browser, "no such text anywhere")
    assert css(browser, "tr.row") == [] and status(browser) == "no row matches (of 32)"


def test_the_reason_filter_shows_only_that_reason(browser: Any, page: DataPage) -> None:
    from selenium.webdriver.support.ui import Select

    load(browser, page)
    browser.execute_script("window.__viewer.show('rejected')")
    assert len(css(browser, "tr.row")) == 7
    Select(css(browser, "select[data-filter=reason]")[0]).select_by_value("duplicate")
    assert [t.text for t in css(browser, "tr.row .tag.reason")] == ["duplicate"] * 3
    css(browser, "tr.row")[0].click()
    detail = css(browser, "tr.detail")[0].text
    assert "near ex-001 (Jaccard 0.81)" in detail and "gpt-4o-mini" in detail  # the request's model, from the ledger
    Select(css(browser, "select[data-filter=reason]")[0]).select_by_value("length")
    assert [t.text for t in css(browser, "tr.row .tag.reason")] == ["length"] * 2


def test_an_injected_script_stays_text(browser: Any, page: DataPage) -> None:
    load(browser, page)
    type_search(browser, "Repeat this")
    css(browser, "tr.row")[0].click()
    detail = css(browser, "tr.detail")[0].text
    assert f"Repeat this: {INJECTION}" in detail and f"Here it is: {INJECTION}" in detail
    for tab in ("rejected", "answers", "curation"):  # every row opened, every rationale unfolded
        browser.execute_script("window.__viewer.show(arguments[0])", tab)
        browser.execute_script("""
            for (let k = 0; k < document.querySelectorAll('tr.row').length; k++) {
              const row = document.querySelectorAll('tr.row')[k];  // rows are drawn anew on each click
              if (!row.classList.contains('open')) row.click();
            }
            document.querySelectorAll('details').forEach((d) => { d.open = true; });""")
    assert INJECTION in browser.execute_script("return document.body.innerText")  # shown, as text
    assert browser.execute_script("return window.__pwned === undefined")
    assert browser.execute_script("return document.querySelectorAll('#app img, #app script').length") == 0
    assert console_problems(browser) == []


def test_answers_side_by_side_with_their_grades(browser: Any, page: DataPage) -> None:
    load(browser, page)
    browser.execute_script("window.__viewer.show('answers')")
    cards = css(browser, "div.card")
    assert [c.get_attribute("data-question") for c in cards] == ["q-math", "q-write", "q-ko"]
    sides = cards[0].find_elements("css selector", ".side")[0].find_elements("css selector", "[data-label]")
    assert [s.get_attribute("data-label") for s in sides] == ["base", "lora"]
    assert "base answer to q-math turn 1" in sides[0].text and "4 / 10" in sides[0].text
    assert "lora answer to q-math turn 1" in sides[1].text and "8 / 10" in sides[1].text
    assert "lora wins" in cards[0].text and "What is 2 + 2?" in cards[0].text
    assert KOREAN in cards[2].text
    type_search(browser, "haiku")
    assert [c.get_attribute("data-question") for c in css(browser, "div.card")] == ["q-write"]


def test_sorts_and_score_ranges(browser: Any, page: DataPage) -> None:
    load(browser, page)
    header = next(th for th in css(browser, "th.sortable") if th.text.startswith("length"))
    header.click()  # longest first
    lengths = [int(r.find_elements("css selector", "td.num")[0].text.replace(",", "")) for r in css(browser, "tr.row")]
    assert lengths == sorted(lengths, reverse=True) and len(lengths) == 32
    score_min = css(browser, "input[data-range='score min']")[0]
    score_min.send_keys("4")
    scores = [float(r.find_elements("css selector", "td.num")[2].text) for r in css(browser, "tr.row")]
    assert scores and min(scores) >= 4
    browser.execute_script("window.__viewer.show('curation')")
    from selenium.webdriver.support.ui import Select

    Select(css(browser, "section.view select[aria-label=sort]")[0]).select_by_visible_text("overall")
    overall = [r.find_elements("css selector", "td.num")[0].text for r in css(browser, "tr.row")]
    assert overall[-1] == "unscored" and len(overall) == 28  # never a number, and last
    scored = [float(x) for x in overall[:-1]]
    assert scored == sorted(scored, reverse=True)
    Select(css(browser, "select[data-filter=status]")[0]).select_by_value("unscored")
    css(browser, "tr.row")[0].click()
    assert "no JSON object and no score marker" in css(browser, "tr.detail")[0].text


def test_a_sampled_page_says_so(browser: Any, tmp_path: Path) -> None:
    sampled = write_data_page(write_run(tmp_path / "run", n_examples=60), max_rows=20)
    load(browser, sampled)
    note = css(browser, "[data-note=sample]")[0].text
    assert "holds 62 kept examples" in note and "random sample of 20" in note
    assert status(browser) == "1–20 of 20 rows"


def test_a_run_without_data_opens_on_its_answers(browser: Any, tmp_path: Path) -> None:
    from schemas import RunFolder

    full = RunFolder(write_run(tmp_path / "full", n_examples=2))
    only = RunFolder(tmp_path / "answers-only")
    only.eval_dir.mkdir(parents=True)
    only.answers.write_bytes(full.answers.read_bytes())
    only.judgments.write_bytes(full.judgments.read_bytes())
    state = load(browser, write_data_page(only.root))
    assert state["tab"] == "answers" and len(css(browser, "div.card")) == 3
    assert "(the question's text is not in the run's question files)" in css(browser, "div.card")[0].text
    browser.execute_script("window.__viewer.show('examples')")
    assert "No kept examples yet: just generate --run" in browser.execute_script("return document.body.innerText")
    assert console_problems(browser) == []


def test_it_runs_in_an_iframe_as_a_notebook_output_cell(browser: Any, page: DataPage, tmp_path: Path) -> None:
    """judge.view(run) in a notebook shows `page._repr_html_()`: the page in an iframe's srcdoc."""
    cell = tmp_path / "cell.html"
    cell.write_text(f"<!DOCTYPE html><html><body><div class='output'>{page._repr_html_()}</div></body></html>",
                    encoding="utf-8")
    browser.get(cell.as_uri())
    browser.switch_to.frame(css(browser, "iframe")[0])
    try:
        wait_ready(browser)
        assert len(css(browser, "tr.row")) == 32 and console_problems(browser) == []
    finally:
        browser.switch_to.default_content()
