"""The simulator's command line and its child-process runner."""

import argparse
import subprocess
import sys

import httpx
import pytest

from factory.simulator import SimConfig, run_simulator, run_simulator_process
from factory.commands.simulate import add_parser, config_from_args, main


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="factory")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["simulate", *argv])


def test_add_parser_registers_simulate_with_main():
    args = parse("--port", "0", "--rpm", "600", "--tpm", "150000", "--seed", "3")
    assert args.func is main
    config = config_from_args(args)
    assert (config.port, config.rpm, config.tpm, config.seed) == (0, 600, 150_000, 3)


def test_options_map_onto_the_config():
    config = config_from_args(parse(
        "--latency", "0.5-3", "--latency-per-token", "0.001", "--output-tokens", "300",
        "--fault-rate", "500=0.02,drop=0.01,hang=0.005,malformed=0.01,length=0.02",
        "--models", "gpt-4o, gpt-4o-mini", "--api-key", "sk-test-key", "--tpm-accounting", "actual",
        "--reasoning-models", "o3,my-thinker", "--max-body-bytes", "4096", "--cache-ttl", "30",
    ))
    assert config.latency_base_s == 0.5 and config.jitter_s == 2.5 and config.latency_per_token_s == 0.001
    assert config.output_tokens == 300 and config.tpm_accounting == "actual"
    assert config.fault_rates == {"500": 0.02, "drop": 0.01, "hang": 0.005, "malformed": 0.01, "length": 0.02}
    assert config.models == ("gpt-4o", "gpt-4o-mini") and config.api_key == "sk-test-key"
    assert config.reasoning_prefixes == ("o3", "my-thinker") and config.max_body_bytes == 4096 and config.cache_ttl_s == 30
    assert config.rpm is None and config.tpm is None  # 0 = unlimited
    # The child-process runner rebuilds the same config from to_cli_args (the key goes by env).
    rebuilt = config_from_args(parse(*config.to_cli_args(), "--api-key", "sk-test-key"))
    assert rebuilt == config


@pytest.mark.parametrize("argv, needle", [
    (["--fault-rate", "500=2"], "between 0 and 1"),
    (["--latency", "3-1"], "MAX is below MIN"),
    (["--latency", "1-2", "--jitter", "1"], "drop --latency-base"),
    (["--output-tokens", "0"], "output_tokens"),
])
def test_bad_options_exit_2_with_one_line(argv, needle, capsys):
    assert main(parse(*argv)) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err


def test_taken_port_is_a_clear_error():
    with run_simulator(SimConfig()) as base_url:
        port = base_url.rsplit(":", 1)[1].split("/")[0]
        done = subprocess.run([sys.executable, "-m", "factory.simulator", "--port", port],
                              capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "cannot listen" in done.stderr and "Traceback" not in done.stderr


def test_child_process_runner_serves_and_stops():
    key = "sk-child-process-key"
    with run_simulator_process(SimConfig(api_key=key, rpm=100, seed=5)) as base_url:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
        ok = httpx.post(base_url + "/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})
        assert ok.status_code == 200 and ok.headers["x-ratelimit-limit-requests"] == "100"
        denied = httpx.post(base_url + "/chat/completions", json=body, headers={"authorization": "Bearer sk-nope-123456"})
        assert denied.status_code == 401
    with pytest.raises(httpx.ConnectError):
        httpx.get(base_url.removesuffix("/v1") + "/health")
