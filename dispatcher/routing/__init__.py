"""Choosing a deployment inside a model group (strategies) and admitting calls (limits)."""
