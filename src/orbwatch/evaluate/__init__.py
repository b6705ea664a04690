"""Evaluation: detection quality against ground truth, and the static-blocklist baseline."""
