"""The OCI Distribution / Docker Registry v2 surface at /v2/: parses requests, renders answers."""
