"""Vulnerability scanning: the pure domain core (versions, OSV advisories, matching, image layers, detectors).

Nothing here touches HTTP, the database or jobs; those build on `inventory.scan_layers` and
`match.match_packages`.
"""
