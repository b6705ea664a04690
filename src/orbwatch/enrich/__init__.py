"""Enrichment: what is known about an address beyond the traffic itself (threat intel lists).

Geo/ASN profiling and the decaying feed model build on :mod:`orbwatch.enrich.intel`.
"""
