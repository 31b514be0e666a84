"""Alert rules watching readings and devices, their alerts, and the webhooks they send."""
