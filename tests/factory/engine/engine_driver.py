"""A small program that runs the engine the way a stage does, for the crash tests.

    python engine_driver.py RUN_DIR BASE_URL N [--concurrency C]

Sends N requests ("question 0" ... "question N-1") and appends each result to
RUN_DIR/outputs.jsonl with schemas.JsonlWriter from on_result, skipping keys the file already
holds (a rerun gets the ledger's answers back as cached). Prints the RunStats as JSON on stdout.
Exit 0 when it ran to the end or was interrupted cleanly, 2 on a FactoryError.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import anyio

from factory.engine import ChatRequest, ChatResult, Engine
from factory.errors import FactoryError
from factory.engine.ledger import Ledger
from factory.engine.settings import EngineSettings
from schemas import JsonlWriter, LLMCall, iter_jsonl


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir", type=Path)
    p.add_argument("base_url")
    p.add_argument("n", type=int)
    p.add_argument("--concurrency", type=int, default=8)
    args = p.parse_args()

    out_path = args.run_dir / "outputs.jsonl"
    written = {c.key for c in iter_jsonl(out_path, LLMCall)}
    requests = [
        ChatRequest("crash-test", "gpt-4o-mini", [{"role": "user", "content": f"question {i}"}], {"max_tokens": 30})
        for i in range(args.n)
    ]
    settings = EngineSettings(base_url=args.base_url, max_concurrency=args.concurrency, timeout_s=10,
                              progress=False, drain_timeout_s=5)
    try:
        with Ledger.for_run(args.run_dir) as ledger, JsonlWriter(out_path) as out:

            def on_result(result: ChatResult) -> None:
                if result.call.key not in written:
                    out.append(result.call)
                    written.add(result.call.key)
                    print(f"wrote {len(written)}", file=sys.stderr, flush=True)

            engine = Engine(settings, ledger, api_key="sk-driver-key-000000")
            stats = anyio.run(engine.run, requests, on_result, len(requests))
    except FactoryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(stats.to_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
