"""Checking an AWS Signature Version 4 against configured key pairs (RS_AWS_ACCESS_KEYS).

Every AWS SDK signs each request with its secret key; boto3 only sends Bedrock API keys (Bearer) to
https:// endpoints. So on plain HTTP the way to know a Bedrock client holds a key is to recompute its
signature: botocore's `SigV4Auth` builds the canonical request and the signature from what arrived
(method, path as sent, query, the headers the client says it signed, the body) and the configured
secret for the access key id in the `Credential=`. The signature date must be within 15 minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

SKEW = timedelta(minutes=15)  # AWS's own allowance for clock differences
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request,\s*"
    r"SignedHeaders=([a-z0-9;:\-_.]+),\s*Signature=([0-9a-f]{64})\s*$"
)


class SigV4Keys:
    """access key id -> secret key, parsed from 'AKID:SECRET,AKID2:SECRET2'."""

    def __init__(self, pairs: dict[str, str]) -> None:
        self.pairs = pairs

    @classmethod
    def parse(cls, value: str) -> SigV4Keys:
        pairs = {}
        for item in filter(None, (v.strip() for v in value.split(","))):
            akid, sep, secret = item.partition(":")
            if not sep or not akid or not secret:
                raise ValueError("RS_AWS_ACCESS_KEYS must be 'ACCESS_KEY_ID:SECRET_KEY' pairs separated by commas.")
            pairs[akid] = secret
        return cls(pairs)

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def verify(self, scope: dict, headers: dict[str, str], body: bytes, now: datetime | None = None) -> str | None:
        """None if the request's signature is valid for one of our key pairs, else why not (safe to show)."""
        found = _AUTH.match(headers.get("authorization", ""))
        if found is None:
            return "The AWS signature is malformed."
        akid, day, region, service, signed, signature = found.groups()
        secret = self.pairs.get(akid)
        stamp = headers.get("x-amz-date", "")
        if secret is None:
            return "The AWS access key id is not one this server accepts (RS_AWS_ACCESS_KEYS)."
        try:
            when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return "The AWS signature has no valid X-Amz-Date."
        if not stamp.startswith(day) or abs((now or datetime.now(UTC)) - when) > SKEW:
            return "The AWS signature's date is more than 15 minutes off; check the client's clock."
        expected = [
            expected_signature(
                scope, headers, body, signed.split(";"), Credentials(akid, secret), region, service, stamp, payload
            )
            for payload in payload_hashes(headers, body)
        ]
        # One comparison per candidate, each in constant time.
        if any([hmac.compare_digest(e, signature) for e in expected]):
            return None
        return "The AWS signature does not match: check the secret key configured in the client."


def payload_hashes(headers: dict[str, str], body: bytes) -> list[str]:
    """What the client may have put in the canonical request for the body: its sha256 (always on http),
    or the marker for an unsigned payload (allowed on https), or a hash it sent in a header."""
    candidates = [hashlib.sha256(body).hexdigest(), "UNSIGNED-PAYLOAD"]
    if "x-amz-content-sha256" in headers:
        candidates.insert(0, headers["x-amz-content-sha256"])
    return candidates


def expected_signature(
    scope: dict,
    headers: dict[str, str],
    body: bytes,
    signed: list[str],
    creds: Credentials,
    region: str,
    service: str,
    stamp: str,
    payload: str,
) -> str:
    auth = SigV4Auth(creds, service, region)
    raw_path = scope.get("raw_path") or scope.get("path", "/").encode()
    query = scope.get("query_string", b"").decode("latin-1")
    url = f"http://signed{raw_path.decode('latin-1')}" + (f"?{query}" if query else "")
    request = AWSRequest(method=scope.get("method", "GET"), url=url, data=body)
    request.context["timestamp"] = stamp
    to_sign = HTTPHeaders()
    for name in signed:
        # Over HTTP/2 the AWS SDK for JavaScript signs the `:authority` pseudo-header; ASGI calls it `host`.
        to_sign[name] = headers.get("host" if name == ":authority" else name, "")
    canonical = "\n".join(
        [
            request.method.upper(),
            auth._normalize_url_path(raw_path.decode("latin-1").split("?")[0]),
            auth.canonical_query_string(request),
            auth.canonical_headers(to_sign) + "\n",
            auth.signed_headers(to_sign),
            payload,
        ]
    )
    return auth.signature(auth.string_to_sign(request, canonical), request)
