"""Configuration: the file format, its lookup, and secrets."""
