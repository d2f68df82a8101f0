"""Tests of the SQL layer against real SQLite and PostgreSQL."""
