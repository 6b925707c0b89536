"""The README's `just generate` commands, at their full size against the simulator: the dry run's
projected range of requests holds what the run then sends (the demo's commands are checked in
tests/test_demo.py). The Batch API command is left out: its requests are counted the same way, and
a thousand-request batch would take this test's time for no new check."""

from __future__ import annotations

import re
import shlex
import sqlite3
from pathlib import Path

import pytest

from tests.test_readme import README, ROOT, _argv, fenced_commands

COMMANDS = sorted({
    " ".join(a for a in shlex.split(c) if a != "--dry-run")
    for c in fenced_commands(README.read_text(encoding="utf-8"))
    if c.startswith("just generate ") and "--batch" not in c
})


def test_the_readme_shows_generate_commands() -> None:
    assert len(COMMANDS) >= 3, COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_the_dry_runs_range_holds_what_the_readme_command_sends(command: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from factory.__main__ import main
    from factory.simulator import SimConfig, run_simulator

    for name in ("examples", "evalsets"):
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "no-tiktoken"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-readme-test")
    argv = _argv(command)[1:]  # without the package: factory's main takes `generate ...`
    with run_simulator(SimConfig(seed=3, rpm=100_000, tpm=100_000_000)) as url:
        monkeypatch.setenv("OPENAI_BASE_URL", url)
        assert main([*argv, "--dry-run"]) == 0
        m = re.search(r"total: \d+ requests expected \(between (\d+) and (\d+)\)", capsys.readouterr().out)
        assert m is not None, "the dry run shows no range"
        assert main(argv) == 0
    run = tmp_path / argv[argv.index("--run") + 1]
    db = sqlite3.connect(run / "ledger.sqlite")
    try:
        (sent,) = db.execute("SELECT COUNT(*) FROM requests").fetchone()
    finally:
        db.close()
    assert int(m.group(1)) <= sent <= int(m.group(2)), (command, sent, m.group(0))
