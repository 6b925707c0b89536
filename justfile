# The user-facing commands. Each passes its extra arguments to `python -m <package> ...`.
set positional-arguments

python := env_var_or_default("PYTHON", "python3")

# list the recipes
default:
    @just --list

# refresh requirements.lock (the versions the Quickstart installs) from the newest releases pyproject.toml admits
lock:
    bash scripts/lock.sh

# run the test suite (CPU only, no network beyond loopback)
test *args:
    {{python}} -m pytest -q "$@"

# generate instruction data: just generate --run runs/NAME --recipe self-instruct --seeds FILE --n 5000 ...
generate *args:
    {{python}} -m factory generate "$@"

# a local OpenAI-compatible simulator: just simulate --port 8800 --rpm 600 --tpm 150000
simulate *args:
    {{python}} -m factory simulate "$@"

# a real model on a local OpenAI-compatible server (the `local` extra): just serve-local --model smollm2 --port 8811
serve-local *args:
    {{python}} -m factory serve-local "$@"

# train a LoRA adapter: just train --run runs/NAME [--config configs/gemma-2b-it-lora.toml]
train *args:
    {{python}} -m trainer train "$@"

# merge a run's adapter into its base model: just merge --run runs/NAME [--out DIR]
merge *args:
    {{python}} -m trainer merge "$@"

# engine benchmark against the simulator: writes bench/results/engine.json
bench-engine *args:
    {{python}} bench/engine.py "$@"

# MinHash dedup benchmark: writes bench/results/dedup.json
bench-dedup *args:
    {{python}} bench/dedup.py "$@"

# the data page at 100k rows in headless Chromium (first render, search, filter, sort): bench/results/viewer.json
bench-viewer *args:
    {{python}} bench/viewer.py "$@"

# trainer benchmark on CPU with the tiny model (ratio against HF Trainer): bench/results/train_cpu.json
bench-train-cpu *args:
    {{python}} bench/train_cpu.py "$@"

# our loop against TRL's SFTTrainer on CPU (SmolLM2-135M-Instruct, alternating processes): bench/results/train_vs_trl_cpu.json
bench-train-vs-trl *args:
    {{python}} bench/train_vs_trl.py "$@"

# trainer benchmark on a GPU (gemma-2b shapes): bench/results/train_gpu.json
bench-train-gpu *args:
    {{python}} bench/train_gpu.py "$@"

# the suite's time, quiet (just bench-test-suite quiet) and beside CPU hogs (just bench-test-suite busy --runs 3): bench/results/test_suite_*.json
bench-test-suite *args:
    {{python}} bench/test_suite.py "$@"

# the pipeline against a real model on llama.cpp's server (the `local` extra): bench/results/local_model.json
bench-local-model *args:
    {{python}} bench/local_model.py "$@"

# a LoRA fine-tune of a real chat model on CPU, before and after (SmolLM2-135M-Instruct): bench/results/real_model.json
bench-real-model *args:
    {{python}} bench/real_model.py "$@"

# answers from an OpenAI-compatible endpoint (e.g. vLLM with the adapter): just answer --run runs/NAME --questions evalsets/ko.jsonl --endpoint URL --model NAME
answer *args:
    {{python}} -m judge answer "$@"

# grade a run's answers with an LLM judge: just judge --run runs/NAME --mode single|pair|reference --judge-model gpt-4o [--baseline base] [--batch]
judge *args:
    {{python}} -m judge grade "$@"

# grade a run's kept examples with an LLM and keep the best as a new run: just curate --run runs/NAME --judge-model gpt-4o [--keep-min-score 4.5 | --keep-top 0.2] [--dry-run] [--batch]
curate *args:
    {{python}} -m judge curate "$@"

# a leaderboard of several runs against one baseline (BT scores, LC win rate, cost): just compare --runs runs/a runs/b --judge-model gpt-4o --baseline base [--max-cost USD] [--batch]
compare *args:
    {{python}} -m judge compare "$@"

# the whole report of a run (cost, training, scores): runs/NAME/report/index.html; just report --run runs/NAME
report *args:
    {{python}} -m judge overview "$@"

# every record of a run on one page (examples, rejections, answers, curation): runs/NAME/report/data.html; just view --run runs/NAME
view *args:
    {{python}} -m judge view "$@"

# a run's kept examples for other trainers: just export --run runs/NAME --format messages|alpaca|sharegpt|prompt-completion --out FILE.jsonl|.parquet
export *args:
    {{python}} -m factory export "$@"

# the whole pipeline offline on a CPU against the local simulator (no API key, a few minutes): runs/demo/report/index.html
demo *args:
    {{python}} scripts/demo.py "$@"
