"""Accounts over real HTTP."""
