"""The application layer for workers: the process entry and the supervisor. It imports the
library (``dispatcher``); the library never imports it (``tests/test_layers.py``)."""
