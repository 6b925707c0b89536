"""The trainer: a hand-written PyTorch LoRA loop with packing. Imports `schemas` only."""
