"""Users of an organization, and the rules for who may manage whom."""
