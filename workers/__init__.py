"""Dramatiq glue and the worker entry points. The logic they run lives in ``dispatcher``."""
