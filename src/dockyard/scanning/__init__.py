"""Vulnerability scanning: the pure domain core. Nothing here touches HTTP, the database or jobs.

- `inventory.scan_layers(layers, limits)` reads an image's layers once (`layers.Layer`: digest, stream,
  media type; bottom layer first) and returns `Inventory(os, packages)`; hostile or unreadable input
  raises `errors.ScanError` subclasses, bounded by `layers.Limits`.
- `osv.read_advisories(path)` streams OSV records from a zip, a directory or a JSON file.
- `match.match_packages(packages, os, index)` returns `Finding`s; `index` is any `match.AdvisoryLookup`
  (the in-memory `match.AdvisoryIndex`, or a database-backed lookup keyed the same way).
- `versions.compare_versions(ecosystem, a, b)` orders versions with each ecosystem's rules.
"""
