"""Alembic migrations for the dispatcher's schema (applied by ``llm-dispatch db upgrade``)."""
