"""The management REST API at /api/v1 (FastAPI): JSON, an OpenAPI schema and interactive docs."""
