"""Tests of the HTTP mock provider itself (it is the yardstick of other tests)."""
