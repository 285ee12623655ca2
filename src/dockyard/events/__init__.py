"""Events: the audit log (and, later, webhooks)."""
