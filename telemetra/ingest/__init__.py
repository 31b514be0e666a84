"""The ingestion path and its storage engine: decode, resolve, validate, group commit."""
