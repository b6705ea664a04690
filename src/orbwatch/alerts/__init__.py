"""Alerts in the workspace: listing, reading one with its evidence, triage state."""
