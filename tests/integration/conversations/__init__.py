"""Conversations, their authorization, messages and attachments, over the real server."""
