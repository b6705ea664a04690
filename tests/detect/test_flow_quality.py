"""Flow-side detection quality against the simulator's ground truth, at default settings.

The simulator (docs/simulator.md) writes an organisation's NetFlow/IPFIX, Zeek, firewall, VPN
and sign-in logs with a covert-network campaign in them. After the login-side phases (recon,
spray, single-factor access; see ``test_login_quality.py``) the campaign lives in the flows:
discovery from the VPN session address, C2 beacons from an implanted server through rotating
relays, one night's exfiltration to a relay, and the Denver branch router enrolled as a relay
of the covert network. This test takes two seeds through the product as a user would
(simulate, ingest every file and the vendor feed, ``analyse``, ``evaluate``) and prints, then
asserts, the numbers issue 8 asks for.

Definitions (also in docs/detectors.md, "Flow-side quality"):

* **Flow-side entities**: the labelled entities of phases ``c2`` (the implanted server and the
  relays it beaconed to), ``exfiltration`` (the server and the relay it uploaded to),
  ``router-relay`` (the branch router and every external node that used it as a relay) and
  ``discovery`` (the VPN session address that swept the internal network).
  Left out: ``recon``. The simulated reconnaissance is one short, *successful* connection to
  an edge portal (HTTPS or SSH) per relay node, on average 1.2 per node and 1 for most: the
  handshake and login page of a client opening the VPN portal, with no refused port and no
  sweep. No flow detector can tell that from a remote worker's client, and none should try;
  the recon nodes that go on to spray are login-side entities, those in the vendor feed are
  caught by the intel detectors. How many recon sources the flow detectors flag anyway (relay
  nodes that also used the router) is printed, outside the assertion. Login-side phases
  (``password-spray``, ``initial-access``) belong to ``test_login_quality.py``.
* **Flow detectors**: ``device_turned_relay``, ``beaconing``,
  ``exfiltration_to_new_destination``, ``edge_traffic_spike``, ``recon_then_access`` and
  ``edge_peer_novelty``. The threat-intel detectors (``known_bad_infrastructure``,
  ``intel_neighbourhood``) judge addresses against lists, not flow behaviour, and are not run.
* **Recall**: flow-side entities flagged by at least one flow detector's alert, over all
  flow-side entities, with the matching rule of :mod:`orbwatch.evaluate.metrics` (an alert
  flags its entity, addresses and account, and the lists under ``sources``, ``relays``,
  ``users`` and ``targets`` of its evidence: the relay alert lists its external sources).
* **Precision**: flow detectors' alerts that flag a flow-side entity, over all their alerts.
* **Isolation forest**: ``isolation_forest_anomaly`` is a lead, not a verdict (issue 8: "the
  isolation forest alone is reported separately"): its alerts, how many flag a flow-side entity
  and the entities it catches are printed and not asserted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

from orbwatch import config as config_mod
from orbwatch.evaluate.labels import simulator_labels
from orbwatch.evaluate.matrix import ingest_simulation
from orbwatch.evaluate.metrics import Quality, detectors_quality, evaluate
from orbwatch.pipeline import analyse
from orbwatch.simulate.run import simulate
from orbwatch.simulate.scenario import Scenario
from orbwatch.store.workspace import Workspace

FLOW_DETECTORS = (
    "device_turned_relay",
    "beaconing",
    "exfiltration_to_new_destination",
    "edge_traffic_spike",
    "recon_then_access",
    "edge_peer_novelty",
)
FOREST = "isolation_forest_anomaly"
FLOW_PHASES = ("c2", "exfiltration", "router-relay", "discovery")
#: Small but representative: every flow-side phase happens (access on day 7.3, C2 from then
#: on, the upload the next night, the router enrolled on day 9, which is also the last day
#: and so the spike detector's window), with nine days of history for the baselines.
USERS, DAYS = 30, 10
MIN_RECALL, MIN_PRECISION = 0.95, 0.9


@dataclass
class FlowQuality:
    """The flow-side numbers of one simulated run."""

    seed: int
    recall: Quality
    precision: Quality
    forest: Quality
    detectors: dict[str, Quality]


def in_phases(truth: pa.Table, phases: tuple[str, ...]) -> pa.Table:
    """Labelled entities that acted in any of ``phases`` (labels join phases with ``+``)."""
    keep = [
        any(p in phases for p in (joined or "").split("+")) for joined in truth["phase"].to_pylist()
    ]
    return truth.filter(pa.array(keep, pa.bool_()))


def _report(q: FlowQuality, recon: Quality) -> None:
    r, p, f = q.recall, q.precision, q.forest
    print(f"\nseed {q.seed}: {USERS} users, {DAYS} days, {r.labelled} flow-side entities")
    print(f"  recall    {r.recall:.3f} ({r.caught}/{r.labelled}) of flow-side entities")
    print(f"  precision {p.precision:.3f} ({p.true_alerts}/{p.alerts}) of flow detectors' alerts")
    for d in q.detectors.values():
        print(
            f"    {d.name:32s} alerts {d.alerts:3d}  true {d.true_alerts:3d}  "
            f"precision {d.precision:.3f}  entities caught {d.caught}"
        )
    print(
        f"  isolation forest (apart): alerts {f.alerts}, true {f.true_alerts}, "
        f"entities caught {f.caught}/{f.labelled}"
    )
    print(f"  recon sources flagged anyway (not asserted): {recon.caught}/{recon.labelled}")


def measure(seed: int, root: Path) -> FlowQuality:
    """Simulate, ingest everything, analyse with the flow detectors, evaluate the flow side."""
    scenario = Scenario(seed=seed)
    scenario.org.users, scenario.org.days = USERS, DAYS
    data = root / f"sim-{seed}"
    simulate(scenario, data)
    config = config_mod.load(data / "orbwatch.toml")
    labels = simulator_labels(data / "labels.csv")
    truth = in_phases(labels, FLOW_PHASES)
    with Workspace.open(root / f"ws-{seed}.duckdb") as ws:
        ingest_simulation(ws, data)
        analyse(ws, config, only=[*FLOW_DETECTORS, FOREST])
        per_detector = {q.name: q for q in evaluate(ws, truth).detectors}
        flow = detectors_quality(ws, truth, "flow detectors", FLOW_DETECTORS)  # without the forest
        recon = detectors_quality(ws, in_phases(labels, ("recon",)), "recon", FLOW_DETECTORS)
    silent = truth.num_rows
    detectors = {d: per_detector.get(d, Quality(d, labelled=silent)) for d in FLOW_DETECTORS}
    forest = per_detector.get(FOREST, Quality(FOREST, labelled=silent))
    quality = FlowQuality(seed, flow, flow, forest, detectors)
    _report(quality, recon)
    return quality


@pytest.fixture(scope="module", params=[7, 11])
def quality(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FlowQuality]:
    yield measure(int(request.param), tmp_path_factory.mktemp(f"flow-quality-{request.param}"))


def test_flow_side_recall(quality: FlowQuality) -> None:
    assert quality.recall.labelled > 50  # the router's relay sources, C2 relays, the server
    assert quality.recall.recall >= MIN_RECALL


def test_flow_side_precision(quality: FlowQuality) -> None:
    assert quality.precision.alerts > 0
    assert quality.precision.precision >= MIN_PRECISION


def test_every_flow_phase_is_caught(quality: FlowQuality) -> None:
    """Each behaviour has its detector: relay, beacons, upload (the forest is not needed)."""
    for detector in ("device_turned_relay", "beaconing", "exfiltration_to_new_destination"):
        assert quality.detectors[detector].true_alerts > 0, detector
