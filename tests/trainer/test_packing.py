"""Best-fit-decreasing planning and the packed row layout."""

from __future__ import annotations

import math
import random

import pytest
import torch

from trainer.data import TokenizedExample
from trainer.packing import IGNORE_INDEX, collate, plan_microbatches, supervised_count


def lognormal_lengths(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [min(1024, max(32, int(rng.lognormvariate(math.log(300), 0.6)))) for _ in range(n)]


def test_best_fit_decreasing_on_a_worked_example() -> None:
    # By hand, budget 8: 5 opens bin0 (free 3); 4 opens bin1 (free 4); the first 3 fits bin0 exactly (the
    # tightest); the second 3 goes to bin1 (free 1); 2 fits nowhere, opens bin2; 1 takes bin1's last slot.
    assert plan_microbatches([5, 4, 3, 3, 2, 1], 8) == [[0, 2], [1, 3, 5], [4]]


@pytest.mark.parametrize("budget", [1024, 2048, 4096])
def test_every_example_exactly_once_and_no_batch_over_budget(budget: int) -> None:
    lengths = lognormal_lengths(3000, seed=budget)
    plan = plan_microbatches(lengths, budget)
    flat = sorted(i for batch in plan for i in batch)
    assert flat == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in batch) <= budget for batch in plan)


def test_plan_is_deterministic_and_tight() -> None:
    lengths = lognormal_lengths(5000, seed=1)
    plan = plan_microbatches(lengths, 4096)
    assert plan == plan_microbatches(list(lengths), 4096)
    # Many small items: BFD should come within a couple of bins of the volume bound.
    lower_bound = math.ceil(sum(lengths) / 4096)
    assert len(plan) <= lower_bound + 2


def test_an_example_longer_than_the_budget_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"example 1 has 300 tokens, more than the token budget of 256"):
        plan_microbatches([10, 300, 20], 256)


@pytest.mark.parametrize("bad", [[0], [-3]])
def test_empty_examples_are_rejected(bad: list[int]) -> None:
    with pytest.raises(ValueError, match="at least one"):
        plan_microbatches(bad, 16)


def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="token_budget"):
        plan_microbatches([1], 0)


def _ex(prompt: list[int], answer: list[int]) -> TokenizedExample:
    return TokenizedExample(input_ids=prompt + answer, labels=[IGNORE_INDEX] * len(prompt) + answer)


def test_collate_restarts_positions_and_shifts_labels_inside_each_example() -> None:
    a = _ex([2, 10, 11], [20, 21])
    b = _ex([2, 12], [22, 23, 24])
    batch = collate([a, b])
    assert batch.input_ids.tolist() == [[2, 10, 11, 20, 21, 2, 12, 22, 23, 24]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4, 0, 1, 2, 3, 4]]
    assert batch.cu_seqlens.tolist() == [0, 5, 10] and batch.cu_seqlens.dtype == torch.int32
    assert batch.max_seqlen == 5 and batch.seq_lengths == [5, 5]
    x = IGNORE_INDEX
    # Position t's target is token t+1 of the same example; each example's last position has none, so
    # nothing is ever asked to predict the next example's <bos>.
    assert batch.labels.tolist() == [[x, x, 20, 21, x, x, 22, 23, 24, x]]
    assert batch.supervised_index.tolist() == [2, 3, 6, 7, 8]
    assert batch.supervised_targets.tolist() == [20, 21, 22, 23, 24]
    assert batch.num_supervised == 5 == a.num_supervised + b.num_supervised
    assert batch.num_examples == 2 and batch.num_padding == 0 and batch.num_real_tokens == 10


def test_padding_is_its_own_segment_without_labels() -> None:
    batch = collate([_ex([2, 10, 11], [20, 21])], pad_to_multiple=8, pad_id=0)
    assert batch.num_tokens == 8 and batch.num_padding == 3 and batch.num_real_tokens == 5
    assert batch.input_ids.tolist() == [[2, 10, 11, 20, 21, 0, 0, 0]]
    assert batch.cu_seqlens.tolist() == [0, 5, 8]
    assert batch.position_ids.tolist() == [[0, 1, 2, 3, 4, 0, 1, 2]]
    assert batch.labels[0, 5:].tolist() == [IGNORE_INDEX] * 3
    assert batch.num_supervised == 2 and batch.num_examples == 1


def test_collate_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one"):
        collate([])
    with pytest.raises(ValueError, match="same, non-zero count"):
        collate([TokenizedExample(input_ids=[1, 2], labels=[1])])
    with pytest.raises(ValueError, match="pad_to_multiple"):
        collate([_ex([2], [3])], pad_to_multiple=0)


def test_to_moves_every_tensor_and_keeps_host_counts() -> None:
    batch = collate([_ex([2, 10], [20]), _ex([2], [21, 22])]).to("cpu")
    assert batch.num_supervised == 3 and batch.seq_lengths == [3, 3]
    assert batch.supervised_index.device.type == "cpu"


def test_supervised_counts_per_example_add_up_to_the_packed_batch() -> None:
    """The loop counts a step's supervised tokens on the host, per example, for every rank at once."""
    rng = random.Random(3)
    examples = []
    for _ in range(12):
        n = rng.randint(1, 30)
        k = rng.randint(0, n)  # k prompt positions, possibly all of them
        ids = [rng.randint(3, 99) for _ in range(n)]
        examples.append(TokenizedExample(input_ids=ids, labels=[IGNORE_INDEX] * k + ids[k:]))
    batch = collate(examples, pad_to_multiple=16)
    assert sum(supervised_count(ex) for ex in examples) == batch.num_supervised
