"""Helpers shared by tests (the mock provider process)."""
