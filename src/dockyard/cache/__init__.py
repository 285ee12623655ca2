"""Content caches near users: the cache node, and the main registry's redirect to a user's cache."""
