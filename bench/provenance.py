"""Where a benchmark figure comes from: every bench/results/NAME.json holds one run's figures and says
when (UTC), from which git commit, on what machine and by which command line they were measured.

    from bench.provenance import write_result      # after putting the repository root on sys.path
    write_result(ROOT / "bench/results/engine.json", {"overhead_req_per_s": 522.2, ...})

A file is always rewritten whole (atomically), so it never mixes figures of two runs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _memory_gib() -> float | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return round(pages * size / 2**30, 1)


def provenance(started: dt.datetime | None = None) -> dict[str, Any]:
    """The run's date, commit (and whether the tree had uncommitted changes), machine and command."""
    commit = _git("rev-parse", "HEAD") or "unknown (not a git checkout)"
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": (started or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "uncommitted_changes": dirty,
        "machine": {
            "system": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "memory_gib": _memory_gib(),
            "python": platform.python_version(),
            # Other work on the machine slows a timed run: the 1-minute load average at its end says how much.
            "load_average_1m_at_end": round(load[0], 2) if load else None,
        },
        "command": shlex.join(["python", *sys.argv]),
    }


def write_result(path: Path, figures: dict[str, Any], started: dt.datetime | None = None) -> dict[str, Any]:
    """Write `figures` with their provenance to `path` (replacing the whole file); return what was written."""
    result = {"provenance": provenance(started), **figures}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return result
