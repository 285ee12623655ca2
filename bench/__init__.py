"""Dockyard against the reference registry (CNCF Distribution), workload by workload: `python -m bench`."""
