"""Baselines: what is normal for each user, asset and subnet.

Detectors compare current behaviour against these profiles. The first detector
(:mod:`orbwatch.detect.known_bad_infrastructure`) needs none; the login and edge-traffic
detectors learn theirs here, stored in the workspace and updated incrementally.
"""
