"""A run's kept examples in the formats other trainers read (`python -m factory export`, `factory.export`):
TRL's SFTTrainer, Unsloth, axolotl and LLaMA-Factory, as JSONL or Parquet, with a dataset card.

- messages.py   an example as chat messages (system, user, assistant, ...): the one reading of its
                turns, which the exports and the judge's data viewer share
- formats.py    the four formats, their rows and columns: messages, alpaca, sharegpt, prompt-completion
- curated.py    which examples: all kept, a curation's scores at or above a bar, a file of ids
- writing.py    the file, JSONL or Parquet, written whole
- card.py       the dataset card (README.md beside the file, the Hugging Face Hub's layout)
- run.py        `export_run`: checks, then the file and its card
"""

from factory.exporting.curated import CurationScore, read_scores
from factory.exporting.formats import FORMATS
from factory.exporting.messages import example_messages
from factory.exporting.run import CARD_NAME, ExportResult, export_run

__all__ = ["CARD_NAME", "FORMATS", "CurationScore", "ExportResult", "example_messages", "export_run", "read_scores"]
