"""Datasets, prompts, grading, agents, results and the evaluation CLI."""
