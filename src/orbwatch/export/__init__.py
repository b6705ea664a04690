"""Writing what orbwatch knows in formats other tools consume (blocklists)."""
