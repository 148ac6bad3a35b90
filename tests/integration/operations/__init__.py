"""Running the server: CLI, logs, admin, metrics, backups, scale-out."""
