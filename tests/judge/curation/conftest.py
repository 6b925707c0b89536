"""These tests use the judge tests' helpers (judge_fakes) one folder up."""

import sys
from pathlib import Path

_JUDGE_TESTS = str(Path(__file__).resolve().parents[1])
if _JUDGE_TESTS not in sys.path:
    sys.path.insert(0, _JUDGE_TESTS)
