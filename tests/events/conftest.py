"""Reuse the access-control fixtures (tests/auth/auth_support.py) and the UI tests' helpers
(tests/ui/pages_support.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "auth"))
# And the UI tests' helpers (signing in, posting a form), to compare what the UI and the API record.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ui"))

from auth_support import _cheap_hashes, _clean_environment, make_world, world

__all__ = ["_cheap_hashes", "_clean_environment", "make_world", "world"]
