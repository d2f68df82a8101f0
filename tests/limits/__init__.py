"""Tests of the rate-limit schedules and their backends."""
