"""Tests of llm-dispatcher against real services."""
