"""Organizations: the tenant boundary, with a plan, limits and retention."""
