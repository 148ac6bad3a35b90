"""The WebSocket gateway under bad input."""
