"""Persistence: schema, migrations and the SQL statements of the hot paths."""
