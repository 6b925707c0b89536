"""The Python API, `factory.generate` and friends, against the in-process simulator (loopback only):
a dry run returns a plan and sends nothing, a run works from inside a running event loop (as in a
notebook), and bad settings raise the errors the command prints."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx
import pytest

import factory
from factory.__main__ import main
from factory.api import GenerationOutcome, GenerationPlan
from factory.engine import progress as progress_module
from factory.engine.settings import EngineSettings
from factory.errors import FactoryError, SettingsError
from factory.recipes.settings import GenerateSettings
from factory.simulator import SimConfig, run_simulator
from schemas import Example, read_jsonl
from schemas import UserError

ROOT = Path(__file__).resolve().parents[2]
SEEDS_EN = ROOT / "examples" / "seed_tasks_en.jsonl"
SEEDS_KO = ROOT / "examples" / "seed_tasks_ko.jsonl"


@pytest.fixture(scope="module")
def sim() -> str:
    with run_simulator(SimConfig(seed=5, output_tokens=60)) as url:
        yield url


def served(url: str) -> int:
    return httpx.get(url.removesuffix("/v1") + "/sim/stats").json()["chat_completions"]


def test_the_api_names_are_functions_not_modules() -> None:
    """Importing every command module leaves `factory.generate` the function (a submodule of that
    name would replace it as an attribute of the package)."""
    import factory.commands.generate  # noqa: F401
    import factory.generation  # noqa: F401

    assert callable(factory.generate) and factory.generate.__module__ == "factory.api"
    assert factory.examples.__module__ == "factory.api"


def test_a_dry_run_returns_the_plan_and_sends_nothing(tmp_path: Path, sim: str) -> None:
    run = tmp_path / "run"
    before = served(sim)
    plan = factory.generate(run, recipe="self-instruct", seeds=SEEDS_EN, n=40, model="gpt-4o-mini", base_url=sim,
                            max_cost=1.0, dry_run=True)
    assert isinstance(plan, GenerationPlan)
    assert served(sim) == before, "a dry run sends nothing"
    assert not run.exists(), "a dry run writes nothing"
    assert plan.n == 40 and plan.kept == 0 and plan.model == "gpt-4o-mini" and plan.lang == "en"
    assert plan.requests > 0 and plan.input_tokens > 0
    assert all(s.max_output_tokens > 0 for s in plan.stages)
    assert plan.cost_max_usd is not None and 0 < plan.cost_max_usd < 1
    # The text is the command's dry-run report, word for word.
    assert str(plan).startswith("dry run: nothing is sent")
    low, high = plan.requests_range
    assert f"total: {plan.requests} requests expected (between {low} and {high})" in str(plan)
    assert low <= plan.requests <= high and low < high
    assert f"cost: at most ${plan.cost_max_usd:.4f}" in str(plan), "the figure is the one the text shows"


def test_the_plans_range_holds_the_requests_the_run_then_sends(tmp_path: Path, sim: str) -> None:
    run = tmp_path / "run"
    plan = factory.generate(run, recipe="self-instruct", seeds=SEEDS_EN, n=40, model="gpt-4o-mini", base_url=sim,
                            dry_run=True)
    before = served(sim)
    out = factory.generate(run, recipe="self-instruct", seeds=SEEDS_EN, n=40, model="gpt-4o-mini", base_url=sim,
                           progress="none")
    assert out.done
    low, high = plan.requests_range
    assert low <= served(sim) - before <= high


def test_the_dry_run_text_is_the_commands(tmp_path: Path, sim: str, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    plan = factory.generate(run, recipe="self-instruct", seeds=SEEDS_KO, n=25, model="gpt-4o-mini", base_url=sim,
                            dry_run=True, rpm=500, tpm=100_000)
    assert main(["generate", "--run", str(run), "--recipe", "self-instruct", "--seeds", str(SEEDS_KO), "--n", "25",
                 "--model", "gpt-4o-mini", "--base-url", sim, "--dry-run", "--rpm", "500", "--tpm", "100000"]) == 0
    assert capsys.readouterr().out.strip() == str(plan)


def test_generate_inside_a_running_event_loop(tmp_path: Path, sim: str) -> None:
    """A notebook cell runs inside an event loop: the sync call works there, and so does the async one."""
    run = tmp_path / "run"

    async def cell() -> tuple[GenerationOutcome, GenerationOutcome]:
        first = factory.generate(run, recipe="self-instruct", seeds=SEEDS_EN, n=30, model="gpt-4o-mini",
                                 base_url=sim, progress="none")
        again = await factory.generate_async(run, recipe="self-instruct", seeds=SEEDS_EN, n=45,
                                             model="gpt-4o-mini", base_url=sim, progress="none")
        return first, again

    first, again = asyncio.run(cell())
    assert isinstance(first, GenerationOutcome) and first.done and first.status == 0
    assert first.kept >= 30 and first.kept_now == first.kept and first.requests > 0
    assert first.cost_usd is not None and first.cost_usd > 0 and first.usage.output_tokens > 0
    assert again.kept >= 45 and again.kept_now == again.kept - first.kept, "the second call continues the run"
    kept = read_jsonl(run / "examples.jsonl", Example)
    frame = again.examples()
    assert frame.height == len(kept) == again.kept
    assert frame["id"].to_list() == [e.id for e in kept]
    assert set(frame.columns) >= {"instruction", "input", "output", "recipe", "model", "cost_usd"}
    assert frame["recipe"].unique().to_list() == ["self-instruct"]
    assert factory.rejected(run).height == sum(again.rejected_now.values()) + sum(first.rejected_now.values())
    assert "[generate]" in (run / "config.toml").read_text(), "the resolved settings are saved as the command does"


def test_settings_objects_are_the_commands(tmp_path: Path, sim: str) -> None:
    run = tmp_path / "run"
    gen = GenerateSettings(recipe="self-instruct", seeds=SEEDS_EN, n=10)
    engine = EngineSettings(base_url=sim, model="gpt-4o-mini", progress=False)
    out = factory.generate(run, settings=gen, engine=engine, temperature=0.5)  # a keyword on top of the object
    assert out.done
    saved = (run / "config.toml").read_text()
    assert "temperature = 0.5" in saved and "n = 10" in saved


def test_the_progress_bar_shows_in_place_of_the_line(tmp_path: Path, sim: str, monkeypatch) -> None:
    """progress="bar": the engine's progress goes to a tqdm bar, not to the stderr line."""
    shown: list[int] = []

    class Bar(progress_module.ProgressBar):
        def __init__(self) -> None:
            from tqdm import tqdm

            self._bar = tqdm(total=None, file=io.StringIO())

        def show(self, snapshot: progress_module.Snapshot) -> None:
            super().show(snapshot)
            shown.append(snapshot.finished)

    monkeypatch.setattr("factory.api.ProgressBar", Bar)
    out = factory.generate(tmp_path / "run", recipe="self-instruct", seeds=SEEDS_EN, n=10, model="gpt-4o-mini",
                           base_url=sim, progress="bar")
    assert out.done and shown and shown[-1] == out.requests - out.cached


@pytest.mark.parametrize("flags, kwargs", [
    ([], {}),  # no model
    (["--model", "gpt-4o-mini", "--n", "0"], {"model": "gpt-4o-mini", "n": 0}),
    (["--model", "gpt-4o-mini", "--seeds", "missing.jsonl"], {"model": "gpt-4o-mini", "seeds": "missing.jsonl"}),
    (["--model", "gpt-4o-mini", "--grounding", "naver"], {"model": "gpt-4o-mini", "grounding": "naver"}),
])
def test_bad_settings_raise_the_commands_errors(tmp_path: Path, capsys, flags: list[str], kwargs: dict) -> None:
    run = tmp_path / "run"
    base = {"recipe": "self-instruct", "seeds": SEEDS_EN, "n": 10}
    cli = ["generate", "--run", str(run), "--recipe", "self-instruct", "--seeds", str(SEEDS_EN), "--n", "10"]
    assert main([*cli, *flags]) == 2
    printed = capsys.readouterr().err.strip().removeprefix("error: ")
    with pytest.raises(UserError) as caught:  # the command prints it as one line and exits 2
        factory.generate(run, **{**base, **kwargs})
    # The same error, except that a value given in the call is said to come from the call.
    assert str(caught.value) == printed.replace("(from command line)", "(from the call)")
    assert not run.exists(), "nothing is written before the settings are right"


def test_unknown_keywords_and_progress_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="unknown setting 'temprature'"):
        factory.generate(tmp_path / "run", recipe="self-instruct", seeds=SEEDS_EN, n=10, model="gpt-4o-mini",
                         temprature=0.3)
    with pytest.raises(SettingsError, match="progress='fancy'"):
        factory.generate(tmp_path / "run", recipe="self-instruct", seeds=SEEDS_EN, n=10, model="gpt-4o-mini",
                         progress="fancy")  # type: ignore[arg-type]
    with pytest.raises(FactoryError, match="no examples at"):
        factory.examples(tmp_path / "nothing")


def test_an_interrupt_in_a_notebook_cancels_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Jupyter's stop button raises KeyboardInterrupt in the cell's thread while the run goes on in a
    worker thread: the run is cancelled before the interrupt reaches the cell, so nothing goes on
    sending in the background, and a call again continues the run."""
    import threading

    from factory.engine import notebook

    run = tmp_path / "run"
    with run_simulator(SimConfig(seed=6, output_tokens=60, latency_base_s=0.05)) as url:
        before = set(threading.enumerate())

        def interrupted(future):
            while served(url) < 3:  # the run is under way
                threading.Event().wait(0.01)
            raise KeyboardInterrupt

        waits = notebook._wait
        monkeypatch.setattr(notebook, "_wait", interrupted)

        async def cell() -> None:
            factory.generate(run, recipe="self-instruct", seeds=SEEDS_EN, n=100_000, model="gpt-4o-mini",
                             base_url=url, progress="none", max_concurrency=2)

        loop = asyncio.new_event_loop()  # as ipykernel's: no SIGINT handler of its own
        try:
            with pytest.raises(KeyboardInterrupt):
                loop.run_until_complete(cell())
        finally:
            loop.close()
        assert set(threading.enumerate()) <= before, "no worker is left running"
        stopped_at = served(url)
        assert stopped_at >= 3 and served(url) == stopped_at
        monkeypatch.setattr(notebook, "_wait", waits)
        again = factory.generate(run, recipe="self-instruct", seeds=SEEDS_EN, n=10, model="gpt-4o-mini",
                                 base_url=url, progress="none")
    assert again.kept >= 10 and again.status == 0
    assert len(read_jsonl(run / "examples.jsonl", Example)) == again.kept


def test_batch_goes_through_the_batch_api(tmp_path: Path) -> None:
    from factory.batch import BatchSettings
    from factory.simulator.batches import BatchSimConfig

    run = tmp_path / "run"
    fast = BatchSettings(poll_initial_s=0.05, poll_max_s=0.1)  # the settings object the command builds
    with run_simulator(SimConfig(seed=3, output_tokens=60), BatchSimConfig(seconds=0.2)) as url:
        out = factory.generate(run, recipe="self-instruct", seeds=SEEDS_EN, n=20, model="gpt-4o-mini", base_url=url,
                               batch=fast, progress="none")
        batches = httpx.get(url.removesuffix("/v1") + "/sim/stats").json()
    assert out.done and out.pending == 0 and "batch):" in out.summary
    assert batches["chat_completions"] == 0, "nothing went through the online path"
    assert "[batch]" in (run / "config.toml").read_text()


def test_a_bar_without_tqdm_is_a_settings_error_before_anything_is_sent(tmp_path: Path, sim: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import factory.engine.notebook

    real = factory.engine.notebook.find_spec
    monkeypatch.setattr(factory.engine.notebook, "find_spec", lambda name: None if name == "tqdm" else real(name))
    before = served(sim)
    with pytest.raises(SettingsError, match=r"needs tqdm: pip install 'instruct-factory\[notebook\]'"):
        factory.generate(tmp_path / "run", recipe="self-instruct", seeds=SEEDS_EN, n=5, model="gpt-4o-mini",
                         base_url=sim, progress="bar")
    assert served(sim) == before
