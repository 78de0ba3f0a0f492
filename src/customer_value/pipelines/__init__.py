"""Orchestration: the only callers of :mod:`customer_value.io` (and, later, tracking)."""
