"""The data factory: async LLM engine, simulator, recipes, dedup, cost. Imports `schemas` only."""
