"""Blob storage: a small driver interface, its drivers, and the content-addressed layout on top."""
