"""Where a recipe's results go: `examples.jsonl` (kept) and `rejected.jsonl` (dropped, with the
reason), each record written once however often a request is processed again after a crash."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from schemas import Example, JsonlWriter, Rejected, RunFolder, iter_jsonl


class Outputs:
    """Appends kept examples and rejections; an id already in either file is not written again
    (a request processed again after a kill gives the same ids)."""

    def __init__(self, run: str | Path | RunFolder, *, write: bool = True) -> None:
        folder = RunFolder(run)
        self.examples_path = folder.examples
        self.rejected_path = folder.rejected
        self.kept_ids: set[str] = set()
        self.rejected_ids: set[str] = set()
        self.rejected_before: Counter[str] = Counter()
        for ex in iter_jsonl(self.examples_path, Example):
            self.kept_ids.add(ex.id)
        for rej in iter_jsonl(self.rejected_path, Rejected):
            self.rejected_ids.add(rej.id)
            self.rejected_before[reason_label(rej)] += 1
        self.kept_before = len(self.kept_ids)
        self.kept_now = 0
        self.rejected_now: Counter[str] = Counter()
        self._examples = JsonlWriter(self.examples_path) if write else None
        self._rejected = JsonlWriter(self.rejected_path) if write else None

    @property
    def kept(self) -> int:
        """Examples kept in the run folder, this run's included."""
        return len(self.kept_ids)

    def known(self, item_id: str) -> bool:
        return item_id in self.kept_ids or item_id in self.rejected_ids

    def write(self, examples: list[Example], rejected: list[Rejected]) -> None:
        """Write the records whose ids are new. A kill between the two appends is repaired by the
        rerun, which processes the request again: the ids already written are skipped."""
        rejected = [r for r in rejected if r.id not in self.rejected_ids and r.id not in self.kept_ids]
        examples = [e for e in examples if e.id not in self.kept_ids and e.id not in self.rejected_ids]
        if rejected:
            if self._rejected is not None:
                self._rejected.append(rejected)
            for r in rejected:
                self.rejected_ids.add(r.id)
                self.rejected_now[reason_label(r)] += 1
        if examples:
            if self._examples is not None:
                self._examples.append(examples)
            self.kept_ids.update(e.id for e in examples)
            self.kept_now += len(examples)

    def close(self) -> None:
        for w in (self._examples, self._rejected):
            if w is not None:
                w.close()


def reason_label(r: Rejected) -> str:
    """The reason, prefixed with the stage when it is not the final examples' ("questions: duplicate")."""
    stage = getattr(r, "stage", "")
    return f"{stage}: {r.reason}" if stage else r.reason
