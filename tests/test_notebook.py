"""notebooks/tutorial.ipynb, executed top to bottom in a real Jupyter kernel (nbclient) in its offline
mode: the simulator on 127.0.0.1 and the tiny random model, on the CPU, with no key. Then the
outputs it produced are checked: the kept examples, a falling loss, the report.

The kernel is this Python (sys.executable), through a kernelspec written to a temporary folder, so
that the test runs in whatever virtual environment runs the tests, never a kernel of the system."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="pip install 'instruct-factory[notebook]'")
nbclient = pytest.importorskip("nbclient", reason="pip install 'instruct-factory[notebook]'")
pytest.importorskip("ipykernel", reason="pip install 'instruct-factory[notebook]'")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402

from schemas import Example, read_jsonl  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "tutorial.ipynb"
KERNEL = "instruct-factory-test"


def offline(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook with its one mode cell switched to offline."""
    cells = [c for c in nb.cells if "mode" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "one cell, tagged mode, switches the notebook"
    assert cells[0].source.strip() == "OFFLINE = False", "the mode cell is just the switch"
    cells[0].source = "OFFLINE = True"
    return nb


def kernel_manager(tmp_path: Path, env: dict[str, str]) -> KernelManager:
    """A kernel of this very Python, with `env` added to its environment."""
    spec = tmp_path / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "instruct-factory test", "language": "python", "env": env,
    }))
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    return KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)


def text_of(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> tuple[nbformat.NotebookNode, Path]:
    """The notebook run once in its offline mode (the tests below read what it produced)."""
    tmp_path = tmp_path_factory.mktemp("notebook")
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "INSTRUCT_FACTORY_REPO"):
            monkeypatch.delenv(name, raising=False)
        run = tmp_path / "runs" / "tutorial"
        env = {
            "TUTORIAL_RUN": str(run),
            "PYTHONPATH": str(ROOT),
            "OMP_NUM_THREADS": "1",
            "TIKTOKEN_CACHE_DIR": str(tmp_path / "tiktoken-empty"),  # nothing downloaded: the fallback estimator
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        }
        nb = offline(nbformat.read(NOTEBOOK, as_version=4))
        client = nbclient.NotebookClient(nb, km=kernel_manager(tmp_path, env), timeout=240,
                                         resources={"metadata": {"path": str(ROOT / "notebooks")}})
        client.execute(cleanup_kc=True)  # and shut the kernel down: nbclient leaves one it did not start
    return nb, run


def html_outputs(nb: nbformat.NotebookNode) -> list[str]:
    return ["".join(o["data"]["text/html"]) for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if "text/html" in o.get("data", {})]


@pytest.mark.slow
def test_the_tutorial_runs_offline_in_a_kernel(executed: tuple[nbformat.NotebookNode, Path]) -> None:
    nb, run = executed
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    code = [c for c in nb.cells if c.cell_type == "code"]
    printed = "\n".join(text_of(c) for c in code)
    assert "mode: offline (simulator, tiny model)" in printed

    # The dry run printed its plan before anything was sent.
    assert "dry run: nothing is sent" in printed and re.search(r"=> \d+ requests, at most \$\d", printed)

    # Kept examples: as many as the notebook asked for, in the file and in the DataFrame it showed.
    asked = int(re.search(r"examples to keep: (\d+)", printed).group(1))
    kept = read_jsonl(run / "examples.jsonl", Example)
    assert f"done: {len(kept)} examples kept (asked for {asked})" in printed and len(kept) >= asked > 0
    assert f"kept examples: {len(kept)}" in printed
    frames = [o for c in code for o in c.get("outputs", []) if "text/html" in o.get("data", {})]
    assert any(kept[0].instruction[:20].replace("&", "&amp;").replace("<", "&lt;") in "".join(o["data"]["text/html"])
               for o in frames), "the DataFrame of the examples is shown"

    # A falling loss: printed by the notebook, and in the metrics file.
    first, last = map(float, re.search(r"loss: ([\d.]+) -> ([\d.]+)", printed).groups())
    assert last < first
    metrics = [json.loads(x) for x in (run / "train" / "metrics.jsonl").read_text().splitlines() if x.strip()]
    assert metrics[0]["loss"] == pytest.approx(first, abs=1e-4) and metrics[-1]["loss"] == pytest.approx(last, abs=1e-4)
    images = [o for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 3, "the loss chart and the report's charts are shown inline"

    # Answers before and after, judged, and the report shown inline.
    answers = [json.loads(x) for x in (run / "eval" / "answers.jsonl").read_text().splitlines() if x.strip()]
    assert {a["model"] for a in answers} == {"base", "lora"}
    assert (run / "eval" / "judgments.jsonl").is_file()
    index = run / "report" / "index.html"
    assert index.is_file() and f"report: {index}" in printed
    assert any("<iframe srcdoc=" in "".join(o.get("data", {}).get("text/html", "")) for c in code
               for o in c.get("outputs", [])), "the report is shown in an IFrame"
    summary = json.loads((run / "report" / "summary.json").read_text())
    assert summary["headline"]["simulated"] is True and summary["training"]["loss_fell"] is True
    assert summary["headline"]["kept_examples"] == len(kept)

    # The data page, shown in its output cell (an iframe of its own), and the export with its card.
    data_page = run / "report" / "data.html"
    assert data_page.is_file() and f"data page of {run} ({len(kept)} examples" in printed
    assert any(h.startswith("<iframe srcdoc=") and "data-page=&quot;instruct-factory-data&quot;" in h
               for h in html_outputs(nb)), "the data page is shown in an output cell"
    export = run / "export" / "train.jsonl"
    lines = export.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(kept) and json.loads(lines[0]).keys() == {"messages"}
    assert f"exported {len(kept)} of {len(kept)} kept examples" in printed and "# tutorial:" in printed


@pytest.mark.slow
def test_the_data_page_renders_in_its_output_cell(executed: tuple[nbformat.NotebookNode, Path], tmp_path: Path) -> None:
    """The output cell's HTML, as a notebook shows it, in headless Chromium: the page runs in its iframe
    and shows the run's kept examples."""
    from headless import chromium, console_problems, require_browser, wait_ready

    require_browser()
    nb, run = executed
    (cell,) = [h for h in html_outputs(nb) if "instruct-factory-data" in h]
    shown = tmp_path / "output-cell.html"
    shown.write_text(f"<!DOCTYPE html><html><body><div class='output_html'>{cell}</div></body></html>", encoding="utf-8")
    kept = read_jsonl(run / "examples.jsonl", Example)
    with chromium() as driver:
        driver.get(shown.as_uri())
        driver.switch_to.frame(driver.find_element("css selector", "iframe"))
        state = wait_ready(driver)
        rows = driver.find_elements("css selector", "tr.row")
        assert state["ready"] and len(rows) == min(50, len(kept))
        assert rows[0].find_elements("css selector", "td")[0].text == kept[0].id
        assert console_problems(driver) == []
        driver.switch_to.default_content()
        assert driver.save_screenshot(str(tmp_path / "output-cell.png"))




def test_the_online_mode_without_a_key_stops_with_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As shipped (online), with no key anywhere, the notebook stops at its settings cell with the fix,
    before anything is sent or written."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "INSTRUCT_FACTORY_REPO"):
        monkeypatch.delenv(name, raising=False)
    run = tmp_path / "runs" / "tutorial"
    env = {"TUTORIAL_RUN": str(run), "PYTHONPATH": str(ROOT)}
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, km=kernel_manager(tmp_path, env), timeout=120,
                                     resources={"metadata": {"path": str(ROOT / "notebooks")}})
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="OPENAI_API_KEY가 없습니다"):
        client.execute(cleanup_kc=True)
    assert not run.exists()
