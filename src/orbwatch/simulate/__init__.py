"""Simulated data: the demo organisation and, later, full campaign simulation."""
