"""Signing and verifying webhooks: Standard Webhooks for our callbacks, GitHub style for triggers.

Standard library only, on purpose: a receiver of our callbacks can copy this one file into its
own code base and verify requests without installing anything.

Outbound (our callbacks), per https://www.standardwebhooks.com:

* Every request carries ``webhook-id`` (unique per message, stable across retries),
  ``webhook-timestamp`` (integer Unix seconds of this attempt) and ``webhook-signature``.
* The signature is ``v1,`` followed by base64(HMAC-SHA256(key, "{id}.{timestamp}." + body)),
  where key is the secret with its ``whsec_`` prefix removed, base64-decoded.
* ``webhook-signature`` is a space-separated list. While a secret is being rotated we sign with
  both the new and the old secret, so receivers holding either one keep verifying; a receiver
  accepts the request when any ``v1`` signature matches any secret it holds.

Receivers call :func:`verify`. It checks, in this order: the three headers are present; the
timestamp is an integer within ``tolerance_seconds`` of now, in either direction (the window
bounds how long a captured request stays usable); a ``v1`` signature matches; and, with a
:class:`ReplayGuard`, that this message id was not accepted before. The id is remembered only
after the signature verified, so forged requests cannot fill the guard's memory.

Inbound (webhooks that trigger agents): GitHub signs the raw body alone with
``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret bytes, body)>``; there is no timestamp, so
that style has no replay window to enforce. :func:`verify_inbound` picks the style a trigger is
configured with.

Errors: every verification failure raises a :class:`WebhookVerificationError` subclass whose
message says what is wrong and never contains a secret or an expected signature (it is meant to
be logged and returned to the sender). A misconfigured secret on the verifying side (invalid
base64, empty list) raises ``ValueError`` instead: that is the operator's bug, not the sender's.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import math
import re
import secrets as _secrets
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Literal

DEFAULT_TOLERANCE_SECONDS = 300

_SECRET_PREFIX = "whsec_"  # noqa: S105 -- the format's public prefix, not a secret
_SIGNATURE_VERSION = "v1"
_GITHUB_PREFIX = "sha256="
GITHUB_SIGNATURE_HEADER = "X-Hub-Signature-256"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
# Unix seconds as plain ASCII digits. int() alone would also take " 12", "+12", "1_2" and
# non-ASCII digits, which no sender produces and which only widen what a forger can try.
_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")


class WebhookVerificationError(Exception):
    """A request failed verification; the message is safe to log and to return to the sender."""


class MissingHeaderError(WebhookVerificationError):
    """A header the scheme requires is absent or empty."""


class InvalidSignatureError(WebhookVerificationError):
    """No signature in the request matches any configured secret (or the header is malformed)."""


class TimestampToleranceError(WebhookVerificationError):
    """``webhook-timestamp`` is malformed or too far from the verifier's clock."""


class ReplayedMessageError(WebhookVerificationError):
    """A message id that was already accepted came again within the replay window."""


def standard_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: base64-decoded after removing ``whsec_``.

    The official libraries decode the same way, so a secret works identically there and here.
    A 48-character alphanumeric secret (what Secrets Manager generates without punctuation) is
    valid base64 too and decodes to 36 bytes. Raises ``ValueError`` describing the problem; the
    message never repeats the secret.
    """
    if not isinstance(secret, str):
        raise TypeError("a webhook secret must be a str")
    encoded = secret.removeprefix(_SECRET_PREFIX)
    if not encoded:
        raise ValueError("webhook secret is empty (after removing the whsec_ prefix)")
    try:
        # validate=True rejects characters outside the base64 alphabet instead of silently
        # skipping them, so a typo cannot turn into a different, shorter key.
        key = base64.b64decode(encoded, validate=True)
    except ValueError as exc:  # binascii.Error; its text names the defect, not the data
        raise ValueError(
            f"webhook secret is not valid base64 after removing the whsec_ prefix ({exc})"
        ) from None
    if not key:
        raise ValueError("webhook secret decodes to an empty key")
    return key


def generate_secret() -> str:
    """A new secret in the Standard Webhooks format: ``whsec_`` + base64 of 32 random bytes."""
    return _SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode("ascii")


def _check_secret_list(secrets: Sequence[str]) -> None:
    # A bare str is a Sequence[str] too: iterating it would sign with one "secret" per character.
    if isinstance(secrets, str):
        raise TypeError("secrets must be a list of secrets, not a single str")
    if not secrets:
        raise ValueError("at least one webhook secret is required")


def _standard_signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed_content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed_content, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def sign(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per secret, space-separated.

    Pass two secrets (new first, then old) during a rotation so receivers holding either verify.
    """
    _check_secret_list(secrets)
    if not msg_id:
        raise ValueError("msg_id must not be empty")
    return " ".join(
        f"{_SIGNATURE_VERSION},{_standard_signature(standard_key(s), msg_id, timestamp, body)}"
        for s in secrets
    )


def signed_headers(
    msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]
) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(msg_id, timestamp, body, secrets),
    }


class ReplayGuard:
    """Message ids accepted recently, so the same signed request is accepted only once.

    In memory and per process: it protects one receiver instance. (Behind a load balancer with
    several instances, put the ids in a shared store with a TTL instead; the contract is the
    same.) The default TTL is twice the timestamp tolerance: a request is accepted while its
    timestamp is within +-tolerance of now, a span of 2 x tolerance, so an id must be remembered
    at least that long after its first acceptance to catch every replay the timestamp check lets
    through. Expired ids are pruned on every call, which bounds memory by the accepted request
    rate times the TTL. Thread-safe, because HTTP servers verify on several threads.
    """

    def __init__(self, ttl_seconds: float = 2 * DEFAULT_TOLERANCE_SECONDS) -> None:
        if not (ttl_seconds > 0 and math.isfinite(ttl_seconds)):
            raise ValueError("ttl_seconds must be a positive number")
        self.ttl_seconds = ttl_seconds
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}
        # (expiry, id) ordered by expiry, so pruning touches only what has expired. An id
        # remembered again after expiring leaves a stale entry, recognised by its expiry.
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)

    def _prune(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            expiry, msg_id = heapq.heappop(self._heap)
            if self._expiry.get(msg_id) == expiry:
                del self._expiry[msg_id]

    def check_and_remember(self, msg_id: str, now: float) -> None:
        """Remember ``msg_id`` until ``now + ttl``; raise :class:`ReplayedMessageError` if known.

        Check and insert happen under one lock, so two concurrent deliveries of the same id
        cannot both pass.
        """
        with self._lock:
            self._prune(now)
            if msg_id in self._expiry:
                raise ReplayedMessageError(
                    f"webhook-id {msg_id[:100]} was already accepted within the last "
                    f"{self.ttl_seconds:g} s; a replayed request is rejected"
                )
            expiry = now + self.ttl_seconds
            self._expiry[msg_id] = expiry
            heapq.heappush(self._heap, (expiry, msg_id))


def _lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    # HTTP header names are case-insensitive; frameworks hand them over in any case.
    return {name.lower(): value for name, value in headers.items()}


def _required(headers: dict[str, str], name: str) -> str:
    value = headers.get(name.lower(), "").strip()
    if not value:
        raise MissingHeaderError(f"the {name} header is missing or empty")
    return value


def _ascii_bytes(value: str) -> bytes:
    # compare_digest on str requires ASCII; a header may carry anything. Replacing non-ASCII
    # keeps the comparison constant-time and can only produce a mismatch.
    return value.encode("ascii", errors="replace")


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    *,
    now: float | None = None,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    replay_guard: ReplayGuard | None = None,
    signature_header: str = STANDARD_SIGNATURE_HEADER,
) -> str:
    """Verify a Standard Webhooks request and return its message id.

    ``body`` must be the raw bytes received (not re-serialized JSON). ``now`` defaults to
    ``time.time()``; pass a fixed value to re-check a captured request. Raises a
    :class:`WebhookVerificationError` subclass when the request must be rejected, ``ValueError``
    when the configured secrets are unusable.
    """
    _check_secret_list(secrets)
    keys = [standard_key(s) for s in secrets]
    if tolerance_seconds < 0:
        raise ValueError("tolerance_seconds must not be negative")
    lowered = _lower_keys(headers)
    msg_id = _required(lowered, "webhook-id")
    raw_timestamp = _required(lowered, "webhook-timestamp")
    signature_value = _required(lowered, signature_header)

    if not _TIMESTAMP_RE.fullmatch(raw_timestamp):
        raise TimestampToleranceError("webhook-timestamp is not an integer number of seconds")
    timestamp = int(raw_timestamp)
    current = time.time() if now is None else now
    skew = current - timestamp
    if abs(skew) > tolerance_seconds:
        direction = "in the past" if skew > 0 else "in the future"
        raise TimestampToleranceError(
            f"webhook-timestamp is {math.ceil(abs(skew))} s {direction}; "
            f"the tolerance is {tolerance_seconds} s"
        )

    expected = [_ascii_bytes(_standard_signature(k, msg_id, timestamp, body)) for k in keys]
    offered = [
        candidate
        for version, sep, candidate in (token.partition(",") for token in signature_value.split())
        # Other versions (v1a is the asymmetric scheme) are skipped, not errors: a sender may
        # add them next to v1 and receivers must keep working.
        if sep and version == _SIGNATURE_VERSION
    ]
    if not offered:
        raise InvalidSignatureError(f"{signature_header} contains no v1 signature")
    matched = False
    for candidate in offered:
        candidate_bytes = _ascii_bytes(candidate)
        for want in expected:
            # No early exit: the time taken does not depend on which pair matched.
            matched |= hmac.compare_digest(candidate_bytes, want)
    if not matched:
        raise InvalidSignatureError(
            f"no v1 signature in {signature_header} matches any of the {len(keys)} configured "
            "secret(s); the body, webhook-id or webhook-timestamp was altered, or the secret "
            "differs"
        )

    if replay_guard is not None:
        replay_guard.check_and_remember(msg_id, current)
    return msg_id


def github_signature(body: bytes, secret: str) -> str:
    """GitHub's ``X-Hub-Signature-256`` value: ``sha256=`` + hex HMAC-SHA256 of the raw body.

    GitHub uses the secret's UTF-8 bytes as the key (no base64 step, unlike Standard Webhooks).
    """
    if not secret:
        raise ValueError("a GitHub webhook secret must not be empty")
    return _GITHUB_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_github(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    *,
    header: str = GITHUB_SIGNATURE_HEADER,
) -> None:
    """Verify a GitHub-style signature; any of ``secrets`` may match (rotation overlap).

    The scheme signs the body only: there is no timestamp or id to bound replays, which is the
    sender's design, not something a receiver can add.
    """
    _check_secret_list(secrets)
    expected = [_ascii_bytes(github_signature(body, s)) for s in secrets]
    value = _required(_lower_keys(headers), header)
    if not value.startswith(_GITHUB_PREFIX):
        raise InvalidSignatureError(f"{header} must start with {_GITHUB_PREFIX}")
    candidate = _ascii_bytes(value)
    matched = False
    for want in expected:
        matched |= hmac.compare_digest(candidate, want)
    if not matched:
        raise InvalidSignatureError(
            f"{header} does not match any of the {len(secrets)} configured secret(s); the body "
            "was altered or the secret differs"
        )


def verify_inbound(
    style: Literal["github", "standard"],
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    *,
    header: str | None,
    now: float | None = None,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    replay_guard: ReplayGuard | None = None,
) -> None:
    """Verify an inbound trigger in the style it is configured with.

    ``header`` names the signature header; ``None`` means the style's default
    (``X-Hub-Signature-256`` or ``webhook-signature``). ``now``, ``tolerance_seconds`` and
    ``replay_guard`` apply to the standard style only, since GitHub's scheme has no timestamp.
    """
    if style == "github":
        verify_github(headers, body, secrets, header=header or GITHUB_SIGNATURE_HEADER)
    elif style == "standard":
        verify(
            headers,
            body,
            secrets,
            now=now,
            tolerance_seconds=tolerance_seconds,
            replay_guard=replay_guard,
            signature_header=header or STANDARD_SIGNATURE_HEADER,
        )
    else:
        raise ValueError(f"unknown webhook signature style {style!r}; use 'github' or 'standard'")
