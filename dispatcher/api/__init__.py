"""The HTTP API (``llm-dispatch serve``): OpenAI's Files, Batches, Chat Completions and Models
endpoints over the client API. ``create_app`` builds it; ``serve`` runs it.

FastAPI and uvicorn are imported only by this package, so the CLI's other commands never
load them.
"""
