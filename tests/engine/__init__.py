"""Tests of the engine's pure policies (retries, fallbacks) and request building."""
