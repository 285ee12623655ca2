"""Metadata in SQL: the schema, the engine, migrations and the queries. The only package that writes SQL."""
