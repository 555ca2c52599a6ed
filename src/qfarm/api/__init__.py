"""The HTTP API of the controller (FastAPI)."""
