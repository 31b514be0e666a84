"""Storage: engine, tables, dialect differences and Alembic migrations."""
