"""What a batch run did (`BatchStats`), the batches it follows (`OpenBatch`), and its progress
line: rewritten in place on a terminal, a new line on change elsewhere."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

from factory.batch.ledger import BatchFile
from factory.engine.money import usd
from schemas import Usage

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass
class BatchStats:
    requests: int = 0  # given by the caller
    duplicates: int = 0  # the same key twice: sent once
    cached: int = 0  # done in an earlier run: given back from the ledger
    done: int = 0  # answered in this run
    failed: int = 0  # gave up in this run (not retryable, or out of attempts)
    final_earlier: int = 0  # recorded as final failures by an earlier run: given back, not resent
    final_errors: Counter[str] = field(default_factory=Counter)  # final failures (earlier and now) by error
    pending: int = 0  # still in batches on the server when `run_batch` returned
    submitted: int = 0  # request lines sent in new batches this run (resubmissions included)
    resubmitted: int = 0  # of which, sent again after a failed or unfinished line
    batches_created: int = 0
    batches_attached: int = 0  # submitted by an earlier run, found open and followed
    batch_ids: list[str] = field(default_factory=list)  # created or attached in this run
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = 0.0  # at batch prices; None when a model's price is unknown
    stopped_reason: str | None = None  # None, or "budget": requests were left out to fit --max-cost
    left_over: int = 0  # requests not submitted: they did not fit --max-cost
    budget_note: str | None = None  # what was left out for the budget, and what to change
    elapsed_s: float = 0.0

    def summary(self) -> str:
        cost = usd(self.cost_usd)
        stopped = f"; stopped: {self.stopped_reason}" if self.stopped_reason else ""
        pending = f", {self.pending} pending in batches (rerun to collect)" if self.pending else ""
        earlier = f", {self.final_earlier} final failures of earlier runs" if self.final_earlier else ""
        return (
            f"{self.done} done, {self.failed} failed, {self.cached} cached{earlier}, {self.duplicates} duplicate{pending}; "
            f"{self.batches_created} batches created, {self.batches_attached} attached; "
            f"{self.submitted} lines submitted ({self.resubmitted} resubmitted); "
            f"{self.usage.input_tokens} input + {self.usage.output_tokens} output tokens; {cost} at batch prices; "
            f"{self.elapsed_s:.1f}s{stopped}{self.final_summary()}"
            + (f"\n{self.budget_note}" if self.budget_note else "")
        )

    def final_summary(self) -> str:
        """The final failures grouped by error, most frequent first ('' when there are none)."""
        total = sum(self.final_errors.values())
        if not total:
            return ""
        groups = "; ".join(f"{count} x {error}" for error, count in self.final_errors.most_common())
        return (f"\n{total} final failures (the request itself was refused; a rerun does not send them again "
                f"unless --retry-failed): {groups}")


@dataclass
class OpenBatch:
    """A batch on the server whose results are not collected yet."""

    file: BatchFile
    batch_id: str
    status: str
    keys: list[str]
    completed: int = 0
    failed: int = 0


def describe(open_batches: list[OpenBatch], stats: BatchStats, unique: int, to_resubmit: int) -> str:
    """The progress line: the open batches by state, then the requests' tally and the money."""
    by_status: dict[str, list[OpenBatch]] = {}
    for o in open_batches:
        by_status.setdefault(o.status, []).append(o)
    parts = []
    for status in ("validating", "in_progress", "finalizing", "cancelling", *sorted(TERMINAL)):
        group = by_status.get(status)
        if not group:
            continue
        text = f"{len(group)} {status}"
        if status == "in_progress":
            total = sum(len(o.keys) for o in group)
            text += (f" ({sum(o.completed for o in group)}/{total} lines done, "
                     f"{sum(o.failed for o in group)} failed)")
        parts.append(text)
    s = stats
    batches = ", ".join(parts) if parts else "no batch open"
    cost = usd(s.cost_usd)
    line = (f"batch: {batches} | {s.done + s.cached}/{unique} done ({s.cached} cached), {s.failed} failed, "
            f"{to_resubmit} to resubmit | {cost} spent at batch prices")
    if s.stopped_reason:
        line += f" | stopped ({s.stopped_reason})"
    return line


class Progress:
    """The batch progress line: rewritten in place on a terminal, a new line on change elsewhere."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last = ""
        self._width = 0

    def show(self, line: str, *, force: bool = False) -> None:
        """`force`: the last line of a run (a TTY gets its newline)."""
        if line == self._last and not (force and self.tty):
            return
        self._last = line
        if self.tty:
            self.stream.write("\r" + line + " " * max(0, self._width - len(line)) + ("\n" if force else ""))
            self._width = 0 if force else len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

