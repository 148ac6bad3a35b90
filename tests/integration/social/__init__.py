"""Contacts, requests, blocks and social messaging features, over the real server."""
