"""The judge: LLM grading through the factory engine, statistics, score report."""
