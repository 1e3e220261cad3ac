"""Foundations: tasks, episodes, splits, evaluation (code in common/; the figures in figures.py)."""
