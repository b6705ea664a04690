"""The real log formats the simulator writes, each modelled on real samples of the product.

Every function renders one chunk of the events of one sensor or service as :class:`Block` s of
lines (see :class:`orbwatch.simulate.text.TextSink`, which orders and writes them). Lines follow
the vendors' documented layouts and the samples in the shared test corpus: Zeek ``conn.log``
(TSV with headers), FortiGate traffic logs (key=value after a BSD syslog header), PAN-OS
TRAFFIC and GLOBALPROTECT logs (CSV after a syslog header), Cisco ASA firewall messages
(302013/302015 built, 302014/302016 teardown, 106023 access-group deny), Linux netfilter
kernel log lines (iptables ``LOG`` target), Cisco ASA AnyConnect messages (113004/113005 AAA,
717022 certificate, 113039/716001/722051 session start, 113019 disconnect), OpenSSH
``auth.log`` lines, and Entra ID sign-in records in the JSON-lines layout Azure Monitor
diagnostic settings export (category ``SignInLogs``). Identifiers that real devices number
(session ids, Zeek uids, GUIDs) are derived from the event id, so they are stable whatever
the chunking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from orbwatch.simulate import addresses as ad
from orbwatch.simulate.events import SERVICE, Events
from orbwatch.simulate.text import (
    Block,
    Written,
    choose,
    join,
    json_text,
    num,
    pick,
    stamp,
    syslog_stamp,
)
from orbwatch.simulate.text import write as write_lines

I64 = npt.NDArray[np.int64]
DOMAIN = "corp.example.com"
UNSET_IP = ".".join(["0"] * 4)  # how the products log "no address" (never bound to)
TENANT = "8f4c2b1e-5d3a-4f7b-9c2e-1a6b3d5e7f90"
ZEEK_FIELDS = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "local_orig",
    "local_resp",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "tunnel_parents",
]
ZEEK_TYPES = [
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "enum",
    "string",
    "interval",
    "count",
    "count",
    "string",
    "bool",
    "bool",
    "count",
    "string",
    "count",
    "count",
    "count",
    "count",
    "set[string]",
]


ASA_STAMP = "%b %d %Y %H:%M:%S"  # ASA's own timestamp (logging timestamp), with the year
BOOT_DAYS = 41.3  # how long the bastion had been up when the window starts (kernel stamps)


@dataclass
class Context:
    """What writers need beyond the event columns: names, clients, the victim's session."""

    login_names: list[str]
    clients: list[str]
    vpn_pool: int  # first address of the VPN pool
    session_ip: int  # the address the attacker's VPN session got
    start: float


def _ip(values: npt.NDArray[np.generic]) -> pa.Array:
    return ad.ip_text(np.asarray(values, dtype=np.uint32))


def _mix(ids: npt.NDArray[np.int64], salt: int) -> npt.NDArray[np.uint64]:
    """A well-spread 64-bit number per event id (SplitMix64 finaliser), for device counters."""
    z = np.asarray(ids).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    return np.asarray(z ^ (z >> np.uint64(31)))


def _counter(ids: npt.NDArray[np.int64], salt: int, below: int) -> I64:
    return (_mix(ids, salt) % np.uint64(below)).astype(np.int64)


def _uid(prefix: str, ids: I64, salt: int) -> pa.Array:
    """Zeek-like connection uids, stable per event."""
    return join(prefix, num(_counter(ids, salt, 10**15)))


def _clock(seconds: npt.NDArray[np.generic]) -> pa.Array:
    """A duration as ``H:MM:SS`` (Cisco ASA)."""
    dur = np.asarray(seconds).astype(np.int64)
    pad = pc.utf8_lpad
    return join(
        num(dur // 3600),
        ":",
        pad(num(dur // 60 % 60), width=2, padding="0"),
        ":",
        pad(num(dur % 60), width=2, padding="0"),
    )


def zeek_header(start: float) -> list[str]:
    """The header block of a Zeek TSV log opened at ``start``."""
    return [
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        "#path\tconn",
        f"#open\t{stamp(np.array([start]), '%Y-%m-%d-%H-%M-%S')[0].as_py()}",
        "#fields\t" + "\t".join(ZEEK_FIELDS),
        "#types\t" + "\t".join(ZEEK_TYPES),
    ]


def zeek_conn(f: Events) -> list[Block]:
    """Zeek conn.log (TSV writer) lines; Zeek writes a connection when it ends."""
    answered = (f["dpkts"] > 0) & ~f["deny"]
    state = pick(["S0", "SF", "REJ"], np.where(f["deny"], 2, answered.astype(np.int64)))
    hist = pick(["S", "ShADadFf", "Sr"], np.where(f["deny"], 2, answered.astype(np.int64)))
    service = pick(
        ["-", "dns", "ssl", "smb"],
        np.select([f["dport"] == 53, f["dport"] == 443, f["dport"] == 445], [1, 2, 3], 0),
    )
    ip_bytes = f["sbytes"] + 40 * f["spkts"], f["dbytes"] + 40 * f["dpkts"]
    text = join(
        fixed(f["ts"], 6),
        "\t",
        _uid("C", f["id"], 11),
        "\t",
        _ip(f["src"]),
        "\t",
        num(f["sport"]),
        "\t",
        _ip(f["dst"]),
        "\t",
        num(f["dport"]),
        "\t",
        choose(f["proto"] == 17, "udp", "tcp"),
        "\t",
        service,
        "\t",
        fixed(f["duration"], 6),
        "\t",
        num(f["sbytes"]),
        "\t",
        num(f["dbytes"]),
        "\t",
        state,
        "\t-\t-\t0\t",
        hist,
        "\t",
        num(f["spkts"]),
        "\t",
        num(ip_bytes[0]),
        "\t",
        num(f["dpkts"]),
        "\t",
        num(ip_bytes[1]),
        "\t-",
    )
    return [Block(f["ts"] + f["duration"], text, f["id"])]


def fortigate_traffic(f: Events, device: str, public: int) -> list[Block]:
    """FortiGate traffic logs: forward sessions out, local-in denies of the probes in."""
    deny = f["deny"]
    ts = f["ts"] + f["duration"]  # a session is logged when it closes
    svc = join("tcp/", num(f["dport"]))
    for port, label in ((443, "HTTPS"), (80, "HTTP"), (53, "DNS")):
        svc = pc.if_else(pa.array(f["dport"] == port), label, svc)
    text = join(
        syslog_stamp(ts),
        f" {device} date=",
        stamp(ts, "%Y-%m-%d"),
        " time=",
        stamp(ts, "%H:%M:%S"),
        f' devname="{device}" devid="FGT60FTK2209C0A1" eventtime=',
        num((ts * 1e9).astype(np.int64)),
        ' tz="+0000" logid="',
        choose(deny, "0001000014", "0000000013"),
        '" type="traffic" subtype="',
        choose(deny, "local", "forward"),
        '" level="notice" vd="root" srcip=',
        _ip(f["src"]),
        " srcport=",
        num(f["sport"]),
        ' srcintf="',
        choose(deny, "wan1", "internal"),
        '" srcintfrole="',
        choose(deny, "wan", "lan"),
        '" dstip=',
        _ip(f["dst"]),
        " dstport=",
        num(f["dport"]),
        ' dstintf="',
        choose(deny, "root", "wan1"),
        '" dstintfrole="',
        choose(deny, "undefined", "wan"),
        '" sessionid=',
        num(_counter(f["id"], 3, 2**31)),
        " proto=",
        num(f["proto"]),
        ' action="',
        choose(deny, "deny", "close"),
        '" policyid=',
        choose(deny, "0", "1"),
        ' policytype="',
        choose(deny, "local-in-policy", "policy"),
        '" service="',
        svc,
        '" trandisp="',
        choose(deny, "noop", "snat"),
        '" transip=',
        choose(deny, UNSET_IP, _ip(np.array([public]))[0].as_py()),
        " transport=",
        num(np.where(deny, 0, f["sport"])),
        " duration=",
        num(f["duration"].astype(np.int64)),
        " sentbyte=",
        num(f["sbytes"]),
        " rcvdbyte=",
        num(f["dbytes"]),
        " sentpkt=",
        num(f["spkts"]),
        " rcvdpkt=",
        num(f["dpkts"]),
    )
    return [Block(ts, text, f["id"])]


def panos_traffic(f: Events, device: str) -> list[Block]:
    """PAN-OS TRAFFIC logs (CSV, the field order of PAN-OS 10/11) after a syslog header."""
    deny = f["deny"]
    end = f["ts"] + f["duration"]
    when = stamp(end, "%Y/%m/%d %H:%M:%S")
    inbound = (f["dst"] >> np.uint32(16)) == (ad.ip_int("217.230.0.0") >> 16)
    app = pick(
        ["incomplete", "not-applicable", "ssl", "dns"],
        np.select([deny, f["dport"] == 443, f["dport"] == 53], [1, 2, 3], 0),
    )
    text = join(
        "<14>",
        syslog_stamp(end),
        f" {device} 1,",
        when,
        ",013201001234,TRAFFIC,",
        choose(deny, "deny", "end"),
        ",2561,",
        when,
        ",",
        _ip(f["src"]),
        ",",
        _ip(f["dst"]),
        ",0.0.0.0,0.0.0.0,",
        choose(deny, "interzone-default", "allow-outbound"),
        ",,,",
        app,
        ",vsys1,",
        choose(inbound, "untrust", "trust"),
        ",",
        choose(inbound, "trust", "untrust"),
        ",ethernet1/2,ethernet1/1,log-forwarding-default,",
        when,
        ",",
        num(_counter(f["id"], 5, 2**31)),
        ",1,",
        num(f["sport"]),
        ",",
        num(f["dport"]),
        ",0,0,0x400019,",
        choose(f["proto"] == 17, "udp", "tcp"),
        ",",
        choose(deny, "deny", "allow"),
        ",",
        num(f["sbytes"] + f["dbytes"]),
        ",",
        num(f["sbytes"]),
        ",",
        num(f["dbytes"]),
        ",",
        num(f["spkts"] + f["dpkts"]),
        ",",
        stamp(f["ts"], "%Y/%m/%d %H:%M:%S"),
        ",",
        num(f["duration"].astype(np.int64)),
        ",any,0,",
        num(_counter(f["id"], 7, 2**40)),
        ",0x0,",
        choose(inbound, "Germany", "10.0.0.0-10.255.255.255"),
        ",",
        choose(inbound, "10.0.0.0-10.255.255.255", "Germany"),
        ",0,",
        num(f["spkts"]),
        ",",
        num(f["dpkts"]),
        ",",
        choose(deny, "policy-deny", "tcp-fin"),
        f",0,0,0,0,,{device},from-policy,,,0,,0,,N/A,0,0,0,0",
    )
    return [Block(end, text, f["id"])]


def _lines(ids: I64, when: npt.NDArray[np.float64], head: pa.Array | str) -> Callable[..., Block]:
    """A maker of one kind of line for the rows in ``mask``: ``head`` then literals and columns.

    Columns are given for all rows and taken for the masked ones, so a format declares every
    message it writes as one call.
    """

    def make(mask: npt.NDArray[np.bool_], order: int, *parts: str | pa.Array) -> Block:
        sel = pa.array(np.nonzero(mask)[0])
        cols = [p if isinstance(p, str) else p.take(sel) for p in (head, *parts)]
        return Block(when[mask], join(*cols), ids[mask], order)

    return make


def _asa_head(ts: npt.NDArray[np.float64], device: str) -> pa.Array:
    return join("<166>", stamp(ts, ASA_STAMP), f" {device} : %ASA-")


def asa_firewall(f: Events, device: str) -> list[Block]:
    """Cisco ASA in front of the DMZ: built and teardown per allowed connection, 106023 denies.

    Inbound connections from the Internet to the DMZ servers (public addresses, so the mapped
    address equals the real one). ASA logs one byte total per connection, at teardown.
    """
    ids, deny, udp = f["id"], f["deny"], f["proto"] == 17
    start, end = f["ts"], f["ts"] + f["duration"]
    conn = num(_counter(ids, 13, 2**31))
    src, dst, sport, dport = _ip(f["src"]), _ip(f["dst"]), num(f["sport"]), num(f["dport"])
    proto = choose(udp, "UDP", "TCP")
    outside = join("outside:", src, "/", sport)
    dmz = join("dmz:", dst, "/", dport)
    opened = _lines(ids, start, _asa_head(start, device))
    closed = _lines(ids, end, _asa_head(end, device))
    return [
        opened(
            ~deny,
            0,
            choose(udp, "6-302015: Built inbound ", "6-302013: Built inbound "),
            proto,
            " connection ",
            conn,
            " for ",
            outside,
            " (",
            src,
            "/",
            sport,
            ") to ",
            dmz,
            " (",
            dst,
            "/",
            dport,
            ")",
        ),
        closed(
            ~deny,
            1,
            choose(udp, "6-302016: Teardown ", "6-302014: Teardown "),
            proto,
            " connection ",
            conn,
            " for ",
            outside,
            " to ",
            dmz,
            " duration ",
            _clock(f["duration"]),
            " bytes ",
            num(f["sbytes"] + f["dbytes"]),
            choose(udp, "", " TCP FINs"),
        ),
        opened(
            deny,
            0,
            "4-106023: Deny ",
            choose(udp, "udp", "tcp"),
            " src ",
            outside,
            " dst ",
            dmz,
            ' by access-group "outside_access_in" [0x0, 0x0]',
        ),
    ]


def netfilter(f: Events, host: str, boot: float) -> list[Block]:
    """Linux kernel log lines of an iptables ``LOG`` rule on the first packet of a connection.

    The bastion logs new SSH connections it accepts (prefix ``SSH-ACCEPT:``) and everything
    its INPUT chain drops (``BASTION-DROP:``); the prefix is the only trace of the verdict.
    """
    deny, udp = f["deny"], f["proto"] == 17
    uptime = pc.utf8_lpad(fixed(f["ts"] - boot, 6), width=12, padding=" ")
    tcp_tail = join(" WINDOW=", num(1_024 + _counter(f["id"], 17, 63_000)), " RES=0x00 SYN URGP=0")
    text = join(
        syslog_stamp(f["ts"]),
        f" {host} kernel: [",
        uptime,
        "] ",
        choose(deny, "BASTION-DROP: ", "SSH-ACCEPT: "),
        "IN=eth0 OUT= MAC=00:16:3e:5a:1c:07:00:1b:17:00:01:10:08:00 SRC=",
        _ip(f["src"]),
        " DST=",
        _ip(f["dst"]),
        " LEN=",
        choose(udp, "76", "60"),
        " TOS=0x00 PREC=0x00 TTL=",
        num(40 + _counter(f["id"], 19, 24)),
        " ID=",
        num(_counter(f["id"], 23, 65_536)),
        choose(deny, " PROTO=", " DF PROTO="),
        proto_upper(f["proto"]),
        " SPT=",
        num(f["sport"]),
        " DPT=",
        num(f["dport"]),
        pc.if_else(pa.array(udp), pa.scalar(" LEN=56", pa.large_string()), tcp_tail),
    )
    return [Block(f["ts"], text, f["id"])]


def proto_upper(proto: npt.NDArray[np.generic]) -> pa.Array:
    return choose(np.asarray(proto) == 17, "UDP", "TCP")


def _sessions(lg: Events, ctx: Context) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Login name, source address text and the VPN pool address of each session."""
    name = pick(ctx.login_names, lg["name"])
    pool = ctx.vpn_pool + _counter(lg["id"], 29, 30_000)
    pool = np.where(lg["phase"] == 3, ctx.session_ip, pool)
    return name, _ip(lg["src"]), _ip(pool)


def asa_anyconnect(lg: Events, ctx: Context, device: str) -> list[Block]:
    """Cisco ASA AnyConnect: AAA result, certificate check, session start and end messages."""
    ids = lg["id"]
    name, src, pool = _sessions(lg, ctx)
    ok, mfa, cert = lg["success"], lg["mfa"], lg["cert"]
    group = choose(mfa, "GP-Employees-MFA", "GP-Legacy-Password")
    ts, end = lg["ts"], lg["ts"] + lg["duration"]
    line = _lines(ids, ts, _asa_head(ts, device))
    last = _lines(ids, end, _asa_head(end, device))
    dur = lg["duration"].astype(np.int64)
    hms = join(
        num(dur // 3600),
        "h:",
        pc.utf8_lpad(num(dur // 60 % 60), width=2, padding="0"),
        "m:",
        pc.utf8_lpad(num(dur % 60), width=2, padding="0"),
        "s",
    )
    serial = pc.utf8_upper(_hex16((lg["user"].astype(np.int64) * 7919 + 4096).astype(np.uint64)))
    who = ("> User <", name, "> IP <", src)
    return [
        line(
            ~ok,
            0,
            "6-113005: AAA user authentication Rejected : reason = AAA failure : "
            "server = 10.1.20.10 : user = ",
            name,
            " : user IP = ",
            src,
        ),
        line(
            ok & cert,
            0,
            "6-717022: Certificate was successfully validated. serial number: ",
            serial,
            ", subject name:  CN=",
            name,
            ".laptop.",
            DOMAIN,
            ".",
        ),
        line(
            ok,
            1,
            "6-113004: AAA user authentication Successful : server = 10.1.20.10 : user = ",
            name,
        ),
        line(
            ok & mfa,
            2,
            "6-113004: AAA user authentication Successful : server = 10.1.20.11 : user = ",
            name,
        ),
        line(ok, 3, "6-113039: Group <", group, *who, "> AnyConnect parent session started."),
        line(ok, 4, "6-716001: Group <", group, *who, "> WebVPN session started."),
        line(
            ok,
            5,
            "5-722051: Group <",
            group,
            *who,
            "> IPv4 Address <",
            pool,
            "> assigned to session",
        ),
        last(
            ok,
            6,
            "4-113019: Group = ",
            group,
            ", Username = ",
            name,
            ", IP = ",
            src,
            ", Session disconnected. Session Type: AnyConnect-Parent, Duration: ",
            hms,
            ", Bytes xmt: ",
            num(lg["bytes"] // 3),
            ", Bytes rcv: ",
            num(lg["bytes"]),
            ", Reason: User Requested",
        ),
    ]


GP_CLIENT = {
    # PAN-OS encloses CSV fields that hold a comma in double quotes, as the client OS does.
    "legit": ("6.2.1", '"Microsoft Windows 11 Enterprise , 64-bit"', "10.0.22631"),
    "other": ("5.2.13", "Linux", "5.15.0"),
}


def globalprotect(lg: Events, ctx: Context, device: str) -> list[Block]:
    """PAN-OS GLOBALPROTECT logs: gateway-auth login results with auth method and connect method."""
    name, src, pool = _sessions(lg, ctx)
    ok, cert = lg["success"], lg["cert"]
    legit = np.asarray(lg["client"]) == 1
    when = stamp(lg["ts"], "%Y/%m/%d %H:%M:%S")
    host = join(
        "MUC-", pc.utf8_lpad(num(lg["user"].astype(np.int64) % 100_000), width=5, padding="0")
    )
    text = join(
        "<14>",
        syslog_stamp(lg["ts"]),
        f" {device} 1,",
        when,
        ",013201001234,GLOBALPROTECT,0,2817,",
        when,
        ",vsys1,gateway-auth,login,",
        choose(lg["mfa"], "SAML", "LDAP"),
        ",SSL,",
        name,
        ",Germany,",
        host,
        ",",
        src,
        ",0.0.0.0,",
        pc.if_else(pa.array(ok), pool, UNSET_IP),
        ",0.0.0.0,",
        pc.if_else(pa.array(cert), join("cert-", num(lg["user"])), ""),
        ",",
        choose(cert, "PF2X7K1M", ""),
        ",",
        choose(legit, GP_CLIENT["legit"][0], GP_CLIENT["other"][0]),
        ",",
        choose(legit, GP_CLIENT["legit"][1], GP_CLIENT["other"][1]),
        ",",
        choose(legit, GP_CLIENT["legit"][2], GP_CLIENT["other"][2]),
        ",1,",
        choose(ok, "", "Authentication failed: Invalid username or password"),
        ",",
        choose(ok, "", "auth-failed"),
        ",,",
        choose(ok, "success", "failure"),
        ",Munich,0,",
        choose(cert, "pre-logon", "on-demand"),
        ",",
        choose(ok, "0", "2"),
        ",gp-munich-portal,",
        num(_counter(lg["id"], 31, 2**40)),
        ",0x8000000000000000",
    )
    return [Block(lg["ts"], text, lg["id"])]


def sshd(lg: Events, ctx: Context, host: str) -> list[Block]:
    """OpenSSH ``auth.log``: accepted keys, failed and invalid-user passwords, PAM sessions."""
    name, src, _ = _sessions(lg, ctx)
    ok, known = lg["success"], lg["user"] >= 0
    head = join(
        syslog_stamp(lg["ts"]),
        f" {host} sshd[",
        num(10_000 + _counter(lg["id"], 37, 50_000)),
        "]: ",
    )
    port = num(lg["sport"])
    line = _lines(lg["id"], lg["ts"], head)
    key = join(
        "SHA256:",
        pc.utf8_lpad(num(lg["user"].astype(np.int64) * 104_729 % 10**12), width=43, padding="0"),
    )
    return [
        line(
            ok,
            0,
            "Accepted publickey for ",
            name,
            " from ",
            src,
            " port ",
            port,
            " ssh2: ED25519 ",
            key,
        ),
        line(
            ok,
            1,
            "pam_unix(sshd:session): session opened for user ",
            name,
            "(uid=",
            num(1_000 + lg["user"]),
            ") by (uid=0)",
        ),
        line(~ok & known, 0, "Failed password for ", name, " from ", src, " port ", port, " ssh2"),
        line(~ok & ~known, 0, "Invalid user ", name, " from ", src, " port ", port),
        line(
            ~ok & ~known,
            1,
            "Failed password for invalid user ",
            name,
            " from ",
            src,
            " port ",
            port,
            " ssh2",
        ),
    ]


MFA_STEP = (
    ',{"authenticationStepDateTime":null,"authenticationMethod":"Mobile app notification",'
    '"authenticationMethodDetail":"Microsoft Authenticator","succeeded":true,'
    '"authenticationStepResultDetail":"MFA successfully completed",'
    '"authenticationStepRequirement":"Multi-factor authentication"}'
)


def entra_signins(lg: Events, ctx: Context) -> list[Block]:
    """Entra ID sign-ins as Azure Monitor exports them (JSON lines, category SignInLogs)."""
    ids = lg["id"]
    name, src, _ = _sessions(lg, ctx)
    user = json_text(name)
    ok, mfa, cert = lg["success"], lg["mfa"], lg["cert"]
    frac = pc.utf8_lpad(num(((lg["ts"] % 1) * 1e7).astype(np.int64)), width=7, padding="0")
    iso = join(stamp(lg["ts"], "%Y-%m-%dT%H:%M:%S"), ".", frac, "Z")
    country = pa.array(ad.countries(lg["src"]))
    code = choose(ok, "0", "50126")
    reason = choose(
        ok, "Other.", "Error validating credentials due to invalid username or password."
    )
    managed = choose(cert, "true", "false")
    text = join(
        '{"time":"',
        iso,
        '","resourceId":"/tenants/',
        TENANT,
        '/providers/Microsoft.aadiam",'
        '"operationName":"Sign-in activity","operationVersion":"1.0","category":"SignInLogs",'
        '"tenantId":"',
        TENANT,
        '","resultType":"',
        code,
        '","resultSignature":"None","resultDescription":"',
        reason,
        '","durationMs":0,"callerIpAddress":"',
        src,
        '","correlationId":"',
        _guid(ids, 9),
        '","identity":"',
        user,
        '","Level":4,"location":"',
        country,
        '","properties":{"id":"',
        _guid(ids, 3),
        '","createdDateTime":"',
        iso,
        '","userDisplayName":"',
        user,
        '","userPrincipalName":"',
        user,
        "@",
        DOMAIN,
        '","userId":"',
        _guid(lg["name"].astype(np.int64), 5),
        '","appId":'
        '"00000002-0000-0ff1-ce00-000000000000","appDisplayName":"Office 365 Exchange Online",'
        '"ipAddress":"',
        src,
        '","status":{"errorCode":',
        code,
        ',"failureReason":"',
        reason,
        '"},"clientAppUsed":"Browser","userAgent":"',
        json_text(pick(ctx.clients, lg["client"])),
        '","deviceDetail":{"deviceId":"',
        pc.if_else(pa.array(cert), _guid(lg["name"].astype(np.int64), 7), ""),
        '","operatingSystem":"Windows10","browser":"Chrome","isCompliant":',
        managed,
        ',"isManaged":',
        managed,
        ',"trustType":"',
        choose(cert, "Azure AD joined", ""),
        '"},"location":{"countryOrRegion":"',
        country,
        '"},"authenticationRequirement":"',
        choose(mfa, "multiFactorAuthentication", "singleFactorAuthentication"),
        '","authenticationDetails":[{"authenticationStepDateTime":"',
        iso,
        '","authenticationMethod":"Password","authenticationMethodDetail":"Password in the '
        'cloud","succeeded":',
        choose(ok, "true", "false"),
        ',"authenticationStepResultDetail":"',
        choose(
            ok,
            "Correct password",
            "Invalid username or password or Invalid on-premise username or password.",
        ),
        '","authenticationStepRequirement":"Primary authentication"}',
        choose(ok & mfa, MFA_STEP, ""),
        '],"isInteractive":true,"conditionalAccessStatus":"',
        choose(ok, "success", "notApplied"),
        '","riskLevelDuringSignIn":"none","autonomousSystemNumber":',
        num(_asn(lg["src"])),
        "}}",
    )
    return [Block(lg["ts"], text, ids)]


def _asn(addr: npt.NDArray[np.uint32]) -> I64:
    plan = sorted(ad.PREFIXES, key=lambda p: p.first)
    firsts = np.array([p.first for p in plan], dtype=np.int64)
    sizes = np.array([p.size for p in plan], dtype=np.int64)
    asns = np.array([p.asn for p in plan] + [0], dtype=np.int64)
    a = np.asarray(addr, np.int64)
    i = np.clip(np.searchsorted(firsts, a, side="right") - 1, 0, None)
    inside = (a >= firsts[i]) & (a < firsts[i] + sizes[i])
    return np.asarray(asns[np.where(inside, i, len(plan))])


def _guid(ids: I64, salt: int) -> pa.Array:
    """Deterministic GUID-shaped identifiers from event ids."""
    h1, h2 = _hex16(_mix(ids, salt * 977)), _hex16(_mix(ids, salt * 977 + 1))
    cut = pc.utf8_slice_codeunits
    return join(
        cut(h1, 0, 8),
        "-",
        cut(h1, 8, 12),
        "-4",
        cut(h1, 13, 16),
        "-a",
        cut(h2, 0, 3),
        "-",
        cut(h2, 4, 16),
    )


def _hex16(values: npt.NDArray[np.uint64]) -> pa.Array:
    """16 hex digits per value, from its bytes (vectorised)."""
    raw = np.asarray(values, dtype=">u8").view(np.uint8).reshape(-1, 8)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    chars = np.empty((len(raw), 16), dtype=np.uint8)
    chars[:, 0::2], chars[:, 1::2] = digits[raw >> 4], digits[raw & 15]
    return pa.array(chars.view("S16").ravel()).cast(pa.string())


def fixed(values: npt.NDArray[np.float64], places: int) -> pa.Array:
    """Non-negative numbers with a fixed number of decimals (vectorised, unlike ``%f``)."""
    scale = 10**places
    whole = np.round(np.asarray(values) * scale).astype(np.int64)
    frac = pc.utf8_lpad(num(whole % scale), width=places, padding="0")
    return join(num(whole // scale), ".", frac)


def feed(ips: npt.NDArray[np.uint32], path: Path, published: str) -> Written:
    """A FireHOL-style netset of relay nodes a vendor saw last month, plus bogons as real feeds."""
    listed = np.unique(ips)
    header = [
        "#",
        "# orb_relays_vendor_feed",
        "#",
        "# ipv4 hash:ip ipset",
        "#",
        "# Covert-network relay nodes observed by a vendor during the previous month.",
        f"# Published {published}. Aggregated with bogon ranges, as public feeds are.",
        "#",
        "0.0.0.0/8",
        "10.0.0.0/8",
        "192.168.0.0/16",
    ]
    rows = np.arange(len(listed), dtype=np.int64)
    return write_lines(
        path, "netset", [Block(np.zeros(len(listed)), ad.ip_text(listed), rows)], header
    )


__all__ = [
    "SERVICE",
    "Context",
    "asa_anyconnect",
    "asa_firewall",
    "entra_signins",
    "feed",
    "fortigate_traffic",
    "globalprotect",
    "netfilter",
    "panos_traffic",
    "sshd",
    "zeek_conn",
]
