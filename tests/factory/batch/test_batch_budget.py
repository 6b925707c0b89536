"""--max-cost on the Batch API path: which stages a budget covers, what is said when a budget
cannot hold even one request, and money shown exactly."""

import re

import pytest
from batch_fakes import MODEL, ROOT, go, make_requests, sim_stats, write_input

from factory.__main__ import main
from factory.engine.money import usd
from factory.engine.pricing import PriceTable
from factory.simulator import SimConfig, run_simulator
from factory.simulator.batch_config import BatchSimConfig
from factory.engine.tokens import estimate_input

SEEDS_EN = ROOT / "examples" / "seed_tasks_en.jsonl"


def worst(requests) -> float:
    price = PriceTable.load().lookup(MODEL)
    return sum(price.worst_case(estimate_input(r.model, r.messages, r.params).tokens, r.max_output_tokens, batch=True)
               for r in requests)


@pytest.mark.parametrize(("amount", "shown"), [(0.00005, "$0.00005"), (1.5, "$1.50"), (12, "$12.00"),
                                               (0.000123456789, "$0.000123456789"), (0.1 + 0.2, "$0.30")])
def test_money_is_shown_with_every_digit_it_has(amount, shown):
    assert usd(amount, exact=True) == shown


def test_rounding_up_a_suggested_budget_never_goes_below_the_need():
    for need in (0.0003, 0.00012344, 1.23456, 1234.5678):
        suggested = float(usd(need, up=True).removeprefix("$"))
        assert need <= suggested <= need * 1.001


def test_a_budget_covers_the_spending_of_its_stages_and_no_others(ledger):
    questions = make_requests(6, stage="questions")
    answers = make_requests(6, stage="answers", text="Answer question {i}.")
    judge = make_requests(6, stage="judge", text="Grade answer {i}.")
    with run_simulator(SimConfig(seed=12), BatchSimConfig(seconds=0.05)) as url:
        go(url, ledger, judge)  # another command's spending in the same run folder
        go(url, ledger, questions)
        spent_q, spent_j = ledger.spent_usd("questions"), ledger.spent_usd("judge")
        # Enough for the answers alone, not for the answers plus what the questions cost: part of them fit.
        limit = worst(answers) + spent_q / 2
        stats, results = go(url, ledger, answers, max_cost=limit, budget_stages=("questions", "answers"))
    assert spent_j > 0 and 0 < stats.done < 6 and stats.left_over == 6 - stats.done == 6 - len(results)
    note = stats.budget_note
    assert f"--max-cost {usd(limit, exact=True)} (covering stages answers, questions)" in note
    assert f"({usd(spent_q, exact=True)} spent;" in note  # the judge's spending is not counted
    assert ledger.spent_usd("questions") + ledger.spent_usd("answers") <= limit


def test_batch_refuses_a_budget_below_one_requests_worst_case_and_says_by_how_much(tmp_path, batch_cli, capsys):
    requests = write_input(tmp_path / "requests.jsonl", ["Explain topic 1.", "Explain topic 2."], max_tokens=1000)
    with run_simulator(SimConfig(), BatchSimConfig(seconds=0.05)) as url:
        assert batch_cli(url, "--input", str(requests), "--max-cost", "0.00005") == 2
        err = capsys.readouterr().err
        assert sim_stats(url)["files_uploaded"] == 0
    assert "--max-cost $0.00005 (covering stage send) is smaller than the worst case of one request" in err
    assert "nothing was submitted" in err and "rerun" not in err


def test_generate_batch_with_a_budget_below_one_request_says_so_not_that_it_is_spent(tmp_path, capsys):
    run = tmp_path / "run"
    with run_simulator(SimConfig(seed=3, output_tokens=60), BatchSimConfig(seconds=0.05)) as url:
        code = main(["generate", "--run", str(run), "--base-url", url, "--model", MODEL, "--no-progress",
                     "--recipe", "self-instruct", "--seeds", str(SEEDS_EN), "--n", "10", "--batch",
                     "--batch-poll", "0.02", "--batch-poll-max", "0.05", "--max-cost", "0.00005"])
        sent = sim_stats(url)["files_uploaded"]
    out = capsys.readouterr().out
    assert code == 1 and sent == 0
    assert re.search(r"--max-cost \$0\.00005 \(covering stage self-instruct\) is smaller than the worst case of one self-instruct request, "
                     r"\$0\.\d+ .* by \$0\.\d+: raise --max-cost to at least \$0\.\d+", out), out
    assert "is spent" not in out and "rerun the same command to continue" not in out
