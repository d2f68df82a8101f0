"""Tests of routing strategies and admission."""
