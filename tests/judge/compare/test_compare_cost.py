"""The cost of each model of a comparison: its run's ledger split per label where the run's files
tell which label a request served, "shared" where they cannot, and unknown prices never 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from factory.engine.ledger import Ledger
from judge.compare.cost import model_cost, run_costs
from schemas import Answer, Judgment, LLMCall, RunFolder, Usage, write_jsonl


def _call(key: str, stage: str, model: str, usd: float | None) -> LLMCall:
    return LLMCall(key=key, stage=stage, model=model, status="done", usage=Usage(input_tokens=5), cost_usd=usd)


def _run(tmp: Path, calls: list[LLMCall], answers: dict[str, list[str]], config: dict[str, dict],
         judgments: list[Judgment] = ()) -> Path:
    """A run folder: its ledger, answers per label (with the request keys given), [answer.LABEL] tables."""
    run = tmp / "runs" / "r"
    with Ledger.for_run(run) as ledger:
        ledger.record(calls)
    write_jsonl(RunFolder(run).answers, [Answer(question_id="q1", model=label, turns=["t"], request_keys=keys)
                                          for label, keys in answers.items()])
    for label, table in config.items():
        RunFolder(run).write_config_section(("answer", label), table)
    if judgments:
        write_jsonl(RunFolder(run).judgments, list(judgments))
    return run


def test_an_unknown_price_makes_the_cost_unknown_never_zero(tmp_path: Path) -> None:
    run = _run(tmp_path, [_call("a", "self-instruct", "m", 0.5), _call("b", "self-instruct", "x", None),
                          _call("c", "judge", "m", 0.25)], {"lora": []}, {})
    costs = run_costs(run)
    assert costs.unpriced_requests == 1 and costs.labels["lora"]["data"].usd is None
    cost = model_cost(costs, "lora", 0.1, gpu_hour_usd=None)
    # the run's judging claimed by no judgment: any label may have been graded by it
    assert cost.total_usd is None and cost.judging_usd == pytest.approx(0.35) and cost.training_usd is None
    assert run_costs(tmp_path / "no-ledger").labels == {}  # nothing spent through the API


def test_the_base_model_used_neither_the_data_nor_the_training(tmp_path: Path) -> None:
    run = _run(tmp_path, [_call("g", "self-instruct", "gpt-4o-mini", 2.0)], {"lora": [], "plain": []},
               {"lora": {"adapter": "runs/r/train/adapter", "model": "m"}, "plain": {"model": "m"}})
    (run / "train").mkdir()
    (run / "train" / "metrics.jsonl").write_text('{"step": 10, "tokens": 1000, "tokens_per_s": 100.0}\n')
    costs = run_costs(run, baseline="base")
    lora = model_cost(costs, "lora", 0.0, gpu_hour_usd=3.6)
    plain = model_cost(costs, "plain", 0.0, gpu_hour_usd=3.6)
    assert lora.data_usd == 2.0 and lora.basis["data"] == "own" and lora.training_usd == pytest.approx(0.1)
    assert lora.basis["training"] == "own" and lora.gpu_seconds == pytest.approx(100.0)
    assert plain.data_usd == 0.0 and plain.training_usd == 0.0 and plain.tokens_trained is None
    assert plain.basis == {"data": "not used", "answers": "not used", "judging": "own", "training": "not used"}
    assert plain.total_usd == 0.0 and lora.total_usd == pytest.approx(2.1)


def test_answers_are_split_by_their_request_keys_or_the_endpoints_model(tmp_path: Path) -> None:
    calls = [_call("k1", "eval-answers", "srv", 0.1), _call("k2", "eval-answers", "srv", 0.1),
             _call("k3", "eval-answers", "gpt-4o-mini", 0.3),
             _call("k4", "eval-answers", "m2", 0.2), _call("k5", "eval-answers", "m2", 0.2),
             _call("k6", "eval-answers", "gone", 0.7)]  # a label whose answers were deleted
    endpoint = {"endpoint": "http://127.0.0.1:8000/v1", "questions": "q.jsonl"}
    run = _run(tmp_path, calls, {"keyed": ["k1", "k2"], "api": [], "old1": [], "old2": []},
               {"keyed": {**endpoint, "model": "srv"}, "api": {**endpoint, "model": "gpt-4o-mini"},
                "old1": {**endpoint, "model": "m2"}, "old2": {**endpoint, "model": "m2"}})
    costs = run_costs(run)
    parts = {lb: p["answers"] for lb, p in costs.labels.items()}
    assert costs.unclaimed_answers_usd == pytest.approx(0.7)  # charged to no label, named in the notes
    assert (parts["keyed"].usd, parts["keyed"].basis) == (pytest.approx(0.2), "own")
    assert (parts["api"].usd, parts["api"].basis) == (pytest.approx(0.3), "own")
    # two labels of one served model, answers recorded without keys: the ledger cannot tell them apart
    assert (parts["old1"].usd, parts["old1"].basis, parts["old1"].shared_with) == (pytest.approx(0.4), "shared", ("old2",))
    assert parts["old2"].shared_with == ("old1",)


def test_data_used_by_several_labels_is_shared_and_the_runs_judging_follows_its_judgments(tmp_path: Path) -> None:
    calls = [_call("g", "self-instruct", "gpt-4o-mini", 1.0), _call("j1", "judge", "gpt-4o", 0.05)]
    judged = Judgment(question_id="q1", mode="single", model="lora", judge_model="gpt-4o", status="scored",
                      score=7, request_keys=["j1"])
    run = _run(tmp_path, calls, {"lora": [], "served": [], "base": []},
               {"lora": {"adapter": str(tmp_path / "runs" / "r" / "train" / "adapter")},
                "served": {"endpoint": "http://127.0.0.1:8000/v1", "model": "lora"}, "base": {"model": "m"}},
               [judged])
    costs = run_costs(run, baseline="base")
    lora, served = (model_cost(costs, lb, 0.01, gpu_hour_usd=None) for lb in ("lora", "served"))
    # an endpoint may serve this run's adapter: the data are charged to both, marked shared
    assert lora.basis["data"] == served.basis["data"] == "shared"
    assert lora.shared_with["data"] == ["served"] and served.shared_with["data"] == ["lora"]
    assert lora.data_usd == served.data_usd == 1.0
    assert lora.judging_usd == pytest.approx(0.06) and served.judging_usd == pytest.approx(0.01)
    assert lora.basis["judging"] == "own" and "judging" not in lora.shared_with
