"""An example comparison, offline: four runs of PLANTED quality judged by a PLANTED judge.

    python scripts/compare_example.py [--out runs/compare-example] [--screenshot docs/compare.png]

Builds four run folders whose answers to the shipped evaluation sets (evalsets/en.jsonl,
evalsets/ko.jsonl) carry a marker of their model, with known Bradley-Terry strengths against the
baseline; one model writes longer answers, one answers some Korean questions in English. Each run
gets a ledger with a data-generation spend and a train/metrics.jsonl. Then `judge compare` grades
them through the engine against an in-process judge (judge.compare.planted: position bias, length
bias, strong verdicts, ties) priced at $2.50/$10 per 1M tokens, and writes the reports. The texts,
the costs and the verdicts are made up: the example shows what the page looks like and that the
fit finds the planted order, nothing about any real model. With `--screenshot`, Debian's Chromium
renders the page headless to a PNG.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a clone as `python scripts/compare_example.py`
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from factory.engine.ledger import Ledger  # noqa: E402
from factory.engine.settings import EngineSettings  # noqa: E402
from judge.compare.run import CompareSettings, run_compare  # noqa: E402
from judge.compare.planted import PlantedJudge  # noqa: E402
from schemas import Answer, LLMCall, Question, Usage, read_jsonl, write_jsonl  # noqa: E402

# run name -> (marker, planted theta, answer length factor, Korean questions answered in English,
#              data spend in USD, training steps)
MODELS = {
    "r4-2k": ("a", -0.35, 1.0, 0, 0.42, 250),
    "r16-10k": ("b", 0.45, 1.0, 0, 2.10, 1250),
    "r16-10k-verbose": ("c", 0.45, 1.7, 0, 2.10, 1250),
    "gpt4o-teacher": ("d", 0.9, 1.1, 6, 9.80, 1250),
}
JUDGE = "planted-judge"


def _answer(q: Question, marker: str, factor: float, english: bool, turn: int) -> str:
    # lengths vary from question to question, as real answers' do
    reps = max(1, round(factor * random.Random(f"{marker}/{q.question_id}/{turn}").uniform(3, 9)))
    if english:
        body = " Here is my answer in English." * reps
    elif q.lang == "ko":
        body = " 질문에 대한 자세한 답변입니다." * reps
    else:
        body = " A detailed answer to the question." * reps
    return f"[#{marker}] (turn {turn})" + body


def build_runs(root: Path, questions: list[Question]) -> list[Path]:
    runs = []
    korean = [q.question_id for q in questions if q.lang == "ko"]
    for name, (marker, _, factor, n_english, spend, steps) in MODELS.items():
        run = root / name
        english = set(korean[:n_english])
        answers = []
        for q in questions:
            answers.append(Answer(question_id=q.question_id, model="lora", turns=[
                _answer(q, marker, factor, q.question_id in english, t) for t in range(1, len(q.turns) + 1)]))
            answers.append(Answer(question_id=q.question_id, model="base",
                                  turns=[_answer(q, "0", 1.0, False, t) for t in range(1, len(q.turns) + 1)]))
        write_jsonl(run / "eval" / "answers.jsonl", answers)
        with Ledger.for_run(run) as ledger:
            ledger.record([LLMCall(key=f"{name}-data", stage="self-instruct", model="gpt-4o-mini", status="done",
                                   usage=Usage(input_tokens=1000, output_tokens=1000), cost_usd=spend)])
        (run / "train").mkdir(exist_ok=True)
        (run / "train" / "metrics.jsonl").write_text("".join(
            json.dumps({"step": s, "loss": 2.0 - s / (steps * 2), "tokens": 4096, "tokens_per_s": 5200.0}) + "\n"
            for s in range(10, steps + 1, 10)), encoding="utf-8")
        runs.append(run)
    return runs


def screenshot(page: Path, png: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium: install Debian's package (apt-get install chromium) to take the screenshot")
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", "--hide-scrollbars", "--window-size=1240,1060",
                        f"--screenshot={png.resolve()}", page.resolve().as_uri()], check=True, capture_output=True,
                       timeout=120)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("runs/compare-example"))
    p.add_argument("--screenshot", type=Path, help="PNG of the page, rendered by headless Chromium")
    args = p.parse_args()
    questions = read_jsonl(ROOT / "evalsets" / "en.jsonl", Question) + read_jsonl(ROOT / "evalsets" / "ko.jsonl", Question)
    qfile = args.out / "questions.jsonl"
    write_jsonl(qfile, questions)
    runs = build_runs(args.out / "runs", questions)
    judge = PlantedJudge({m[0]: m[1] for m in MODELS.values()}, length=0.12)

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return httpx.Response(200, json={
            "id": "chatcmpl-example", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": judge.reply(body)}}],
            "usage": {"prompt_tokens": 900, "completion_tokens": 60, "total_tokens": 960}})

    settings = CompareSettings(runs=runs, baseline="base", judge_model=JUDGE, questions=[qfile], gpu_hour_usd=2.5,
                               wrong_language="flag", bootstrap_rounds=200)
    engine = EngineSettings(base_url="http://planted-judge.invalid/v1", price_input=2.5, price_output=10.0, progress=False)
    _, result, _ = run_compare(args.out, settings, engine, http_client=httpx.AsyncClient(transport=httpx.MockTransport(handle)),
                               api_key="not-needed")
    for r in result["models"]:
        print(f"{r['rank']}. {r['name']:<24} {r['score']:5.1f}  [{r['score_low']:.1f}, {r['score_high']:.1f}]  "
              f"raw {r.get('raw_win_rate') or 50:5.1f}  LC {r.get('lc_win_rate') or 50:5.1f}")
    print(f"page: {args.out / 'compare.html'}")
    if args.screenshot:
        screenshot(args.out / "compare.html", args.screenshot)
        print(f"screenshot: {args.screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
