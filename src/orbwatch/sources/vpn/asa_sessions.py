"""Cisco ASA AnyConnect: the factors and certificate checks of a session, on its start row.

ASA logs one remote-access login as several messages within seconds: the client certificate
check of the TLS handshake (717022/717028 validated, 717009 failed; subject, no address), one
113004 "AAA user authentication Successful" per authentication server that accepted the
account (primary, then secondary when the connection profile has one; user and server, no
address), then 113039 "AnyConnect parent session started" (group policy, user, address) and
716001/722022/722051. No single message says whether a second factor or a machine certificate
was used, so the ASA parser keeps one row per message and :func:`fold_sessions` writes what
the messages around a session show onto its 113039 row. The rule (also in ``docs/logs.md``):

* A *session start* is a 113039 (or a 716001 WebVPN session without one). Evidence rows belong
  to the next session start of the same ASA (``target``) and account (user, case-insensitive,
  without a ``DOMAIN\\`` prefix) at most :data:`WINDOW` later, so each message counts for one
  session only. The address is not part of the key because 113004 and the certificate
  messages do not log it.
* ``mfa``: ``yes`` when AAA successes from two different servers precede the start (``mfa_method``
  names the secondary server); ``no`` when a single server accepted the account and that server
  is, on the same ASA, the primary of sessions that did use a second server (the account's
  profile skipped the secondary); ``unknown`` otherwise (one RADIUS server may run a second
  factor behind it, as Duo's proxy does, and ASA cannot show it).
* ``machine_cert``: ``yes``/``no`` from the last certificate message before the start whose
  subject names the account (CN equal to it or starting with it and ``.`` or ``@``: found by an
  equality join of the CN's leading labels with the accounts of the batch's session starts).
  ``no`` also when the ASA validated no certificate in the :data:`WINDOW` before the start
  although it logs certificate checks for other sessions of the batch; ``unknown`` otherwise (a
  certificate named after the machine, or another account's check logged at the same moment,
  may be this session's).
* The 113004/113012 rows folded into a session and a 716001 that repeats a 113039 (same
  account and address) become ``info`` rows (the repeat with the session's facts): one
  success per login.
  A 113004 with no session after it (refused, or a management login) stays a success.

Batches: the parser reads a file in batches of lines and folds each batch on its own. A session
whose messages straddle two batches loses the evidence in the earlier one: its factors stay
``success`` rows, its ``mfa`` is ``unknown`` (the order is primary, secondary, start, so a
start never sees only the primary of a cut pair, and a lone secondary is no ASA's primary),
and ``machine_cert = no`` by absence is only decided when the whole window before the start lies
in the batch.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pyarrow as pa

#: How long before a session start its factors and certificate check may be logged: a push or
#: token second factor waits for the user (Duo and most RADIUS MFA time out after 60 s).
WINDOW = dt.timedelta(seconds=120)
FACTORS = ("113004", "113012")
STARTS = ("113039", "716001")
CERTIFICATES = ("717022", "717028", "717009")
#: How many leading labels of a certificate CN may form the account name it stands for.
SUBJECT_LABELS = 4

_TS = pl.col("ts")
_IN_WINDOW = pl.lit(WINDOW)


def _account(user: pl.Expr) -> pl.Expr:
    """The account a user name denotes: lower case, without a ``DOMAIN\\`` prefix."""
    return user.str.strip_chars().str.to_lowercase().str.replace(r"^[^\\]*\\", "")


def _subject_names(subject: pl.Expr) -> pl.Expr:
    """The account names a certificate subject CN can stand for, as a list.

    The CN itself, its part before ``@`` and its first one to :data:`SUBJECT_LABELS` dot-separated
    labels: ``ben.young19.laptop.corp.example`` names ``ben``, ``ben.young19``... An equality
    join of these with the batch's accounts then finds the account a certificate names.
    """
    labels = subject.str.split(".")
    return pl.concat_list(
        subject,
        subject.str.replace(r"@.*$", ""),
        *(labels.list.slice(0, n).list.join(".") for n in range(1, SUBJECT_LABELS + 1)),
    )


def _certificate_accounts(df: pl.DataFrame) -> pl.DataFrame:
    """(``_row``, ``_cert_acct``): the account of a session start on the same ASA that each
    certificate subject names (the longest name wins), for the certificate rows that name one."""
    accounts = df.filter(pl.col("_start") & pl.col("_acct").is_not_null()).select("_dev", "_acct")
    names = pl.concat(
        [
            accounts.with_columns(_name=pl.col("_acct")),
            accounts.with_columns(_name=pl.col("_acct").str.replace(r"@.*$", "")),
        ]
    ).unique()
    subjects = df.filter(pl.col("_cert") & pl.col("user").is_not_null()).select(
        "_row",
        "_dev",
        _name=_subject_names(_account(pl.col("user")).str.strip_suffix(".")),
    )
    return (
        subjects.explode("_name")
        .join(names, on=["_dev", "_name"])
        .sort("_row", pl.col("_name").str.len_chars(), descending=[False, True])
        .group_by("_row", maintain_order=True)
        .first()
        .select("_row", _cert_acct=pl.col("_acct"))
    )


def _marked(rows: pl.DataFrame) -> pl.DataFrame:
    """Row kinds, the account each row speaks for, and the session start it belongs to."""
    event, dev = pl.col("event"), ["_dev"]
    df = rows.with_row_index("_row").with_columns(
        _dev=pl.col("target").fill_null(""),
        _acct=_account(pl.col("user")),
        _factor=event.is_in(FACTORS) & (pl.col("outcome") == "success"),
        _start=event.is_in(STARTS) & pl.col("user").is_not_null(),
        _cert=event.is_in(CERTIFICATES),
    )
    df = (
        df.with_columns(_last_cert_ts=pl.when(pl.col("_cert")).then(_TS).forward_fill().over(dev))
        .join(_certificate_accounts(df), on="_row", how="left")
        .with_columns(
            _acct=pl.when(pl.col("_cert")).then(pl.col("_cert_acct")).otherwise(pl.col("_acct"))
        )
        .sort("_row")
    )
    key = ["_dev", "_acct"]
    return df.with_columns(
        _next_start=pl.when(pl.col("_start")).then(pl.col("_row")).backward_fill().over(key),
        _next_start_ts=pl.when(pl.col("_start")).then(_TS).backward_fill().over(key),
    ).with_columns(
        _evidence=~pl.col("_start")
        & (pl.col("_factor") | pl.col("_cert"))
        & pl.col("_acct").is_not_null()
        & (pl.col("_next_start_ts") - _TS <= _IN_WINDOW).fill_null(False)
    )


def _session_facts(df: pl.DataFrame) -> pl.DataFrame:
    """One row per session start: its ``mfa``, ``mfa_method`` and ``machine_cert``."""
    server = pl.col("target_ip").fill_null("local database")
    evidence = (
        df.filter(pl.col("_evidence"))
        .group_by("_next_start")
        .agg(
            _servers=server.filter(pl.col("_factor")).unique(maintain_order=True),
            _cert_verdict=pl.col("machine_cert").filter(pl.col("_cert")).last(),
        )
        .rename({"_next_start": "_row"})
    )
    starts = df.filter(pl.col("_start")).join(evidence, on="_row", how="left")
    servers = pl.col("_servers").fill_null(pl.lit([], pl.List(pl.String)))
    starts = starts.with_columns(
        _n=servers.list.len(),
        _primary=servers.list.first(),
        _secondary=servers.list.get(1, null_on_oob=True),
    )
    # Servers that act as the primary of two-factor sessions on each ASA.
    primaries = starts.filter(pl.col("_n") >= 2).select("_dev", "_primary").unique()
    logs_certs = df.filter(pl.col("_cert")).select("_dev").unique().with_columns(_logs=True)
    batch_start = df["ts"].min()
    starts = starts.join(
        primaries.with_columns(_skipped=pl.lit(True)), on=["_dev", "_primary"], how="left"
    ).join(logs_certs, on="_dev", how="left")
    no_cert_near = (pl.col("_last_cert_ts").is_null()) | (
        _TS - pl.col("_last_cert_ts") > _IN_WINDOW
    )
    covered = (_TS - pl.lit(batch_start) >= _IN_WINDOW).fill_null(False)
    return starts.select(
        "_row",
        mfa=pl.when(pl.col("_n") >= 2)
        .then(pl.lit("yes"))
        .when((pl.col("_n") == 1) & pl.col("_skipped").fill_null(False))
        .then(pl.lit("no"))
        .otherwise(pl.lit("unknown")),
        mfa_method=pl.when(pl.col("_n") >= 2).then(
            pl.lit("secondary AAA server ") + pl.col("_secondary")
        ),
        machine_cert=pl.when(pl.col("_cert_verdict").is_not_null())
        .then(pl.col("_cert_verdict"))
        .when(no_cert_near & covered & pl.col("_logs").fill_null(False))
        .then(pl.lit("no"))
        .otherwise(pl.lit("unknown")),
    )


def _with_repeats(df: pl.DataFrame, facts: pl.DataFrame) -> pl.DataFrame:
    """``facts`` plus the 716001 rows that repeat a 113039 (same ASA, account and address,
    within :data:`WINDOW`): they carry the facts of that 113039 and ``_repeat`` is true."""
    key = ["_dev", "_acct"]
    starts = df.filter(pl.col("_start")).select(
        "_row",
        _repeat_of=pl.when(
            (pl.col("event") == "716001")
            & (pl.col("event").shift(1).over(key) == "113039")
            & (pl.col("src_ip").shift(1).over(key) == pl.col("src_ip"))
            & (_TS - _TS.shift(1).over(key) <= _IN_WINDOW)
        ).then(pl.col("_row").shift(1).over(key)),
    )
    repeats = (
        starts.drop_nulls("_repeat_of")
        .join(facts.rename({"_row": "_repeat_of"}), on="_repeat_of")
        .drop("_repeat_of")
        .with_columns(_repeat=pl.lit(True))
    )
    kept = facts.join(repeats.select("_row"), on="_row", how="anti")
    return pl.concat([kept.with_columns(_repeat=pl.lit(False)), repeats], how="diagonal_relaxed")


def fold_sessions(rows: pa.Table) -> pa.Table:
    """The ASA rows of one batch with each session's factors and certificate on its start row.

    Same rows, same order, same schema: only ``mfa``, ``mfa_method``, ``machine_cert`` of
    session starts and ``outcome`` of folded context rows change (rule in the module doc).
    """
    if not rows.num_rows or "event" not in rows.column_names:
        return rows
    frame = pl.from_arrow(rows)
    assert isinstance(frame, pl.DataFrame)
    marked = _marked(frame.sort("source_offset", maintain_order=True))
    facts = _with_repeats(marked, _session_facts(marked))
    folded = marked.join(facts, on="_row", how="left", suffix="_session").sort("_row")
    context = (pl.col("_evidence") & pl.col("_factor")) | pl.col("_repeat").fill_null(False)
    folded = folded.with_columns(
        mfa=pl.coalesce("mfa_session", "mfa"),
        mfa_method=pl.coalesce("mfa_method_session", "mfa_method"),
        machine_cert=pl.coalesce("machine_cert_session", "machine_cert"),
        outcome=pl.when(context).then(pl.lit("info")).otherwise(pl.col("outcome")),
    )
    return folded.select(rows.column_names).to_arrow().cast(rows.schema)
