"""Reuse the access-control fixtures (tests/auth/auth_support.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "auth"))

from auth_support import _cheap_hashes, _clean_environment, make_world, world

__all__ = ["_cheap_hashes", "_clean_environment", "make_world", "world"]
