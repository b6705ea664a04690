"""Okta System Log (``/api/v1/logs`` JSON, or JSON lines from a SIEM export).

Okta logs every administrative change and every step of a sign-in in one stream; only the
sign-in steps become ``logins`` rows, every other event type is counted as skipped with its
``eventType``. Kept event types and their outcome:

==============================================  ===========================================
eventType                                       outcome
==============================================  ===========================================
``user.session.start``, ``user.authentication.*``  ``SUCCESS``/``ALLOW`` -> success,
``policy.evaluate_sign_on``,                       ``FAILURE``/``DENY`` -> failure,
``user.mfa.okta_verify.deny_push``                 ``CHALLENGE``/other -> info
``user.session.end``                               end
``user.account.lock``                              info (reason: account locked)
==============================================  ===========================================

Fields: ``published`` -> ts, ``actor.alternateId`` -> user, ``client.ipAddress`` -> src_ip,
``client.userAgent.rawUserAgent`` -> client, ``outcome.reason`` -> failure_reason,
``authenticationContext.credentialType`` -> auth_method,
``authenticationContext.externalSessionId`` -> session_id,
``client.geographicalContext.country`` -> country_logged, the first ``AppInstance`` target ->
target, ``eventType`` -> event.

MFA rule (only what Okta logs): ``mfa = yes`` for a successful second-factor step
(``user.authentication.auth_via_mfa``, ``user.authentication.verify`` with a factor, or any
event whose ``debugContext.debugData.factor`` names the factor, which is then ``mfa_method``);
Okta logs the password step and the factor step as separate events, so every other event has
``mfa = unknown``. Okta does not log device certificates: ``machine_cert = unknown``.
"""

from __future__ import annotations

import re
from typing import ClassVar

from orbwatch.sources.auth.json_records import JsonLoginSource, text

_TYPE = text("eventType")
_RESULT = f"upper({text('outcome.result')})"
_REASON = text("outcome.reason")
_FACTOR = text("debugContext.debugData.factor")
_SIGN_IN = (
    f"({_TYPE} LIKE 'user.authentication.%' OR {_TYPE} LIKE 'user.session.%' "
    f"OR {_TYPE} IN ('policy.evaluate_sign_on', 'user.mfa.okta_verify.deny_push', "
    "'user.account.lock'))"
)
_ALLOWED = f"{_RESULT} IN ('SUCCESS', 'ALLOW')"
_MFA_STEP = f"({_TYPE} = 'user.authentication.auth_via_mfa' OR {_FACTOR} IS NOT NULL)"


class OktaSystemLog(JsonLoginSource):
    """Okta System Log events (JSON array or JSON lines)."""

    name: ClassVar[str] = "okta"
    description: ClassVar[str] = "Okta System Log (JSON): sign-ins, sessions, MFA steps"
    is_login: ClassVar[str] = _SIGN_IN
    not_login: ClassVar[str] = (
        f"'Okta event ' || coalesce({_TYPE}, '(no eventType)') || ' is not a sign-in step'"
    )
    columns: ClassVar[dict[str, str]] = {
        "ts": text("published"),
        "user": text("actor.alternateId"),
        "src_ip": text("client.ipAddress"),
        "service": "'sso'",
        "target": (
            "json_extract_string(list_extract(list_filter(json_extract(r, '$.target[*]'), "
            "lambda t: json_extract_string(t, '$.type') = 'AppInstance'), 1), '$.displayName')"
        ),
        "outcome": (
            f"CASE WHEN {_TYPE} = 'user.session.end' THEN 'end' "
            f"WHEN {_TYPE} = 'user.account.lock' THEN 'info' "
            f"WHEN {_TYPE} = 'user.mfa.okta_verify.deny_push' THEN 'failure' "
            f"WHEN {_ALLOWED} THEN 'success' "
            f"WHEN {_RESULT} IN ('FAILURE', 'DENY') THEN 'failure' ELSE 'info' END"
        ),
        "failure_reason": (
            f"CASE WHEN {_TYPE} = 'user.account.lock' THEN coalesce({_REASON}, 'account locked') "
            f"WHEN NOT {_ALLOWED} THEN {_REASON} END"
        ),
        "mfa": f"CASE WHEN {_ALLOWED} AND {_MFA_STEP} THEN 'yes' END",
        "mfa_method": (
            f"CASE WHEN {_MFA_STEP} THEN "
            f"coalesce({_FACTOR}, {text('authenticationContext.credentialType')}) END"
        ),
        "auth_method": text("authenticationContext.credentialType"),
        "client": text("client.userAgent.rawUserAgent"),
        "session_id": text("authenticationContext.externalSessionId"),
        "event": _TYPE,
        "country_logged": text("client.geographicalContext.country"),
    }

    @classmethod
    def sniff(cls, head: bytes, filename: str) -> bool:
        sample = head[:16384].decode("utf-8", "replace")
        return all(
            re.search(rf'\\?"{key}\\?"\s*:', sample)
            for key in ("eventType", "actor", "published", "outcome")
        )
