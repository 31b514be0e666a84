"""Device groups: many-to-many collections of devices."""
