"""TAXII 2.1 collections, fetched with ``taxii2-client`` and read as a STIX bundle.

``orbwatch intel add taxii://host:port/api-root/collections/ID`` fetches over HTTPS;
``taxii+http://`` asks for plain HTTP explicitly (a server on the same host, a test server),
and ``--taxii URL --collection ID`` names the API root and collection separately. Pages are
followed with the client's ``as_pages`` until the server says there are no more, bounded by
:data:`orbwatch.enrich.feeds.base.MAX_RECORDS` objects. The objects are spooled to a temporary
bundle file so that the collection goes through the same STIX reader, hashing and provenance
as a file: ``source_file`` is the collection URL.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from orbwatch.enrich.feeds.base import MAX_RECORDS
from orbwatch.errors import InputError

SCHEMES = {"taxii": "https", "taxii+https": "https", "taxii+http": "http"}
PAGE_SIZE = 1000


def is_taxii(source: str) -> bool:
    """Whether ``source`` names a TAXII collection rather than a file."""
    return urlsplit(source).scheme in SCHEMES


def collection_url(source: str, collection: str | None = None) -> str:
    """The HTTP(S) URL of a collection from ``taxii://...`` or an API root plus an id."""
    parts = urlsplit(source)
    scheme = SCHEMES.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https") or not parts.netloc:
        raise InputError(f"{source}: not a TAXII URL (use taxii://host[:port]/api-root/...)")
    path = parts.path.rstrip("/")
    if collection is not None:
        path = f"{path}/collections/{collection}"
    if "/collections/" not in path + "/":
        raise InputError(f"{source}: name the collection (…/collections/ID or --collection ID)")
    return urlunsplit((scheme, parts.netloc, path + "/", "", ""))


def fetch_collection(
    url: str, *, user: str | None = None, password: str | None = None, spool: Path
) -> Path:
    """Fetch every object of the collection at ``url`` into ``spool``/bundle.json."""
    from taxii2client.exceptions import TAXIIServiceException
    from taxii2client.v21 import Collection, as_pages

    objects: list[Any] = []
    try:
        collection = Collection(url, user=user, password=password)
        for envelope in as_pages(collection.get_objects, per_request=PAGE_SIZE):
            objects += envelope.get("objects", [])
            if len(objects) >= MAX_RECORDS:
                objects = objects[:MAX_RECORDS]
                break
    except (TAXIIServiceException, OSError, ValueError) as exc:
        # requests' errors (HTTP status, connection refused, timeouts) are OSErrors.
        raise InputError(f"{url}: TAXII fetch failed: {str(exc)[:500]}") from None
    target = spool / "bundle.json"
    bundle = {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}
    target.write_text(json.dumps(bundle), encoding="utf-8")
    return target


def spool_dir() -> tempfile.TemporaryDirectory[str]:
    """A temporary folder for one fetched collection."""
    return tempfile.TemporaryDirectory(prefix="orbwatch-taxii-")
