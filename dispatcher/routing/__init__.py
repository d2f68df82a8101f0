"""Choosing a deployment inside a model group."""
