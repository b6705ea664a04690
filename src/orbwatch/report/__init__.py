"""Presenting results: terminal tables and JSON (safe for attacker-controlled strings)."""
