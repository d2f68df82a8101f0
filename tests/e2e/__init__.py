"""End-to-end runs through the CLI, with worker subprocesses and the HTTP mock provider."""
