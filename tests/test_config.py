"""Config loading and validation messages."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from orbwatch import config
from orbwatch.errors import ConfigError


def test_example_config_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "orbwatch.toml"
    path.write_text(config.EXAMPLE_CONFIG)
    cfg = config.load(path)
    assert cfg.edge_assets[0].role == config.AssetRole.VPN_GATEWAY
    assert cfg.allow[0].port == 443 and cfg.allow[0].expires == dt.date(2027, 6, 30)
    assert cfg.remote_access.machine_certificate_required is True
    assert cfg.home_countries == ["US"]


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = config.load(None)
    assert "10.0.0.0/8" in cfg.internal_networks
    assert "192.0.2.0/24" in cfg.never_malicious()


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ('internal_networks = ["10.0.0.0/33"]', "internal_networks", "not an IP address or CIDR"),
        (
            '[[edge_assets]]\nname = "x"\naddresses = ["10.0.0.1"]\nrole = "toaster"',
            "edge_assets[0].role",
            "Input should be",
        ),
        (
            '[[allow]]\ncidr = "1.2.3.0/24"\nport = 70000',
            "allow[0].port",
            "less than or equal to 65535",
        ),
        ('home_countries = ["Germany"]', "home_countries", "two-letter"),
        ('colour = "blue"', "colour", "Extra inputs are not permitted"),
    ],
)
def test_bad_config_names_file_key_and_problem(
    tmp_path: Path, text: str, where: str, what: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    message = str(info.value)
    assert str(path) in message and where in message and what in message


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.toml"
    bad.write_text("organisation = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(bad)
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "none.toml")


def test_allow_entry_expiry() -> None:
    entry = config.AllowEntry(cidr="1.2.3.4", expires=dt.date(2026, 1, 1))
    assert entry.active(dt.date(2026, 1, 1)) and not entry.active(dt.date(2026, 1, 2))
