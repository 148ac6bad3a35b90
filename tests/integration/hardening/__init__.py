"""Abuse controls and hostile input, against the real server."""
