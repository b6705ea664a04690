"""The simulator's internal event columns, before they are written in real log formats.

Generators produce blocks of columns (numpy arrays of equal length); blocks are concatenated
into one :class:`Events` per kind. Writers then route each row to the file of the sensor that
would have seen it. ``phase`` is the ground truth: 0 for ordinary activity, else a
:data:`PHASES` code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[Any]

# phase code -> (name, ATT&CK techniques)
PHASES: dict[int, tuple[str, str]] = {
    0: ("benign", ""),
    1: ("recon", "T1595.001"),
    2: ("password-spray", "T1110.003"),
    3: ("initial-access", "T1078,T1133"),
    4: ("discovery", "T1046"),
    5: ("c2", "T1071.001,T1090.003"),
    6: ("exfiltration", "T1041"),
    7: ("router-relay", "T1584.008,T1090"),
}
PHASE_CODE = {name: code for code, (name, _) in PHASES.items()}

# Flow sensors: which device reported a flow, hence which file and format it lands in.
SENSORS = (
    "ipfix-hq",
    "ipfix-branch2",
    "zeek-hq",
    "fortigate-branch1",
    "panos-munich",
    "asa-hq-dmz",
    "iptables-bastion",
)
SENSOR = {name: i for i, name in enumerate(SENSORS)}

# Login services and the product that logs them.
SERVICES = ("vpn-asa", "vpn-globalprotect", "sso-entra", "ssh-bastion")
SERVICE = {name: i for i, name in enumerate(SERVICES)}

FLOW_COLUMNS: dict[str, type] = {
    "ts": np.float64,  # start, epoch seconds
    "duration": np.float64,
    "src": np.uint32,
    "dst": np.uint32,
    "sport": np.int32,
    "dport": np.int32,
    "proto": np.int16,  # 6 tcp, 17 udp
    "sbytes": np.int64,
    "dbytes": np.int64,
    "spkts": np.int64,
    "dpkts": np.int64,
    "deny": np.bool_,
    "sensor": np.int8,
    "phase": np.int8,
    "id": np.int64,  # kind | (generation unit << 32) | position: identity, last sort key
}

LOGIN_COLUMNS: dict[str, type] = {
    "ts": np.float64,
    "user": np.int32,  # index into the user table; -1 for names that are not accounts
    "name": np.int32,  # index into the login-name table (accounts, then guessed names)
    "src": np.uint32,
    "sport": np.int32,
    "service": np.int8,
    "success": np.bool_,
    "mfa": np.bool_,
    "cert": np.bool_,
    "client": np.int16,  # index into the client-string table
    "duration": np.float64,  # session length (VPN, SSH), seconds
    "bytes": np.int64,
    "lat": np.float64,  # where the person really was (ground truth for travel tests)
    "lon": np.float64,
    "phase": np.int8,
    "id": np.int64,
}


@dataclass
class Events:
    """Columns of one event kind; every array has the same length."""

    spec: dict[str, type]
    cols: dict[str, Array] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.cols["ts"]) if self.cols else 0

    def add(self, **columns: Any) -> None:
        """Append a block: scalars broadcast, arrays must share one length; missing columns 0."""
        n = max((np.size(v) for v in columns.values() if np.ndim(v)), default=1)
        block: dict[str, Array] = {}
        for name, dtype in self.spec.items():
            value = columns.get(name, 0)
            arr: Array = np.asarray(value).astype(dtype)
            block[name] = np.broadcast_to(arr, (n,)).copy() if arr.ndim == 0 else arr
        unknown = set(columns) - set(self.spec)
        if unknown:
            raise KeyError(f"unknown event columns: {sorted(unknown)}")
        if not self.cols:
            self.cols = block
        else:
            self.cols = {k: np.concatenate([self.cols[k], block[k]]) for k in self.spec}

    def sorted(self) -> Events:
        """Rows in time order (ties by id, so the order does not depend on chunking)."""
        if not self.cols:
            return self
        order = np.lexsort((self.cols["id"], self.cols["ts"]))
        return Events(self.spec, {k: v[order] for k, v in self.cols.items()})

    def take(self, mask: npt.NDArray[np.bool_] | npt.NDArray[np.int64]) -> Events:
        if not self.cols:
            return Events(self.spec)
        return Events(self.spec, {k: v[mask] for k, v in self.cols.items()})

    def numbered(self, unit: int) -> Events:
        """The same rows with ids ``kind | (unit << 32) | position``, whatever the chunking.

        Flows and logins have their own id spaces (:func:`id_base`), so an id names one event.
        """
        if self.cols:
            self.cols["id"] = id_base(self.spec, unit) + np.arange(len(self), dtype=np.int64)
        return self

    @classmethod
    def concat(cls, parts: list[Events]) -> Events:
        """Rows of several event sets of one kind, in order."""
        spec = parts[0].spec
        full = [p for p in parts if p.cols]
        if not full:
            return Events(spec)
        return Events(spec, {k: np.concatenate([p.cols[k] for p in full]) for k in spec})

    def __getitem__(self, name: str) -> Array:
        return self.cols[name]


def id_base(spec: dict[str, type], unit: int) -> np.int64:
    """First id of a generation unit's events of one kind (logins from 2**56 up)."""
    kind = 1 if spec is LOGIN_COLUMNS else 0
    return np.int64((kind << 56) + (unit << 32))


def flows() -> Events:
    return Events(FLOW_COLUMNS)


def logins() -> Events:
    return Events(LOGIN_COLUMNS)
