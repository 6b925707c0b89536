"""The data's quality gates: the filters and the near-duplicate check."""
