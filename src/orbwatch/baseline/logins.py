"""Login baselines: what normal remote access looks like for each account and for the organisation.

Covert networks log in from exit nodes chosen to look ordinary (a residential ISP in the
victim's own country), so a login is judged less by where it comes from than by whether that
kind of place is *usual for this account*. This module keeps, per user and service, how often
each value of each attribute occurred in successful logins (``login_profiles``, long format) and
per user how much history there is (``login_users``), following the learning period of Entra ID
Protection: an account is profiled after 14 days or 10 logins, whichever comes first, but never
before 5 days (field notes, "How the anchors detect"). Accounts still learning get a weaker,
clearly labelled verdict from the detectors.

Only successful logins enter the baseline: failures are mostly someone else's attempts and
would teach the profile the attacker's habits.

Everything is an Ibis expression, so the same code computes the delta on the workspace and the
detectors read the tables on any engine. :func:`update_login_baselines` folds in only logins
newer than the previous update (a watermark kept in ``orbwatch_meta``) and merges them with the
stored counts, so a daily update costs one day of logins, not the whole history.

Helpers shared by the login detectors live here too, because they read the baseline:
:func:`enriched_logins` (logins with what ``ip_info`` knows about the source),
:func:`familiar_sources` (addresses and /24s many colleagues use) and :func:`past_values`
(what an account's earlier logins looked like, for the explanations).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from orbwatch import netaddr
from orbwatch.config import Config
from orbwatch.engines.base import Engine
from orbwatch.engines.duckdb_engine import DuckDBEngine
from orbwatch.store.migrations import add_missing
from orbwatch.store.schema import TABLES
from orbwatch.store.workspace import Workspace

PROFILES = "login_profiles"
USERS = "login_users"
WATERMARK_KEY = "login_baseline_through"

#: Attributes profiled per user and service (``login_profiles.attribute``).
ATTRIBUTES = (
    "country",
    "region",
    "asn",
    "net_class",
    "client",
    "hour_of_week",
    "src_net",
    "src_key",
    "target",
)
#: Client strings are attacker-controlled: bound what the baseline stores.
MAX_CLIENT_CHARS = 200
#: Hex digits of an address key that make its /24 (IPv4) or /48 (IPv6) "network".
V4_NET_DIGITS = len(netaddr.V4_MAPPED_PREFIX) + 6
V6_NET_DIGITS = 12


@dataclass(frozen=True)
class LearningPeriod:
    """When an account counts as profiled (defaults: Entra ID Protection, see field notes)."""

    #: Never profiled before this many days of history.
    min_days: float = 5.0
    #: Profiled after this many days of history, however few the logins.
    full_days: float = 14.0
    #: Profiled after this many successful logins (once ``min_days`` have passed).
    full_logins: int = 10


# -- logins with their source described -------------------------------------------------------


def in_networks(key: ir.StringValue, networks: list[str]) -> ir.BooleanValue:
    """True where ``key`` lies in one of ``networks`` (a few config ranges: an OR of BETWEENs)."""
    test: ir.BooleanValue = ibis.literal(False)
    for text in networks:
        net = netaddr.network(text)
        test = test | key.between(net.start_key, net.end_key)
    return test.fill_null(False)


def corporate_networks(config: Config) -> list[str]:
    """Networks whose logins are the organisation's own: internal ranges plus corporate egress."""
    return list(dict.fromkeys([*config.internal_networks, *config.corporate_egress]))


def _ip_info(engine: Engine) -> ir.Table:
    """One row per address key (guards against a key enriched twice multiplying logins)."""
    info = engine.table("ip_info")
    return info.group_by("ip_key").aggregate(
        country=info.country.max(),
        region=info.region.max(),
        latitude=info.latitude.max(),
        longitude=info.longitude.max(),
        asn=info.asn.max(),
        as_org=info.as_org.max(),
        net_class=info.net_class.max(),
    )


def source_net(key: ir.StringValue) -> ir.StringValue:
    """The /24 (IPv4) or /48 (IPv6) of an address key, as a key prefix."""
    return key.startswith(netaddr.V4_MAPPED_PREFIX).ifelse(
        key.substr(0, V4_NET_DIGITS), key.substr(0, V6_NET_DIGITS)
    )


def account_name(user: ir.StringValue) -> ir.StringValue:
    """The account a logged name refers to: lower case, without an ``@domain`` suffix.

    One person signs in to the VPN as ``jdoe`` and to the identity provider as
    ``JDoe@corp.example.com`` (Entra logs the user principal name); profiling them apart would
    halve each history and make the first SSO login of a VPN regular look "new". Directory
    names are case-insensitive. Organisations whose principal names differ from the account
    names (or with colliding names across domains) see those accounts profiled apart.
    """
    return user.split("@")[0].lower()


def enriched_logins(engine: Engine, config: Config) -> ir.Table:
    """``logins`` left-joined with ``ip_info``: location, ASN and class of every source.

    ``user`` is the :func:`account_name`. Sources ``ip_info`` does not know get
    ``net_class = 'unknown'`` and null location, so a missing enrichment never hides a login.
    ``corporate`` is true for the organisation's own networks (config ``internal_networks``
    and ``corporate_egress``) and sources classed ``corporate``.
    """
    logins = engine.table("logins")
    logins = logins.mutate(user=account_name(logins.user))
    info = _ip_info(engine)
    joined = logins.left_join(info, logins.src_key == info.ip_key)
    net_class = joined.net_class.fill_null("unknown")
    region = joined.country.concat("/", joined.region)
    return joined.select(
        *logins.columns,
        country=joined.country,
        region=region,
        latitude=joined.latitude,
        longitude=joined.longitude,
        asn=joined.asn,
        as_org=joined.as_org,
        net_class=net_class,
        src_net=source_net(joined.src_key),
        hour_of_week=joined.ts.day_of_week.index() * 24 + joined.ts.hour(),
        corporate=in_networks(joined.src_key, corporate_networks(config))
        | (net_class == "corporate"),
    )


def successes(logins: ir.Table) -> ir.Table:
    """Successful logins by a named account (the only ones a profile learns from), one row
    per login.

    Some products log one login as several success messages in the same second (Cisco ASA:
    113004 without the address, then 113039 and 716001 with it); counted apart they would
    triple the learning count and profile a sourceless "unknown" network. Rows of one account
    and service with the same time are one login: the first one with a source address is kept
    (two logins of one account in the same second from different places collapse too, which
    no login detector can judge anyway).
    """
    ok = logins.filter((logins.outcome == "success") & logins.user.notnull() & (logins.user != ""))
    order = ibis.window(
        group_by=[ok.user, ok.service, ok.ts],
        order_by=[ok.src_key.isnull(), ok.source_file, ok.source_offset],
    )
    ok = ok.mutate(_copy=ibis.row_number().over(order))
    return ok.filter(ok._copy == 0).drop("_copy")


# -- the baseline tables ----------------------------------------------------------------------


def _attribute_values(ok: ir.Table) -> ir.Table:
    """Each successful login once per attribute: (user, service, attribute, value, ts)."""
    values: dict[str, ir.Value] = {
        "country": ok.country,
        "region": ok.region,
        "asn": ok.asn.cast("string"),
        "net_class": ok.net_class,
        "client": ok.client.substr(0, MAX_CLIENT_CHARS),
        "hour_of_week": ok.hour_of_week.cast("string"),
        "src_net": ok.src_net,
        "src_key": ok.src_key,
        "target": ok.target,
    }
    parts = [
        ok.select(
            user=ok.user,
            service=ok.service.fill_null("unknown"),
            attribute=ibis.literal(name),
            value=value.cast("string"),
            ts=ok.ts,
        )
        for name, value in values.items()
    ]
    out = parts[0]
    for part in parts[1:]:
        out = out.union(part)
    return out.filter(out.value.notnull())


def profile_delta(ok: ir.Table) -> ir.Table:
    """``login_profiles`` rows for a set of successful logins."""
    values = _attribute_values(ok)
    return values.group_by(["user", "service", "attribute", "value"]).aggregate(
        count=values.count(),
        first_seen=values.ts.min(),
        last_seen=values.ts.max(),
    )


def merge_profiles(stored: ir.Table, delta: ir.Table) -> ir.Table:
    """Stored profile rows plus a delta: counts add up, first/last seen widen."""
    both = stored.select(*TABLES[PROFILES].schema.names).union(
        delta.select(*TABLES[PROFILES].schema.names)
    )
    return both.group_by(["user", "service", "attribute", "value"]).aggregate(
        count=both["count"].sum(),
        first_seen=both.first_seen.min(),
        last_seen=both.last_seen.max(),
    )


def merge_users(stored: ir.Table, ok: ir.Table, learning: LearningPeriod) -> ir.Table:
    """``login_users`` after folding in the successful logins ``ok``.

    The login that completes the learning count is found with a row number that continues
    from each account's stored count, so an update never needs the old logins again.
    """
    prior = stored.select(
        user=stored.user, prior_logins=stored.logins, prior_nth=stored.learning_logins_at
    )
    new = ok.left_join(prior, ok.user == prior.user).select(
        user=ok.user, ts=ok.ts, prior_logins=prior.prior_logins.fill_null(0)
    )
    order = ibis.window(group_by=new.user, order_by=new.ts)
    new = new.mutate(position=new.prior_logins + ibis.row_number().over(order) + 1)
    is_nth = new.position == learning.full_logins
    delta = new.group_by("user").aggregate(
        first_seen=new.ts.min(),
        last_seen=new.ts.max(),
        logins=new.count(),
        learning_logins_at=is_nth.ifelse(new.ts, ibis.null(new.ts.type())).min(),
    )
    cols = ["user", "first_seen", "last_seen", "logins", "learning_logins_at"]
    both = stored.select(*cols).union(delta.select(*cols))
    users = both.group_by("user").aggregate(
        first_seen=both.first_seen.min(),
        last_seen=both.last_seen.max(),
        logins=both.logins.sum(),
        learning_logins_at=both.learning_logins_at.min(),
    )
    by_days = users.first_seen + ibis.interval(seconds=int(learning.full_days * 86400))
    earliest = users.first_seen + ibis.interval(seconds=int(learning.min_days * 86400))
    # Spelled out because GREATEST/LEAST skip nulls on some engines and not on others.
    by_count = ibis.greatest(earliest, users.learning_logins_at)
    profiled = users.learning_logins_at.isnull().ifelse(by_days, ibis.least(by_days, by_count))
    return users.mutate(profiled_since=profiled).select(*TABLES[USERS].schema.names)


def _watermark(ws: Workspace) -> dt.datetime | None:
    value = ws.meta(WATERMARK_KEY)
    return dt.datetime.fromisoformat(value) if value else None


def _replace(ws: Workspace, name: str, data: pa.Table) -> None:
    ws.con.execute(f'DELETE FROM "{name}"')
    ws.append(name, data)


def update_login_baselines(
    ws: Workspace,
    config: Config,
    now: dt.datetime | None = None,
    *,
    learning: LearningPeriod | None = None,
    full: bool = False,
) -> dict[str, int]:
    """Fold logins newer than the last update (and not after ``now``) into the baselines.

    ``full`` rebuilds from every login instead, e.g. after logins older than the last update
    were ingested late, or after changing the learning period. Returns counts: ``logins``
    folded in, ``users`` and ``profile_rows`` stored, ``profiled_users`` (as of ``now``).
    """
    learning = learning or LearningPeriod()
    now = now or dt.datetime.now(dt.UTC)
    add_missing(ws.con)  # a workspace created before the baseline tables were declared
    engine = DuckDBEngine(ws)
    since = None if full else _watermark(ws)
    ok = successes(enriched_logins(engine, config))
    ok = ok.filter(ok.ts <= now)
    if since is not None:
        ok = ok.filter(ok.ts > since)
    stored_profiles = engine.table(PROFILES)
    stored_users = engine.table(USERS)
    if full:
        stored_profiles = stored_profiles.limit(0)
        stored_users = stored_users.limit(0)
    stats = engine.execute(ok.aggregate(n=ok.count(), last=ok.ts.max())).to_pylist()[0]
    folded, last = int(stats["n"]), stats["last"]
    profiles = engine.execute(merge_profiles(stored_profiles, profile_delta(ok)))
    users = engine.execute(merge_users(stored_users, ok, learning))
    with ws.transaction():
        _replace(ws, PROFILES, profiles)
        _replace(ws, USERS, users)
        through = last if last is not None else since
        if through is not None:
            ws.con.execute(
                "INSERT OR REPLACE INTO orbwatch_meta VALUES (?, ?)",
                [WATERMARK_KEY, through.isoformat()],
            )
    profiled = sum(1 for p in users["profiled_since"].to_pylist() if p is not None and p <= now)
    return {
        "logins": folded,
        "users": users.num_rows,
        "profile_rows": profiles.num_rows,
        "profiled_users": profiled,
    }


# -- what detectors read ----------------------------------------------------------------------


def user_profile(engine: Engine, attribute: str) -> ir.Table:
    """One attribute of every account's profile, over all services: (user, value, count, ...)."""
    prof = engine.table(PROFILES)
    prof = prof.filter(prof.attribute == attribute)
    return prof.group_by(["user", "value"]).aggregate(
        count=prof["count"].sum(),
        first_seen=prof.first_seen.min(),
        last_seen=prof.last_seen.max(),
    )


def familiar_sources(engine: Engine, min_users: int = 3, min_days: float = 7.0) -> ir.Table:
    """Addresses and /24s the organisation knows: used by ``min_users`` or more accounts over
    ``min_days`` or more (colleagues sharing an office, a home network, a zero-trust egress).

    The time span keeps a fresh relay from becoming "familiar" the day it logs in as three
    stolen accounts. Columns: ``attribute`` (``src_key`` or ``src_net``), ``value``, ``users``.
    """
    prof = engine.table(PROFILES)
    prof = prof.filter(prof.attribute.isin(["src_key", "src_net"]))
    out = prof.group_by(["attribute", "value"]).aggregate(
        users=prof.user.nunique(),
        first_seen=prof.first_seen.min(),
        last_seen=prof.last_seen.max(),
    )
    span = out.last_seen.epoch_seconds() - out.first_seen.epoch_seconds()
    return out.filter((out.users >= min_users) & (span >= int(min_days * 86400)))


def with_familiarity(logins: ir.Table, engine: Engine, min_users: int, min_days: float) -> ir.Table:
    """Add ``familiar``: the login's address or /24 is a familiar source of the organisation."""
    known = familiar_sources(engine, min_users, min_days)
    keys = known.filter(known.attribute == "src_key").select(k_value=known.value)
    nets = known.filter(known.attribute == "src_net").select(n_value=known.value)
    by_key = logins.left_join(keys, logins.src_key == keys.k_value).select(
        *logins.columns, key_hit=keys.k_value
    )
    by_net = by_key.left_join(nets, by_key.src_net == nets.n_value).select(
        *by_key.columns, net_hit=nets.n_value
    )
    return by_net.mutate(familiar=by_net.key_hit.notnull() | by_net.net_hit.notnull()).drop(
        "key_hit", "net_hit"
    )


def with_prior_logins(ok: ir.Table) -> ir.Table:
    """Add ``prior_logins``: the account's successful logins before this one (exact, from a
    window over ``ok``; ties in time broken by file and offset so every engine agrees)."""
    order = ibis.window(group_by=ok.user, order_by=[ok.ts, ok.source_file, ok.source_offset])
    return ok.mutate(prior_logins=ibis.row_number().over(order))


def with_profile_state(logins: ir.Table, engine: Engine) -> ir.Table:
    """Add ``profiled`` (the account's learning period was over before this login) and
    ``history_logins`` (its successful logins in the baseline)."""
    users = engine.table(USERS)
    users = users.select(
        p_user=users.user, profiled_since=users.profiled_since, history_logins=users.logins
    )
    joined = logins.left_join(users, logins.user == users.p_user)
    return joined.mutate(
        profiled=(joined.profiled_since < joined.ts).fill_null(False),
        history_logins=joined.history_logins.fill_null(0),
    ).drop("p_user")


def mark_new_hour(logins: ir.Table, engine: Engine, tolerance: int) -> ir.Table:
    """Add ``new_hour``: no earlier login of the account within ``tolerance`` hours of this
    one's hour of the day (UTC, circular), from the ``hour_of_week`` profile.

    Logins are identified by ``source_file`` and ``source_offset`` (unique per record).
    """
    prof = user_profile(engine, "hour_of_week")
    prof = prof.mutate(h_hour=prof.value.cast("int64") % 24)
    prof = prof.group_by([prof.user.name("h_user"), "h_hour"]).aggregate(
        h_first=prof.first_seen.min()
    )
    keys = logins.select("user", "ts", "source_file", "source_offset")
    gap = (prof.h_hour - keys.ts.hour() + 24) % 24
    near = keys.join(
        prof,
        (keys.user == prof.h_user)
        & (prof.h_first < keys.ts)
        & ((gap <= tolerance) | (gap >= 24 - tolerance)),
    )
    usual = near.select(u_file=near.source_file, u_offset=near.source_offset).distinct()
    joined = logins.left_join(
        usual,
        (logins.source_file == usual.u_file) & (logins.source_offset == usual.u_offset),
    )
    return joined.mutate(new_hour=joined.u_file.isnull()).drop("u_file", "u_offset")


def past_values(engine: Engine, events: ir.Table, attribute: str, as_column: str) -> ir.Table:
    """For each (``user``, ``ts``) of ``events``: the account's values of ``attribute`` first
    seen before ``ts``, as a list of ``value=count`` strings in column ``as_column``.

    Used for explanations ("her 40 past logins came from AS7922 and AS701"). Order is not
    meaningful: the caller sorts by count. ``events`` must have unique (user, ts) rows.
    """
    prof = user_profile(engine, attribute)
    prof = prof.select(
        h_user=prof.user, h_value=prof.value, h_count=prof["count"], h_first=prof.first_seen
    )
    keys = events.select("user", "ts").distinct()
    joined = keys.join(prof, (keys.user == prof.h_user) & (prof.h_first < keys.ts))
    listed = joined.group_by(["user", "ts"]).aggregate(
        **{as_column: joined.h_value.concat("=", joined.h_count.cast("string")).collect()}
    )
    return listed


def ranked(values: list[str] | None, limit: int = 3) -> list[tuple[str, int]]:
    """``value=count`` strings from :func:`past_values`, most frequent first (ties by value)."""
    pairs = []
    for item in values or []:
        value, _, count = item.rpartition("=")
        pairs.append((value, int(count)))
    pairs.sort(key=lambda p: (-p[1], p[0]))
    return pairs[:limit]
