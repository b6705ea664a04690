"""Baselines: what is normal for each user, asset and subnet.

Detectors compare current behaviour against these profiles, stored in the workspace and updated
incrementally: :mod:`orbwatch.baseline.logins` (per user, service and gateway),
:mod:`orbwatch.baseline.assets` (the edge map) and :mod:`orbwatch.baseline.flows` (per asset
and hour of the week). :func:`update_baselines` brings all of them up to date in order: the
edge map first, because the flow baselines are kept per asset.
"""

from __future__ import annotations

import datetime as dt

from orbwatch.config import Config
from orbwatch.store.workspace import Workspace


def update_baselines(
    ws: Workspace, config: Config, now: dt.datetime | None = None, *, rebuild: bool = False
) -> dict[str, dict[str, int]]:
    """Update the edge map, login profiles and flow baselines; counts per baseline."""
    from orbwatch.baseline.assets import update_assets
    from orbwatch.baseline.flows import update_flow_baselines
    from orbwatch.baseline.logins import update_login_baselines

    assets = update_assets(ws, config)
    return {
        "assets": {
            "configured": sum(a.origin == "config" for a in assets),
            "discovered": sum(a.origin == "discovered" for a in assets),
        },
        "logins": update_login_baselines(ws, config, now, full=rebuild),
        "flows": update_flow_baselines(ws, config, now, rebuild=rebuild),
    }
