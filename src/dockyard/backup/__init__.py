"""Backup and restore of a whole deployment: metadata, signing keys and, on request, blob data."""
