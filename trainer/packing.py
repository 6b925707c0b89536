"""Packing: many examples in one [1, T] row, positions restarting per example, no padding between them.

`plan_microbatches` decides which examples share a micro-batch (best-fit-decreasing into a token budget);
`collate` lays one micro-batch out as a `PackedBatch`. Everything the attention backends and the loss need
per batch (cu_seqlens, max_seqlen, the supervised positions, the count of supervised tokens) is computed
here, once, on the host: the GPU hot path then never has to sync to read a length back.

Label convention: `PackedBatch.labels[t]` is the target of position t, ALREADY SHIFTED inside each
example (labels[t] = token t+1 of the same example, or -100). The last position of every example gets
-100, so no loss ever asks an example to predict the first token of the next one.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from trainer.checkpoint import DataPosition

if TYPE_CHECKING:
    from trainer.data import TokenizedExample

IGNORE_INDEX = -100


def plan_microbatches(lengths: Sequence[int], token_budget: int) -> list[list[int]]:
    """Group example indices into micro-batches of at most `token_budget` tokens, best-fit-decreasing.

    Longest first (ties: lower index first); each example goes into the open micro-batch whose free space
    is the smallest that still fits it, else into a new one. Deterministic: the same lengths give the same
    plan. Inside a micro-batch, indices are in placement order (longest first). Every index appears once.

    An example longer than the budget is an error (not a batch of its own): the budget must be at least
    the longest example, i.e. token_budget >= max_len of encoding.
    """
    if token_budget < 1:
        raise ValueError(f"token_budget must be a positive number of tokens, got {token_budget}")
    for i, n in enumerate(lengths):
        if n < 1:
            raise ValueError(f"example {i} has {n} tokens; every example needs at least one")
        if n > token_budget:
            raise ValueError(
                f"example {i} has {n} tokens, more than the token budget of {token_budget} per micro-batch: "
                "raise the token budget to at least the maximum sequence length, or lower max_len"
            )
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    # Open bins sorted by (free space, bin number): bisect finds the tightest bin that fits in O(log n).
    free: list[tuple[int, int]] = []
    for i in order:
        n = lengths[i]
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            space, b = free.pop(k)
            bins[b].append(i)
            space -= n
        else:
            b = len(bins)
            bins.append([i])
            space = token_budget - n
        if space > 0:
            bisect.insort(free, (space, b))
    return bins


def supervised_count(example: TokenizedExample) -> int:
    """How many of the example's positions are trained (collate's num_supervised for it alone)."""
    return sum(1 for y in example.labels[1:] if y != IGNORE_INDEX)


@dataclass
class PackedBatch:
    """One micro-batch as a single packed row.

    input_ids, labels, position_ids: [1, T] int64. labels are shifted targets (see the module docstring).
    cu_seqlens: [S + 1] int32, the start of each segment and T at the end (segments: the examples, then
    the padding, if any, as one more segment). max_seqlen: the longest segment.
    seq_lengths: the segment lengths as Python ints (the CPU mask is built from these without a sync).
    supervised_index: [N] int64, the positions t with labels[0, t] != -100; supervised_targets: [N] their
    labels. num_supervised = N; num_examples counts examples (not the padding segment).
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor
    cu_seqlens: torch.Tensor
    max_seqlen: int
    seq_lengths: list[int]
    supervised_index: torch.Tensor
    supervised_targets: torch.Tensor
    num_supervised: int
    num_examples: int
    num_padding: int = 0

    @property
    def num_tokens(self) -> int:
        """Tokens in the row, padding included."""
        return int(self.input_ids.shape[1])

    @property
    def num_real_tokens(self) -> int:
        """Tokens that belong to examples (what tokens/s should count)."""
        return self.num_tokens - self.num_padding

    def to(self, device: torch.device | str, non_blocking: bool = True) -> PackedBatch:
        """The same batch on `device`. Host copies are pinned first so the transfer overlaps compute."""
        device = torch.device(device)

        def move(t: torch.Tensor) -> torch.Tensor:
            if device.type == "cuda" and t.device.type == "cpu":
                t = t.pin_memory()
            return t.to(device, non_blocking=non_blocking)

        return PackedBatch(
            input_ids=move(self.input_ids),
            labels=move(self.labels),
            position_ids=move(self.position_ids),
            cu_seqlens=move(self.cu_seqlens),
            max_seqlen=self.max_seqlen,
            seq_lengths=list(self.seq_lengths),
            supervised_index=move(self.supervised_index),
            supervised_targets=move(self.supervised_targets),
            num_supervised=self.num_supervised,
            num_examples=self.num_examples,
            num_padding=self.num_padding,
        )


def collate(
    examples: Sequence[TokenizedExample], *, pad_to_multiple: int = 1, pad_id: int = 0
) -> PackedBatch:
    """Pack `examples` (in the given order) into one row.

    pad_to_multiple > 1 pads the row at the end to a multiple of it (a fixed set of shapes keeps
    torch.compile from recompiling for every length); the padding is its own segment, attends only to
    itself, and carries no labels.
    """
    if not examples:
        raise ValueError("collate needs at least one example")
    if pad_to_multiple < 1:
        raise ValueError(f"pad_to_multiple must be >= 1, got {pad_to_multiple}")
    ids: list[int] = []
    targets: list[int] = []
    positions: list[int] = []
    lengths: list[int] = []
    for ex in examples:
        n = len(ex.input_ids)
        if n == 0 or n != len(ex.labels):
            raise ValueError(f"example has {n} input ids and {len(ex.labels)} labels; need the same, non-zero count")
        ids.extend(ex.input_ids)
        # Shift inside the example: position t predicts token t+1; the last position predicts nothing.
        targets.extend(ex.labels[1:])
        targets.append(IGNORE_INDEX)
        positions.extend(range(n))
        lengths.append(n)
    total = len(ids)
    padding = (-total) % pad_to_multiple
    if padding:
        ids.extend([pad_id] * padding)
        targets.extend([IGNORE_INDEX] * padding)
        positions.extend(range(padding))
        lengths.append(padding)
    cu = [0]
    for n in lengths:
        cu.append(cu[-1] + n)
    supervised = [t for t, y in enumerate(targets) if y != IGNORE_INDEX]
    return PackedBatch(
        input_ids=torch.tensor([ids], dtype=torch.long),
        labels=torch.tensor([targets], dtype=torch.long),
        position_ids=torch.tensor([positions], dtype=torch.long),
        cu_seqlens=torch.tensor(cu, dtype=torch.int32),
        max_seqlen=max(lengths),
        seq_lengths=lengths,
        supervised_index=torch.tensor(supervised, dtype=torch.long),
        supervised_targets=torch.tensor([targets[t] for t in supervised], dtype=torch.long),
        num_supervised=len(supervised),
        num_examples=len(examples),
        num_padding=padding,
    )


# --------------------------------------------------------------------------------------------------
# The plan of optimizer steps: micro-batches per epoch, grouped into steps


@dataclass(frozen=True)
class PlannedStep:
    """One optimizer step: its micro-batches (lists of example indices) for ALL ranks together;
    rank r trains on micro_batches[r::world_size]."""

    epoch: int
    first_micro_batch: int  # where the step starts in its epoch's micro-batch order
    micro_batches: list[list[int]]


def plan_epoch(lengths: Sequence[int], *, token_budget: int, seed: int, epoch: int) -> list[list[int]]:
    """Micro-batches of one epoch, in training order; a pure function of (lengths, budget, seed, epoch)."""
    rng = random.Random(seed * 1_000_003 + epoch)  # own RNG: the plan never depends on global state
    order = list(range(len(lengths)))
    rng.shuffle(order)  # breaks length ties differently each epoch
    bins = plan_microbatches([lengths[i] for i in order], token_budget)
    micro_batches = [[order[j] for j in b] for b in bins]
    # Best-fit-decreasing emits the longest examples first; shuffle so the loss curve has no length trend.
    rng.shuffle(micro_batches)
    return micro_batches


def plan_steps(
    lengths: Sequence[int], *, token_budget: int, grad_accum: int, world_size: int, epochs: int, seed: int
) -> tuple[list[PlannedStep], int]:
    """All optimizer steps of the run, and how many examples were left out.

    A step takes grad_accum * world_size micro-batches. An epoch's last step may be shorter, but every rank
    must get the same number of micro-batches (a rank without one would wait forever in the all-reduce),
    so up to world_size - 1 micro-batches at the end of an epoch are skipped (none on one GPU).
    """
    per_step = grad_accum * world_size
    steps: list[PlannedStep] = []
    skipped = 0
    for epoch in range(epochs):
        micro_batches = plan_epoch(lengths, token_budget=token_budget, seed=seed, epoch=epoch)
        for start in range(0, len(micro_batches), per_step):
            group = micro_batches[start : start + per_step]
            usable = len(group) - len(group) % world_size
            skipped += sum(len(mb) for mb in group[usable:])
            if usable:
                steps.append(PlannedStep(epoch=epoch, first_micro_batch=start, micro_batches=group[:usable]))
    return steps, skipped


def position_after(steps: Sequence[PlannedStep], done: int, epochs: int) -> DataPosition:
    """The data position once `done` steps are finished (where step `done` starts reading)."""
    if done < len(steps):
        return DataPosition(step=done, epoch=steps[done].epoch, micro_batch=steps[done].first_micro_batch)
    return DataPosition(step=done, epoch=epochs, micro_batch=0)
