"""Access-control fixtures; they live in auth_support so tests elsewhere can share them."""

from auth_support import _cheap_hashes, _clean_environment, make_world, world

__all__ = ["_cheap_hashes", "_clean_environment", "make_world", "world"]
