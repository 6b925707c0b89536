"""The run folder's owner: every path of `runs/NAME/`, and the one writer of its `config.toml`.

    run = RunFolder("runs/ko")
    run.examples, run.ledger, run.answers, run.report_dir / "cost_spend.png"
    run.write_config_section(("train",), settings)      # [train], other sections kept

Every stage keeps its files in the run folder (DESIGN.md: one run = one folder), so their names
are spelled here and nowhere else (tests/test_run_folder.py holds that): a stage asks for
`run.judgments`, never for `run / "eval" / "judgments.jsonl"`. A stage that adds a file adds its
name here.

`config.toml` holds one table per stage, the resolved settings that stage ran with. Writing one
table keeps the others, is atomic (a temporary file beside it, then a rename, so a kill leaves the
old file or the new one) and refuses anything secret-shaped at any depth, so a future field cannot
leak a key into the run folder.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, SecretStr

from schemas.errors import RunFolderError

# The file and folder names of a run, relative to its root.
CONFIG = "config.toml"
LEDGER = "ledger.sqlite"
EXAMPLES = "examples.jsonl"
REJECTED = "rejected.jsonl"
RESPONSES = "responses.jsonl"  # `send` and `batch`: one answer per request of an input file
GENERATE_DIR = "generate"  # generate's own state: the journal and each recipe's files
REQUESTS = "requests.jsonl"  # the planned requests of a generate run (its journal)
QUESTIONS = "questions.jsonl"  # the topics recipe's questions, kept before their answers are asked
CONVERSATIONS = "conversations.jsonl"  # the conversation recipe's conversations still growing, turn by turn
NAVER_CACHE = "naver_cache.jsonl"
NAVER_QUOTA = "naver_quota.json"
TRAIN_DIR = "train"
ADAPTER_DIR = "adapter"
CHECKPOINTS_DIR = "checkpoints"
METRICS = "metrics.jsonl"
LOSS_CHART = "loss.png"
MERGED_DIR = "merged"
EVAL_DIR = "eval"
ANSWERS = "answers.jsonl"
JUDGMENTS = "judgments.jsonl"
REPORT_DIR = "report"
SUMMARY = "summary.json"
INDEX_HTML = "index.html"
DATA_HTML = "data.html"  # the data viewer (`just view`): every stage's records on one page
COST_MD = "cost.md"
SCORES_MD = "scores.md"
CURATION_DIR = "curation"
SCORES = "scores.jsonl"  # a curation's verdict per example (curation/NAME/, beside its own ledger)
# A comparison of several runs (`just compare --out DIR`) is a folder of its own: its ledger,
# config.toml and judgments at its root, and its three reports.
COMPARE_JSON = "compare.json"
COMPARE_MD = "compare.md"
COMPARE_HTML = "compare.html"

FILE_NAMES = (CONFIG, LEDGER, EXAMPLES, REJECTED, REQUESTS, QUESTIONS, CONVERSATIONS, RESPONSES, NAVER_CACHE, NAVER_QUOTA,
              METRICS, LOSS_CHART, ANSWERS, JUDGMENTS, SUMMARY, INDEX_HTML, COST_MD, SCORES_MD, COMPARE_JSON,
              COMPARE_MD, COMPARE_HTML, SCORES, DATA_HTML)
# (a checkpoint has an adapter/ of its own: trainer/checkpoint.py owns that layout, so "adapter" is not listed)
FOLDER_NAMES = (GENERATE_DIR, TRAIN_DIR, CHECKPOINTS_DIR, MERGED_DIR, EVAL_DIR, REPORT_DIR, CURATION_DIR)

# A setting whose name holds one of these is never written (the key comes from the environment).
_SECRET_NAMES = ("api_key", "secret", "password", "token_value")


@dataclass(frozen=True)
class _Folder:
    """A folder with a ledger and a config.toml. Nothing is created until a stage writes."""

    root: Path

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root))

    def __fspath__(self) -> str:
        return os.fspath(self.root)

    def __str__(self) -> str:
        return str(self.root)

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def ledger(self) -> Path:
        return self.root / LEDGER

    # --- config.toml ---
    def read_config(self) -> dict[str, Any]:
        """The whole of config.toml ({} when there is none)."""
        path = self.config
        if not path.is_file():
            return {}
        try:
            return tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise RunFolderError(f"{path} is not valid TOML ({e}); fix or remove it") from None

    def config_section(self, *keys: str) -> dict[str, Any]:
        """One table of config.toml (`config_section("answer", "lora")`: [answer.lora]); {} when absent."""
        table: Any = self.read_config()
        for key in keys:
            table = table.get(key, {}) if isinstance(table, dict) else {}
        return table if isinstance(table, dict) else {}

    def write_config_section(self, keys: str | Sequence[str], value: BaseModel | Mapping[str, Any]) -> Path:
        """Write `value` as the table `keys` of config.toml (("answer", "lora"): [answer.lora]),
        keeping every other table. Values that are None are left out (TOML has no null: absent means
        "not set"). Raises RunFolderError for a secret-shaped setting or a config.toml to fix."""
        keys = (keys,) if isinstance(keys, str) else tuple(keys)
        if not keys:
            raise ValueError("write_config_section needs the name of a table")
        path = self.config
        _refuse_secrets(value, path, keys)
        data = value.model_dump(mode="json", exclude_none=True) if isinstance(value, BaseModel) else dict(value)
        doc = self.read_config()
        table = doc
        for i, key in enumerate(keys[:-1]):
            table = table.setdefault(key, {})
            if not isinstance(table, dict):
                raise RunFolderError(f"{path}: [{'.'.join(keys[:i + 1])}] is not a table; fix or remove it")
        table[keys[-1]] = _toml_ready(data)
        _write_atomic(path, tomli_w.dumps(doc))
        return path



class RunFolder(_Folder):
    """The paths of one run (`runs/NAME/`)."""

    # --- the factory's files ---
    @property
    def examples(self) -> Path:
        return self.root / EXAMPLES

    @property
    def rejected(self) -> Path:
        return self.root / REJECTED

    @property
    def responses(self) -> Path:
        return self.root / RESPONSES

    @property
    def generate_dir(self) -> Path:
        return self.root / GENERATE_DIR

    @property
    def requests(self) -> Path:
        return self.generate_dir / REQUESTS

    @property
    def questions(self) -> Path:
        return self.generate_dir / QUESTIONS

    @property
    def conversations(self) -> Path:
        return self.generate_dir / CONVERSATIONS

    @property
    def naver_cache(self) -> Path:
        return self.generate_dir / NAVER_CACHE

    @property
    def naver_quota(self) -> Path:
        return self.generate_dir / NAVER_QUOTA

    # --- the trainer's ---
    @property
    def train_dir(self) -> Path:
        return self.root / TRAIN_DIR

    @property
    def adapter(self) -> Path:
        return self.train_dir / ADAPTER_DIR

    @property
    def checkpoints(self) -> Path:
        return self.train_dir / CHECKPOINTS_DIR

    @property
    def metrics(self) -> Path:
        return self.train_dir / METRICS

    @property
    def loss_chart(self) -> Path:
        return self.train_dir / LOSS_CHART

    @property
    def merged(self) -> Path:
        return self.root / MERGED_DIR

    # --- answers and the judge's ---
    @property
    def eval_dir(self) -> Path:
        return self.root / EVAL_DIR

    @property
    def answers(self) -> Path:
        return self.eval_dir / ANSWERS

    @property
    def judgments(self) -> Path:
        return self.eval_dir / JUDGMENTS

    def curation_dir(self, name: str) -> Path:
        """One curation of the run's examples (a judge and a rubric): `curation/NAME/`."""
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise RunFolderError(f"curation name {name!r}: use a plain folder name such as 'gpt-4o-v1'")
        return self.root / CURATION_DIR / name

    def curation_scores(self, name: str) -> Path:
        """A curation's verdicts, one line per example: `curation/NAME/scores.jsonl`."""
        return self.curation_dir(name) / SCORES

    def curation_names(self) -> list[str]:
        """The curations of the run that hold scores, by name."""
        root = self.root / CURATION_DIR
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / SCORES).is_file())

    # --- the reports ---
    @property
    def report_dir(self) -> Path:
        return self.root / REPORT_DIR

    @property
    def summary(self) -> Path:
        return self.report_dir / SUMMARY

    @property
    def index_html(self) -> Path:
        return self.report_dir / INDEX_HTML

    @property
    def data_html(self) -> Path:
        return self.report_dir / DATA_HTML

    @property
    def cost_md(self) -> Path:
        return self.report_dir / COST_MD

    @property
    def scores_md(self) -> Path:
        return self.report_dir / SCORES_MD

    def merge_summary(self, key: str, value: Any) -> Path:
        """Set `key` of report/summary.json, keeping the keys other reports wrote there (atomic).
        Non-finite numbers are written as null (JSON has no NaN)."""
        path = self.summary
        current: dict[str, Any] = {}
        if path.exists():
            try:
                current = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise RunFolderError(f"{path} is not valid JSON ({e}); fix or remove it, then rerun the report") from None
            if not isinstance(current, dict):
                raise RunFolderError(f"{path} holds a JSON {type(current).__name__}, not an object; fix or remove it")
        current[key] = _json_safe(value)
        _write_atomic(path, json.dumps(current, ensure_ascii=False, indent=2) + "\n")
        return path


class CompareFolder(_Folder):
    """The paths of one comparison of runs (`just compare --out DIR`)."""

    @property
    def judgments(self) -> Path:
        return self.root / JUDGMENTS

    @property
    def reports(self) -> dict[str, Path]:
        """compare.json, compare.md and compare.html, by suffix."""
        return {name.rsplit(".", 1)[1]: self.root / name for name in (COMPARE_JSON, COMPARE_MD, COMPARE_HTML)}


def _refuse_secrets(value: Any, path: Path, where: tuple[str, ...]) -> None:
    items: Any = value if isinstance(value, BaseModel) else value.items() if isinstance(value, Mapping) else ()
    for name, item in items:
        if isinstance(item, SecretStr) or any(s in str(name).lower() for s in _SECRET_NAMES):
            raise RunFolderError(
                f"refusing to save secret-looking setting {'.'.join((*where, str(name)))!r} to {path}: keys come "
                "from the environment, never from a run folder")
        if isinstance(item, (BaseModel, Mapping)):
            _refuse_secrets(item, path, (*where, str(name)))


def _write_atomic(path: Path, text: str) -> None:
    """A kill leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _toml_ready(value: Any) -> Any:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, dict):
        return {k: _toml_ready(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_toml_ready(v) for v in value if v is not None]
    return value


__all__ = ["FILE_NAMES", "FOLDER_NAMES", "CompareFolder", "RunFolder", "RunFolderError"]
