"""The touchscreen and technicians' web front: HTTP API, access table, kiosk STOP, TLS, static UI."""
