"""Platform administration across organizations (superadmin only)."""
