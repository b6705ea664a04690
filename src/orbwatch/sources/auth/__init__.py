"""Authentication logs normalised into ``logins``: Windows, Entra ID, Okta, Duo, sshd.

Detection order among them (see ``sources.BUILTIN``): the JSON identity formats first, each
recognised by member names only its product writes, then the syslog-framed sshd format.
"""

from __future__ import annotations

from orbwatch.sources.auth.dropbear import Dropbear
from orbwatch.sources.auth.duo import DuoAuthCsv, DuoAuthLog
from orbwatch.sources.auth.entra import EntraSignIn
from orbwatch.sources.auth.journald import JournaldJson
from orbwatch.sources.auth.okta import OktaSystemLog
from orbwatch.sources.auth.sshd import Sshd
from orbwatch.sources.auth.windows import WindowsJson, WindowsXml

AUTH_SOURCES = (
    JournaldJson,
    WindowsXml,
    WindowsJson,
    EntraSignIn,
    OktaSystemLog,
    DuoAuthLog,
    DuoAuthCsv,
    Sshd,
    Dropbear,
)

__all__ = [
    "AUTH_SOURCES",
    "Dropbear",
    "DuoAuthCsv",
    "DuoAuthLog",
    "EntraSignIn",
    "JournaldJson",
    "OktaSystemLog",
    "Sshd",
    "WindowsJson",
    "WindowsXml",
]
