"""The web UI: the single-page app built from ``web/`` (``make web``), served at ``/``."""
