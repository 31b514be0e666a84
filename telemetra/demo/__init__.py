"""Sample data: ``telemetra demo`` fills an organization with a realistic month."""
