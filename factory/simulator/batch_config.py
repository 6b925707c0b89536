"""How the simulated Batch API behaves (`BatchSimConfig`) and its flags on the simulator's command line."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from .config import SimConfigError


@dataclass(frozen=True)
class BatchSimConfig:
    """How the simulated Batch API behaves. Checked when built."""

    seconds: float = 2.0  # creation to completion (the real API takes up to 24 h)
    fail_rate: float = 0.0  # share of line attempts that end as a 500 in the error file
    fail_custom_ids: frozenset[str] = frozenset()  # these lines fail their first attempt
    expire_rate: float = 0.0  # chance that a batch runs out of time
    expire_first: int = 0  # the first N batches created run out of time (for tests)
    expire_share: float = 0.5  # share of an expiring batch's lines left unfinished
    max_requests: int = 50_000  # lines per input file (the API's limit)
    max_file_bytes: int = 200 * 1024 * 1024  # bytes per input file (the API's limit)
    # Prompt tokens a model may have in unfinished batches at once (OpenAI's "enqueued token
    # limit", per organisation and model); a batch over it fails with token_limit_exceeded.
    enqueued_token_limit: int | None = None
    # The replies to the first `late_create_replies` batch creates are held back `late_reply_s`
    # seconds after the batch exists: a client killed meanwhile made a batch it never heard of
    # (a lost create reply).
    late_create_replies: int = 0
    late_reply_s: float = 30.0

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise SimConfigError(f"batch seconds is {self.seconds}; use >= 0 (e.g. 2 for a two-second batch)")
        for name in ("fail_rate", "expire_rate", "expire_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise SimConfigError(f"batch {name} is {value}; use a share between 0 and 1")
        if self.expire_first < 0:
            raise SimConfigError(f"batch expire_first is {self.expire_first}; use 0 or more batches")
        if self.max_requests < 1 or self.max_file_bytes < 1:
            raise SimConfigError("batch max_requests and max_file_bytes must be at least 1")
        if self.late_create_replies < 0 or self.late_reply_s < 0:
            raise SimConfigError("batch late_create_replies and late_reply_s must be >= 0")
        if self.enqueued_token_limit is not None and self.enqueued_token_limit < 1:
            raise SimConfigError("batch enqueued_token_limit must be at least 1 (or None: no limit)")
        object.__setattr__(self, "fail_custom_ids", frozenset(self.fail_custom_ids))


def add_batch_arguments(p: argparse.ArgumentParser) -> None:
    """The Batch API's flags, for the simulator's command line."""
    g = p.add_argument_group("batch API")
    g.add_argument("--batch-seconds", type=float, default=2.0,
                   help="seconds from a batch's creation to its completion (default 2; the real API takes up to 24 h)")
    g.add_argument("--batch-fail-rate", type=float, default=0.0,
                   help="share of batch lines answered with an error line (default 0)")
    g.add_argument("--batch-expire-rate", type=float, default=0.0,
                   help="chance that a batch expires with some lines unfinished (default 0)")
    g.add_argument("--batch-expire-share", type=float, default=0.5,
                   help="share of an expiring batch's lines left unfinished (default 0.5)")
    g.add_argument("--batch-max-requests", type=int, default=50_000, help="lines per input file (default 50000)")
    g.add_argument("--batch-late-creates", type=int, default=0,
                   help="the replies to the first N batch creates come 30 s after the batch exists (default 0)")
    g.add_argument("--batch-enqueued-tokens", type=int, default=None,
                   help="prompt tokens a model may have in unfinished batches (default: no limit)")


def batch_config_from_args(args: argparse.Namespace) -> BatchSimConfig:
    return BatchSimConfig(
        seconds=args.batch_seconds, fail_rate=args.batch_fail_rate, expire_rate=args.batch_expire_rate,
        expire_share=args.batch_expire_share, max_requests=args.batch_max_requests,
        enqueued_token_limit=args.batch_enqueued_tokens,
        late_create_replies=args.batch_late_creates,
    )
