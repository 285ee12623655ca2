"""Identities, password and token checks, the Docker token endpoint and the access policy."""
