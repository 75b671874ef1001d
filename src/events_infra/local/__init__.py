"""Local mode: the real Pub/Sub emulator and a real PostgreSQL server on this machine."""
