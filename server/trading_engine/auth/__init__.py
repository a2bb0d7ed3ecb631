"""Authentication: bearer tokens and the caller they name."""
