"""Organization-wide analytics: a summary, and one series across devices."""
