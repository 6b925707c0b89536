"""A training run: the checks made before any model loads (settings, data, hardware, resume), the
resolved settings saved in the run folder, then the loop (trainer/loop.py).

The part behind `python -m trainer train` (trainer/commands/train.py) and the Python API's
`trainer.train`.
"""

from __future__ import annotations

import os
from pathlib import Path

from schemas import RunFolder

from trainer.errors import TrainError
from trainer.checkpoint import check_can_resume
from trainer.loop import TrainResult, train
from trainer.runtime import check_runtime
from trainer.settings import SECTION, TrainSettings

# The errors a user can fix; each message says what to change.
def is_main_process() -> bool:
    """Rank 0 under torchrun (or the only process): the one that writes config.toml and prints."""
    return int(os.environ.get("RANK", "0")) == 0


def train_run(run: Path, settings: TrainSettings, *, max_steps_this_run: int | None = None,
              progress_bar: bool = False) -> TrainResult:
    """Train (or resume) the run's adapter; every check is made before the model loads."""
    if max_steps_this_run is not None and max_steps_this_run < 1:
        raise TrainError("--max-steps-this-run must be at least 1")
    data_path = Path(settings.data) if settings.data else RunFolder(run).examples
    if not data_path.is_file():
        raise TrainError(
            f"no examples at {data_path}: generate them first (just generate --run {run} ...) "
            f"or pass --data FILE"
        )
    check_runtime(settings)
    check_can_resume(settings, run)
    if is_main_process():
        RunFolder(run).write_config_section(SECTION, settings)
    return train(settings, run, data_path=data_path, max_steps_this_run=max_steps_this_run, progress_bar=progress_bar)
