"""HTTP API (Litestar): accounts, sessions, devices, user lookup, health."""
