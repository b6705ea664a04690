"""Microsoft Entra ID (Azure AD) sign-in logs, JSON.

Three exports of the same sign-in record are read: the Microsoft Graph ``signIn`` resource
(``/auditLogs/signIns``: ``{"value": [...]}`` or one object per line), the Azure Monitor
diagnostic export (``{"records": [...]}`` or JSON lines, the sign-in under ``properties``)
and the Log Analytics ``SigninLogs`` table (PascalCase columns, nested values possibly
serialised as JSON text). Every field is read as the first of those spellings present.

Fields: ``createdDateTime`` -> ts, ``userPrincipalName`` -> user, ``ipAddress`` -> src_ip,
``appDisplayName`` -> target, ``status.errorCode`` 0 -> success else failure,
``errorCode: failureReason`` -> failure_reason, ``userAgent`` (else ``clientAppUsed``) ->
client, ``clientAppUsed`` -> auth_method (legacy protocols such as IMAP4 are what password
sprays use), ``conditionalAccessStatus`` -> policy, ``location.countryOrRegion`` ->
country_logged, ``correlationId`` -> session_id.

MFA rule: ``authenticationRequirement = multiFactorAuthentication`` on a successful sign-in,
or a logged ``mfaDetail.authMethod``, is ``mfa = yes`` (method: ``mfaDetail.authMethod``, else
the non-password methods of ``authenticationDetails``); ``singleFactorAuthentication`` is
``mfa = no``; otherwise ``unknown``.

Machine-certificate rule: Entra identifies a device only when the device authenticated with
its device key and certificate (joined or registered devices); ``deviceDetail.deviceId``
present is ``machine_cert = yes``, a ``deviceDetail`` without it is ``no``, no
``deviceDetail`` at all is ``unknown``.
"""

from __future__ import annotations

import re
from typing import ClassVar

from orbwatch.sources.auth.json_records import JsonLoginSource

# The sign-in object: Graph at the top level, the diagnostic export under ``properties``.
_EVENT = "coalesce(json_extract(r, '$.properties'), r)"


def _field(*paths: str) -> str:
    """SQL: the first of several spellings of a field that is present, as text.

    Log Analytics serialises nested columns as JSON text, so a path into ``DeviceDetail``
    is also tried on that text parsed as JSON.
    """
    options = []
    for path in paths:
        head, _, rest = path.partition(".")
        options.append(f"json_extract_string({_EVENT}, '$.{path}')")
        if rest:
            options.append(
                f"CASE WHEN json_valid(json_extract_string({_EVENT}, '$.{head}')) THEN "
                f"json_extract_string(json_extract_string({_EVENT}, '$.{head}')::JSON, "
                f"'$.{rest}') END"
            )
    return f"coalesce({', '.join(options)})"


_ERROR = _field("status.errorCode", "ResultType", "resultType")
_REQUIREMENT = _field("authenticationRequirement", "AuthenticationRequirement")
_MFA_METHOD = _field("mfaDetail.authMethod", "MfaDetail.authMethod")
_STEP_METHODS = (
    "nullif(array_to_string(list_filter(json_extract_string("
    f"{_EVENT}, '$.authenticationDetails[*].authenticationMethod'), "
    "lambda m: m NOT IN ('Password', 'Previously satisfied')), ','), '')"
)
_DEVICE = (
    f"coalesce(json_extract({_EVENT}, '$.deviceDetail'), json_extract({_EVENT}, '$.DeviceDetail'))"
)
_DEVICE_ID = _field("deviceDetail.deviceId", "DeviceDetail.deviceId")


class EntraSignIn(JsonLoginSource):
    """Entra ID sign-in log records (Graph, diagnostic export or Log Analytics)."""

    name: ClassVar[str] = "entra_signin"
    description: ClassVar[str] = "Microsoft Entra ID (Azure AD) sign-in logs (JSON)"
    is_login: ClassVar[str] = (
        f"{_field('createdDateTime', 'TimeGenerated', 'time')} IS NOT NULL "
        f"AND {_field('userPrincipalName', 'UserPrincipalName')} IS NOT NULL"
    )
    not_login: ClassVar[str] = "'record without createdDateTime and userPrincipalName'"
    columns: ClassVar[dict[str, str]] = {
        "ts": _field("createdDateTime", "TimeGenerated", "time"),
        "user": _field("userPrincipalName", "UserPrincipalName"),
        "src_ip": _field("ipAddress", "IPAddress", "callerIpAddress"),
        "service": "'sso'",
        "target": _field("appDisplayName", "AppDisplayName", "resourceDisplayName"),
        "outcome": f"CASE WHEN {_ERROR} IS NULL THEN NULL WHEN {_ERROR} = '0' "
        "THEN 'success' ELSE 'failure' END",
        "failure_reason": f"CASE WHEN {_ERROR} <> '0' THEN {_ERROR} || ': ' || coalesce("
        + _field("status.failureReason", "ResultDescription", "resultDescription")
        + ", '') END",
        "mfa": (
            f"CASE WHEN {_MFA_METHOD} IS NOT NULL THEN 'yes' "
            f"WHEN {_REQUIREMENT} = 'multiFactorAuthentication' AND {_ERROR} = '0' THEN 'yes' "
            f"WHEN {_REQUIREMENT} = 'singleFactorAuthentication' THEN 'no' END"
        ),
        "mfa_method": f"coalesce({_MFA_METHOD}, {_STEP_METHODS})",
        "machine_cert": (
            f"CASE WHEN nullif({_DEVICE_ID}, '') IS NOT NULL THEN 'yes' "
            f"WHEN {_DEVICE} IS NOT NULL THEN 'no' END"
        ),
        "client": _field("userAgent", "UserAgent", "clientAppUsed", "ClientAppUsed"),
        "auth_method": _field("clientAppUsed", "ClientAppUsed"),
        "session_id": _field("correlationId", "CorrelationId", "id"),
        "policy": _field("conditionalAccessStatus", "ConditionalAccessStatus"),
        "country_logged": _field("location.countryOrRegion", "LocationDetails.countryOrRegion"),
        "event": "'sign-in'",
    }

    @classmethod
    def sniff(cls, head: bytes, filename: str) -> bool:
        sample = head[:16384].decode("utf-8", "replace")
        return bool(
            re.search(r'"(userPrincipalName|UserPrincipalName)"\s*:', sample)
            and re.search(r'"(conditionalAccessStatus|ConditionalAccessStatus)"\s*:', sample)
        )
