"""Accounts: sign-up, login, tokens, users and roles."""
