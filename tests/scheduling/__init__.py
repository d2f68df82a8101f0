"""Tests of priority order and fairness between batches."""
