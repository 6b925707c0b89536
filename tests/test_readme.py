"""Every command the README shows is exercised: by `.ci/run`, by a named test, or here.

The README's commands are the lines of its ```bash blocks and the inline `code` spans that start
like a command (`just `, `python -m `, `pip `, `torchrun `, `vllm `). Each is put in one class:

- ci:       `.ci/run` runs it (the Quickstart's two commands, `./dev just demo` and `./dev just test`);
- run:      a ```bash line: run here, in README order, in a scratch folder that holds the repository's
            examples/, evalsets/ and configs/, against the local simulator standing in for OpenAI and
            for "a local server" (OPENAI_BASE_URL and --endpoint point at it). For time on a CPU, the
            run scales down what only sets an amount of work (`--n` -> 24, a few training steps on the
            tiny model, 4 answer tokens, a fast batch poll); SCALE_DOWN lists exactly what;
- parse:    an inline mention of one of our commands: its command and sub-command exist (`--help`;
            a `just bench-...` recipe runs a script, which must answer `--help` too);
- test:     a named test runs it (`just demo`: tests/test_demo.py; torchrun: the trainer's DDP test;
            the GPU benchmark: its script test);
- extra:    `pip install -e ".[EXTRAS]"` (flash-attn needs CUDA to build): the extras exist in pyproject;
- recipe:   a justfile recipe that is not a door to one of our commands (`just lock`): it exists and
            its script parses (it resolves against PyPI, so it is not run here);
- external: another project's command (vLLM's server), named in the README, not ours to run.

`./dev COMMAND` is COMMAND run in the project's environment, and is classed as COMMAND. A README
command that fits none of them fails the test: map it here when you add one.
"""

from __future__ import annotations

import importlib
import re
import shlex
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
COMMAND_PREFIXES = ("just ", "python -m ", "pip ", "torchrun ", "vllm ", "export ", "./dev ")
NAMED_TESTS = {
    "just demo": ROOT / "tests" / "test_demo.py",
    "torchrun": ROOT / "tests" / "trainer" / "test_loop.py",
    "just bench-train-gpu": ROOT / "tests" / "bench" / "test_train_gpu.py",
}
NAMED_TEST_FUNCTIONS = {
    "just demo": "test_quick_demo_leaves_a_complete_report",
    "torchrun": "test_two_processes_match_one_process",
    "just bench-train-gpu": "def test_",
}
EXTERNAL = ("vllm ",)
MAINTENANCE_RECIPES = {"lock": ROOT / "scripts" / "lock.sh"}
LOCAL_SERVER = "http://localhost:8000/v1"


# --------------------------------------------------------------------------------------------
# Reading the README


def fenced_commands(text: str) -> list[str]:
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = line.strip() in ("```bash", "```sh") if not inside else False
            continue
        if inside:
            command = line.split(" #", 1)[0].strip()
            if command and not command.startswith("#"):
                out.append(command)
    return out


def inline_commands(text: str) -> list[str]:
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return [c for c in re.findall(r"`([^`\n]+)`", prose) if c.startswith(COMMAND_PREFIXES)]


def ci_commands() -> list[str]:
    """The commands `.ci/run` times as its steps (`step "NAME" COMMAND ...`), in order."""
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    return [_normal(shlex.split(x)[2:]) for x in lines if x.startswith("step ")]


def _normal(command: str | list[str]) -> str:
    """`python3 -m pip install -q X` and `pip install X` are the same install."""
    words = shlex.split(command) if isinstance(command, str) else list(command)
    if words[:3] in (["python3", "-m", "pip"], ["python", "-m", "pip"]):
        words = ["pip", *words[3:]]
    return shlex.join(w for w in words if w not in ("-q", "--disable-pip-version-check"))


def justfile_recipes() -> dict[str, list[str]]:
    """recipe -> the `python -m PACKAGE SUB` (or script) it runs, from the justfile itself."""
    text = (ROOT / "justfile").read_text()
    recipes = {}
    for name, body in re.findall(r"^([a-z][\w-]*) \*args:\n\s+\{\{python\}\} (.+?) \"\$@\"", text, flags=re.MULTILINE):
        recipes[name] = body.split()
    return recipes


def classify(command: str, *, fenced: bool) -> str:
    command = command.removeprefix("./dev ")  # the same command, in the project's environment
    ci = [c.removeprefix("./dev ") for c in ci_commands()]
    if _normal(command) in ci or any(command.startswith(c + " ") for c in ci):  # (`just test -m "not slow"`)
        return "ci"
    for name in NAMED_TESTS:
        if command == name or command.startswith(name + " "):
            return "test"
    if command.startswith(EXTERNAL):
        return "external"
    if command.startswith("pip install -e"):
        return "extra"
    if command.startswith("just ") and shlex.split(command)[1] in MAINTENANCE_RECIPES:
        return "recipe"
    if command.startswith(("just ", "python -m ", "export ")):
        return "run" if fenced else "parse"
    return "unmapped"


# --------------------------------------------------------------------------------------------
# The mapping itself


def test_every_readme_command_is_mapped() -> None:
    text = README.read_text(encoding="utf-8")
    fenced, inline = fenced_commands(text), inline_commands(text)
    assert len(fenced) >= 15, "the README's command blocks were not found"
    unmapped = [c for c in fenced if classify(c, fenced=True) == "unmapped"]
    unmapped += [c for c in inline if classify(c, fenced=False) == "unmapped"]
    assert not unmapped, f"README commands nothing exercises (map them in {__file__}): {unmapped}"


def test_quickstart_is_two_commands_and_ci_runs_them_verbatim() -> None:
    text = README.read_text(encoding="utf-8")
    quick = text.split("## Quickstart", 1)[1].split("##", 1)[0]
    quickstart = ["./dev just demo", "./dev just test"]
    assert fenced_commands(quick) == quickstart
    assert ci_commands() == quickstart  # on a clean clone: ./dev makes the environment, then the two commands
    assert (ROOT / "requirements.lock").is_file() and (ROOT / "dev").stat().st_mode & 0o111


def test_the_lock_pins_every_package_once_and_torch_without_a_build_label() -> None:
    lines = [x for x in (ROOT / "requirements.lock").read_text().splitlines() if x and not x.startswith("#")]
    names = [x.split("==")[0].lower().replace("_", "-") for x in lines]
    assert all("==" in x for x in lines) and len(names) == len(set(names))
    assert "torch==2.13.0" in lines  # the same line takes the CPU or the CUDA build
    for needed in ("pytest", "transformers", "openai", "rust-just", "jsonschema"):
        assert needed in names, f"{needed} is not locked"


def test_maintenance_recipes_exist_and_parse() -> None:
    text = README.read_text(encoding="utf-8")
    mentioned = [c for c in inline_commands(text) + fenced_commands(text) if classify(c, fenced=False) == "recipe"]
    assert mentioned == ["just lock"]
    for name, script in MAINTENANCE_RECIPES.items():
        assert re.search(rf"^{name}:\n\s+bash {script.relative_to(ROOT)}$", (ROOT / "justfile").read_text(), re.M)
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_named_tests_exist() -> None:
    for name, path in NAMED_TESTS.items():
        assert NAMED_TEST_FUNCTIONS[name] in path.read_text(encoding="utf-8"), f"{name}: no test in {path}"


def test_the_extras_the_readme_installs_are_declared() -> None:
    text = README.read_text(encoding="utf-8")
    extras = [c for c in inline_commands(text) + fenced_commands(text) if classify(c, fenced=False) == "extra"]
    assert 'pip install -e ".[all,flash]"' in extras
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("flash-attn") for dep in declared["flash"])
    for command in extras:
        names = re.fullmatch(r'pip install -e "\.\[([\w,-]+)\]"', command).group(1).split(",")
        assert set(names) <= set(declared), command


def test_only_other_projects_commands_are_external() -> None:
    text = README.read_text(encoding="utf-8")
    external = [c for c in inline_commands(text) + fenced_commands(text) if classify(c, fenced=False) == "external"]
    assert external and all(c.startswith("vllm serve") for c in external)


def _argv(command: str) -> list[str]:
    """`just X ...` -> [package, sub, ...] through the justfile; `python -m P ...` -> [P, ...]."""
    words = shlex.split(command)
    if words[0] == "just":
        target = justfile_recipes()[words[1]]
        assert target[0] == "-m", f"just {words[1]} runs {target}, not a package"
        return [target[1], *target[2:], *words[2:]]
    assert words[:2] == ["python", "-m"], command
    return words[2:]


@pytest.mark.parametrize("command", [c for c in inline_commands(README.read_text(encoding="utf-8"))
                                     if classify(c, fenced=False) == "parse"])
def test_inline_commands_exist(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    command = command.removeprefix("./dev ")  # the same command, in the project's environment
    words = shlex.split(command)
    if words[0] == "just" and justfile_recipes()[words[1]][0] != "-m":  # a benchmark script: it answers --help
        script = justfile_recipes()[words[1]][0]
        done = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "usage:" in done.stdout, done.stderr[-2000:]
        return
    argv = _argv(command)
    main = importlib.import_module(f"{argv[0]}.__main__").main
    with pytest.raises(SystemExit) as exit_:
        main([*argv[1:], "--help"])
    assert exit_.value.code == 0
    assert "usage:" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# Running the README's command blocks


def scale_down(argv: list[str], tiny_model: Path) -> list[str]:
    """SCALE_DOWN: only amounts of work change; every flag the README gives is kept."""
    argv = list(argv)
    if "--n" in argv:
        argv[argv.index("--n") + 1] = "24"
    if argv[:2] == ["factory", "generate"] and "--batch" in argv:
        argv += ["--batch-poll", "0.2", "--batch-poll-max", "0.5"]
    if argv[:2] == ["trainer", "train"]:  # gemma-2b needs a GPU and a download: the tiny model instead
        argv += ["--model", str(tiny_model), "--max-steps", "3", "--token-budget", "512", "--max-len", "512",
                 "--eval-every", "0", "--checkpoint-every", "0"]
    if argv[:2] == ["trainer", "answer"]:
        argv += ["--max-new-tokens", "4", "--batch-size", "64"]
    if argv[:2] == ["judge", "answer"]:
        argv += ["--max-tokens", "32"]
    return argv


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, Path]]:
    from factory.simulator import SimConfig, run_simulator
    from factory.simulator.batches import BatchSimConfig
    from trainer.tiny import build_tiny

    folder = tmp_path_factory.mktemp("readme")
    for name in ("examples", "evalsets", "configs"):
        (folder / name).symlink_to(ROOT / name)
    tiny = build_tiny(tmp_path_factory.mktemp("tiny") / "model")
    with run_simulator(SimConfig(seed=7, output_tokens=60), BatchSimConfig(seconds=0.2)) as url:
        yield folder, url, tiny


def test_readme_command_blocks_run(sandbox: tuple[Path, str, Path], monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    folder, url, tiny = sandbox
    monkeypatch.chdir(folder)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(folder / "no-tiktoken"))
    # The simulator stands in for OpenAI from the first command on (nothing may leave the machine).
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    commands = [c for c in fenced_commands(README.read_text(encoding="utf-8")) if classify(c, fenced=True) == "run"]
    ran = []
    for command in commands:
        if command.startswith("export "):
            name, _, value = command.removeprefix("export ").partition("=")
            # The README's placeholder key and local server: a stand-in key, and the simulator.
            monkeypatch.setenv(name, {"OPENAI_API_KEY": "sk-readme-test", "OPENAI_BASE_URL": url}[name])
            assert value in ("sk-...", LOCAL_SERVER), f"{command}: an export the test does not know"
            continue
        argv = scale_down(_argv(command.replace(LOCAL_SERVER, url)), tiny)
        if argv[:2] == ["factory", "simulate"]:
            _serve_once(argv)
        else:
            main = importlib.import_module(f"{argv[0]}.__main__").main
            code = main(argv[1:])
            output = capsys.readouterr()
            assert code == 0, f"{command} exited {code}:\n{output.out[-2000:]}\n{output.err[-2000:]}"
        ran.append(command)
    assert len(ran) >= 14
    # What the commands left: data, the adapter and its merge, both answer sets, both modes, the report.
    ko = folder / "runs" / "ko"
    assert (ko / "examples.jsonl").is_file() and (ko / "train" / "adapter").is_dir()
    assert (folder / "runs" / "ko-batch" / "examples.jsonl").is_file()
    assert (folder / "runs" / "local" / "examples.jsonl").is_file()
    assert (ko / "report" / "index.html").is_file()
    labels = {line.split('"model":"')[1].split('"')[0] for line in (ko / "eval" / "answers.jsonl").read_text().splitlines()}
    assert labels == {"base", "lora", "vllm-lora"}


def _serve_once(argv: list[str]) -> None:
    """A server command: start it (on a free port rather than the README's), see it serve, stop it."""
    argv = list(argv)
    argv[argv.index("--port") + 1] = "0"
    proc = subprocess.Popen([sys.executable, "-m", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "simulator listening on http://127.0.0.1:" in banner, banner
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
    assert proc.returncode == 0
