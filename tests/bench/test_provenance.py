"""Every benchmark result file says when, from which commit, on what machine and by which command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.provenance import write_result  # noqa: E402


def test_a_result_file_holds_one_run_with_its_provenance(tmp_path: Path) -> None:
    out = tmp_path / "results/x.json"
    out.parent.mkdir()
    out.write_text(json.dumps({"old_figure": 1.0, "provenance": {"commit": "old"}}))

    write_result(out, {"items_per_s": 12.5})

    data = json.loads(out.read_text())
    assert "old_figure" not in data  # a rewrite never keeps figures of an earlier run
    assert data["items_per_s"] == 12.5
    prov = data["provenance"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert prov["commit"] == head
    assert prov["date"].startswith("20") and prov["date"].endswith("+00:00")
    assert prov["machine"]["cpus"] >= 1 and prov["machine"]["python"]
    assert prov["command"].startswith("python ")
    assert not list(out.parent.glob("*.tmp"))
