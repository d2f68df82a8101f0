"""The provider batch route (``submit --via provider-batch``): which batches take it
(``route.py``), held jobs into provider batches (``forming.py``), each provider batch's steps
run by every worker (``driver.py``), its input file (``input_file.py``) and its results
written back to the jobs (``results.py``). The providers' side is ``providers/batch_api/``."""
