"""Sites: places (factory, warehouse, building) that hold devices."""
