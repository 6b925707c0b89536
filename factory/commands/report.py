"""`python -m factory report --run RUN`: what a run cost and what it kept, from its own files.

Reads (never writes) `RUN/ledger.sqlite`, `RUN/examples.jsonl`, `RUN/rejected.jsonl` and
`RUN/config.toml`; writes `RUN/report/cost.md`, charts beside it (`cost_*.png`) and the "cost"
key of `RUN/report/summary.json` (the keys other reports wrote there are kept). The figures and
how they are made: factory/cost/.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from factory.cost import write_cost_report
from factory.engine.money import usd


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "report",
        help="cost report of a run: report/cost.md, charts, summary.json",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--run", type=Path, required=True, help="the run folder, e.g. runs/NAME")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    out = write_cost_report(args.run)
    g = out.cost["generation"]
    print(f"cost: {usd(out.cost['totals']['cost_usd'] if out.cost['totals'] else 0.0)} in all; "
          f"{g['kept']:,} kept examples at {usd(g['usd_per_kept'])} each")
    print(f"wrote {out.cost_md}, {out.summary_json}" + "".join(f", {c}" for c in out.charts))
    return 0


__all__ = ["add_parser", "main"]
