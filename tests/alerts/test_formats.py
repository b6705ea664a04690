"""Alert outputs checked against the published OCSF 1.8.0 and ECS 9.4.0 definitions.

The validators below read the upstream definition files in the corpus (``schemas/``): every
attribute orbwatch emits must be declared for its object, have the declared type and array-ness,
and every attribute the class or object requires must be present.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import ipaddress
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from orbwatch.alerts.formats import render, to_cef, to_ecs, to_ocsf

UTC = dt.UTC
ALERT: dict[str, Any] = {
    "alert_id": "0123456789abcdef",
    "detector": "password_spray",
    "title": "Password spray | 40 accounts",
    "severity": "critical",
    "score": 91.5,
    "techniques": "T1110.003,T1090",
    "entity": "vpn-gw-1",
    "src_ip": "203.0.113.7",
    "dst_ip": "2001:db8::1",
    "user": "alice=admin",
    "first_seen": dt.datetime(2026, 11, 1, 8, 0, tzinfo=UTC),
    "last_seen": dt.datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
    "event_count": 120,
    "bytes": 4096,
    "explanation": "40 accounts, 1 attempt each\nfrom 37 residential sources",
    "evidence": json.dumps({"sources": 37, "client": "python-requests"}),
    "status": "new",
    "created_at": dt.datetime(2026, 11, 2, 10, 0, tzinfo=UTC),
    "updated_at": dt.datetime(2026, 11, 2, 10, 5, tzinfo=UTC),
}


# -- OCSF --------------------------------------------------------------------------------------
class Ocsf:
    """Just enough of the OCSF schema loader to validate an event against a class."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dictionary = json.loads((root / "dictionary.json").read_text())["attributes"]

    @cache
    def attributes(self, path: str) -> dict[str, dict[str, Any]]:
        """Own, inherited (`extends`) and included (`$include`, profiles) attributes."""
        spec = json.loads((self.root / path).read_text())
        attrs: dict[str, dict[str, Any]] = {}
        parent = spec.get("extends")
        if parent:
            folder = Path(path).parent
            candidates = [folder / f"{parent}.json", Path("objects") / f"{parent}.json"]
            candidates += list(self.root.glob(f"events/**/{parent}.json"))
            for candidate in candidates:
                rel = candidate.relative_to(self.root) if candidate.is_absolute() else candidate
                if (self.root / rel).exists():
                    attrs.update(self.attributes(str(rel)))
                    break
        for name, value in spec.get("attributes", {}).items():
            if name == "$include":
                for inc in value if isinstance(value, list) else [value]:
                    included = self.attributes(inc)
                    if inc.startswith("profiles/"):
                        # A profile's attributes are required only when the event applies it.
                        included = {
                            k: {**v, "requirement": "optional"} for k, v in included.items()
                        }
                    attrs.update(included)
            else:
                attrs[name] = {**attrs.get(name, {}), **value}
        return attrs

    def check(self, value: dict[str, Any], path: str, where: str) -> list[str]:
        problems: list[str] = []
        attrs = self.attributes(path)
        for name, spec in attrs.items():
            if spec.get("requirement") == "required" and name not in value:
                problems.append(f"{where}: required attribute {name} missing")
        for name, item in value.items():
            if name not in attrs:
                problems.append(f"{where}: {name} is not an attribute of {path}")
                continue
            entry = self.dictionary[name]
            items = item if entry.get("is_array") else [item]
            if entry.get("is_array") and not isinstance(item, list):
                problems.append(f"{where}.{name}: should be an array")
                continue
            for i, element in enumerate(items):
                problems += self._type(element, entry["type"], f"{where}.{name}[{i}]")
        return problems

    def _type(self, value: Any, typ: str, where: str) -> list[str]:
        scalar = {
            "string_t": str,
            "integer_t": int,
            "long_t": int,
            "timestamp_t": int,
            "float_t": (int, float),
            "boolean_t": bool,
        }
        if typ in scalar:
            ok = isinstance(value, scalar[typ]) and not (typ != "boolean_t" and value is True)
            return [] if ok else [f"{where}: {value!r} is not {typ}"]
        if typ == "ip_t":
            ipaddress.ip_address(value)
            return []
        if typ == "json_t":
            json.dumps(value)
            return []
        if typ.endswith("_t"):
            return [] if isinstance(value, str) else [f"{where}: {value!r} is not {typ}"]
        if not isinstance(value, dict):
            return [f"{where}: should be a {typ} object"]
        return self.check(value, f"objects/{typ}.json", where)


@pytest.fixture(scope="module")
def ocsf() -> Ocsf:
    root = Path(__file__).resolve().parents[2].parent / "shared/corpus/schemas/ocsf"
    if not root.is_dir():
        pytest.skip(f"OCSF schema files not found at {root}")
    return Ocsf(root)


def test_ocsf_detection_finding_matches_the_published_class(ocsf: Ocsf) -> None:
    event = to_ocsf(ALERT)
    assert ocsf.check(event, "events/findings/detection_finding.json", "event") == []
    definition = json.loads((ocsf.root / "events/findings/detection_finding.json").read_text())
    assert event["class_uid"] == 2000 + definition["uid"]
    assert event["type_uid"] == event["class_uid"] * 100 + event["activity_id"]
    assert event["severity_id"] == 5
    assert [a["technique"]["uid"] for a in event["finding_info"]["attacks"]] == [
        "T1110.003",
        "T1090",
    ]
    assert event["start_time"] == 1_793_520_000_000  # 2026-11-01T08:00Z


def test_ocsf_enums_are_declared_values(ocsf: Ocsf) -> None:
    finding = ocsf.attributes("events/findings/detection_finding.json")
    for status in ("new", "acknowledged", "false-positive", "resolved"):
        event = to_ocsf({**ALERT, "status": status, "severity": "info", "user": None})
        assert str(event["status_id"]) in finding["status_id"]["enum"]
        assert str(event["activity_id"]) in finding["activity_id"]["enum"]
        assert ocsf.check(event, "events/findings/detection_finding.json", "event") == []


# -- ECS ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ecs_fields() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read the ECS definitions")
    path = Path(__file__).resolve().parents[2].parent / "shared/corpus/schemas/ecs/ecs_flat.yml"
    if not path.exists():
        pytest.skip(f"ECS definitions not found at {path}")
    fields: dict[str, Any] = yaml.safe_load(path.read_text())
    return fields


def _flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name != "labels":
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


ECS_TYPES: dict[str, Any] = {
    "keyword": str,
    "constant_keyword": str,
    "wildcard": str,
    "match_only_text": str,
    "text": str,
    "date": str,
    "ip": str,
    "long": int,
    "float": (int, float),
    "scaled_float": (int, float),
    "object": dict,
}


def test_ecs_document_uses_only_declared_fields_of_the_right_type(
    ecs_fields: dict[str, Any],
) -> None:
    flat = _flatten(to_ecs(ALERT))
    for name, value in flat.items():
        assert name in ecs_fields, f"{name} is not an ECS field"
        spec = ecs_fields[name]
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list):
            assert "array" in spec.get("normalize", []), f"{name} is not an array field"
        for v in values:
            assert isinstance(v, ECS_TYPES[spec["type"]]), f"{name}: {v!r} vs {spec['type']}"
        allowed = {a["name"] for a in spec.get("allowed_values", [])}
        if allowed:
            assert set(values) <= allowed, f"{name}: {values} not in {sorted(allowed)}"
        if spec["type"] == "ip":
            ipaddress.ip_address(value)
    assert flat["event.kind"] == "alert"
    assert flat["@timestamp"] == "2026-11-02T09:30:00Z"


# -- CEF and CSV -------------------------------------------------------------------------------
def _cef_fields(line: str) -> tuple[list[str], dict[str, str]]:
    """Split a CEF line as a receiver does: 7 unescaped pipes, then key=value pairs."""
    header, i, field = [], 0, ""
    while len(header) < 7:
        ch = line[i]
        if ch == "\\" and line[i + 1] in "\\|":
            field += line[i + 1]
            i += 2
            continue
        if ch == "|":
            header.append(field)
            field = ""
        else:
            field += ch
        i += 1
    rest, ext, key, value, in_value = line[i:], {}, "", "", False
    tokens = rest.split(" ")
    for token in tokens:
        if "=" in token.replace("\\=", "") and not token.startswith("\\"):
            if key:
                ext[key] = value
            key, _, value = token.partition("=")
        else:
            value += " " + token
        in_value = True
    if key and in_value:
        ext[key] = value
    return header, {k: v.replace("\\=", "=").replace("\\n", "\n") for k, v in ext.items()}


def test_cef_escapes_header_and_extension_values() -> None:
    line = to_cef(ALERT)
    assert "\n" not in line
    header, ext = _cef_fields(line)
    assert header[0] == "CEF:0"
    assert header[4] == "password_spray"
    assert header[5] == "Password spray | 40 accounts"
    assert header[6] == "10"
    assert ext["suser"] == "alice=admin"
    assert ext["msg"] == ALERT["explanation"]
    assert ext["src"] == "203.0.113.7"
    assert ext["rt"] == str(int(ALERT["updated_at"].timestamp() * 1000))


def test_csv_neutralises_formulas_and_keeps_every_alert() -> None:
    text = render([ALERT, {**ALERT, "alert_id": "x", "user": "=HYPERLINK(1)"}], "csv")
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == 3
    assert rows[0][:3] == ["alert_id", "severity", "score"]
    assert rows[2][rows[0].index("user")] == "'=HYPERLINK(1)"
    assert rows[1][rows[0].index("explanation")] == ALERT["explanation"]


@pytest.mark.parametrize("fmt", ["json", "ocsf", "ecs", "cef"])
def test_line_formats_write_one_line_per_alert(fmt: str) -> None:
    text = render([ALERT, {**ALERT, "alert_id": "y"}], fmt)
    assert len(text.splitlines()) == 2
