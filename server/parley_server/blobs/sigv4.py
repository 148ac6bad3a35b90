"""AWS Signature V4 query presigning that can bind headers (the ``minio`` SDK signs only host).

A presigned PUT that signs ``x-amz-content-sha256`` (as a header, as the payload hash and in
the query) makes the object store itself compare the body with that SHA-256 and refuse any
other bytes (Ceph RGW and MinIO do; checked by tests/contract/test_blobstore.py against RGW).
Pure functions of their arguments: time is passed in.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


def _uri_encode(value: str, *, keep_slash: bool = False) -> str:
    """AWS URI encoding: everything but unreserved characters (and '/' in object keys)."""
    return quote(value, safe="/~" if keep_slash else "~")


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def presign(
    *,
    method: str,
    endpoint: str,
    bucket: str,
    key: str,
    region: str,
    access_key: str,
    secret_key: str,
    expires_s: int,
    now_s: int,
    content_sha256: str | None = None,
) -> tuple[str, dict[str, str]]:
    """A path-style presigned URL and the headers the client must send with it.

    With ``content_sha256`` (lowercase hex), the hash is signed as the ``x-amz-content-sha256``
    header, as the payload hash and as the ``X-Amz-Content-Sha256`` query parameter.
    """
    parts = urlsplit(endpoint)
    host = parts.netloc
    stamp = datetime.fromtimestamp(now_s, UTC)
    amz_date = stamp.strftime("%Y%m%dT%H%M%SZ")
    day = stamp.strftime("%Y%m%d")
    scope = f"{day}/{region}/s3/aws4_request"
    path = "/" + _uri_encode(bucket) + "/" + _uri_encode(key, keep_slash=True)
    headers = {"host": host}
    if content_sha256 is not None:
        headers["x-amz-content-sha256"] = content_sha256
    signed_headers = ";".join(sorted(headers))
    query = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{access_key}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires_s),
        "X-Amz-SignedHeaders": signed_headers,
    }
    if content_sha256 is not None:
        query["X-Amz-Content-Sha256"] = content_sha256
    canonical_query = "&".join(
        f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in sorted(query.items())
    )
    canonical_headers = "".join(f"{k}:{headers[k].strip()}\n" for k in sorted(headers))
    canonical_request = "\n".join(
        [
            method,
            path,
            canonical_query,
            canonical_headers,
            signed_headers,
            content_sha256 or UNSIGNED_PAYLOAD,
        ]
    )
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    k = _hmac(("AWS4" + secret_key).encode(), day)
    k = _hmac(k, region)
    k = _hmac(k, "s3")
    k = _hmac(k, "aws4_request")
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    url = f"{parts.scheme}://{host}{path}?{canonical_query}&X-Amz-Signature={signature}"
    client_headers = {k: v for k, v in headers.items() if k != "host"}
    return url, client_headers
