"""A local OpenAI-compatible simulator: simulated answers, RPM/TPM limits, latency and faults.

    with run_simulator(SimConfig(rpm=60, seed=1)) as base_url:   # "http://127.0.0.1:PORT/v1"
        client = openai.OpenAI(base_url=base_url, api_key="anything")

See server.py for the routes, chat.py for determinism, faults.py for fault injection,
limits.py for the rate-limit semantics and tokens.py for token counting and prompt caching.
"""

from .config import SIGNATURE, SimConfig, SimConfigError
from .faults import FAULT_HEADER, KINDS as FAULT_KINDS
from .server import Simulator, SimulatorError, run_simulator, run_simulator_process
from .text import MARKER

__all__ = [
    "FAULT_HEADER", "FAULT_KINDS", "MARKER", "SIGNATURE", "SimConfig", "SimConfigError", "Simulator",
    "SimulatorError", "run_simulator", "run_simulator_process",
]
