"""The worker engine: claim jobs, call providers, record outcomes."""
