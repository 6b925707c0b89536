"""--structured auto against the servers the simulator plays (factory/simulator/servers.py): the probe
finds what each takes with at most one failed request, records it in the run folder, and the run's
requests then go in that form; a server that takes none of them gets parsed text and one line."""

from __future__ import annotations

import sqlite3
import tomllib
from pathlib import Path

import httpx
import pytest

from factory.__main__ import main
from factory.engine.structured import json_schema_format, wire_form
from factory.simulator import SimConfig, run_simulator
from schemas import Example, read_jsonl

ROOT = Path(__file__).resolve().parents[3]
SEEDS = ROOT / "examples" / "seed_tasks_en.jsonl"
MODEL = "smollm2"


def generate(run: Path, url: str, *extra: str) -> int:
    return main(["generate", "--run", str(run), "--base-url", url, "--model", MODEL, "--price-input", "0",
                 "--price-output", "0", "--no-progress", "--recipe", "self-instruct", "--seeds", str(SEEDS),
                 "--n", "12", *extra])


def probes(run: Path) -> list[str]:
    db = sqlite3.connect(run / "ledger.sqlite")
    try:
        return [s for (s,) in db.execute("SELECT status FROM requests WHERE stage = 'probe' ORDER BY rowid")]
    finally:
        db.close()


def recorded(run: Path, url: str) -> dict:
    return tomllib.loads((run / "config.toml").read_text())["structured"][url]


def stats(url: str) -> dict:
    return httpx.get(url.removesuffix("/v1") + "/sim/stats").json()


def test_the_json_schema_form_becomes_json_object_with_its_schema() -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    form = json_schema_format("probe", schema)
    assert wire_form(form, "json_schema") == form
    assert wire_form(form, "json_object") == {"type": "json_object", "schema": schema}
    assert wire_form({"type": "text"}, "json_object") == {"type": "text"}


def test_llamacpp_takes_json_object_after_one_failed_probe_and_the_run_keeps_examples(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    with run_simulator(SimConfig(seed=2, server="llamacpp", output_tokens=40)) as url:
        assert generate(run, url) == 0
        first = stats(url)
        assert generate(run, url, "--n", "20") == 0  # a rerun of the folder does not probe again
        second = stats(url)
    assert probes(run) == ["failed", "done"], "json_schema refused (the 500 names json_object), json_object works"
    assert recorded(run, url)["format"] == "json_object"
    (error,) = sqlite3.connect(run / "ledger.sqlite").execute(
        "SELECT error FROM requests WHERE stage = 'probe' AND status = 'failed'").fetchone()
    assert "Input should be 'text' or 'json_object'" in error
    assert first["by_status"].get("500", 0) == 1 and second["by_status"].get("500", 0) == 1, "no other request failed"
    examples = read_jsonl(run / "examples.jsonl", Example)
    assert len(examples) >= 20 and all(e.provenance and e.provenance.recipe == "self-instruct" for e in examples)
    assert "structured output" not in capsys.readouterr().err  # no fallback line: structured replies work


def test_vllm_takes_json_schema_with_one_probe(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with run_simulator(SimConfig(seed=2, server="vllm", output_tokens=40)) as url:
        assert generate(run, url) == 0
    assert probes(run) == ["done"] and recorded(run, url)["format"] == "json_schema"


def test_a_server_without_structured_output_gets_text_and_one_line(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    with run_simulator(SimConfig(seed=2, server="textonly", output_tokens=40)) as url:
        generate(run, url, "--n", "3")
        refused = stats(url)["by_status"].get("400", 0)
    err = capsys.readouterr().err
    assert "takes neither json_schema nor json_object replies" in err and "parsed as text" in err
    assert err.count("structured output:") == 1
    assert probes(run) == ["failed"] and recorded(run, url)["format"] == "text"
    assert refused == 1, "after the probe, no request carries a response_format"


@pytest.mark.parametrize("setting", ["yes", "no"])
def test_yes_and_no_send_no_probe(tmp_path: Path, setting: str) -> None:
    run = tmp_path / "run"
    with run_simulator(SimConfig(seed=2, output_tokens=40)) as url:
        generate(run, url, "--n", "3", "--structured", setting)
    assert probes(run) == []
