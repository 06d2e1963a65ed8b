"""The one target a run may send traffic to, and the check every request URL goes through.

A load test pointed at the wrong place is an attack on someone else, so the rule is structural:
every URL the load users request is built from the target given on the command line (or the local
target this tool started) by :meth:`HostGuard.url`, which refuses any result whose scheme, host,
port or path prefix differ from it. Redirects are never followed (a ``Location`` could point
anywhere). Webhook callbacks are the one inbound flow: they arrive at the local receiver, which
listens on 127.0.0.1 only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_WEBSOCKET_SCHEMES = {"http": "ws", "https": "wss"}
# API Gateway's regional hosts name their region: https://<id>.execute-api.<region>.amazonaws.com
_EXECUTE_API_HOST = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$")


class OffTargetError(ValueError):
    """A URL outside the run's target: the request is not sent."""


@dataclass(frozen=True)
class Target:
    """A base URL split into what every request must share with it."""

    scheme: str
    host: str
    port: int
    base_path: str

    @property
    def origin(self) -> str:
        default = _DEFAULT_PORTS[self.scheme]
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == default else f":{self.port}"
        return f"{self.scheme}://{host}{port}"

    @property
    def base_url(self) -> str:
        return self.origin + self.base_path

    @property
    def is_loopback(self) -> bool:
        return self.host in ("127.0.0.1", "::1", "localhost")

    def aws_region(self) -> str | None:
        """The region of an API Gateway host, for SigV4 signing; ``None`` for other hosts."""
        match = _EXECUTE_API_HOST.search(self.host)
        return match.group(1) if match else None


def parse_target(url: str, *, option: str = "--host") -> Target:
    """``url`` checked as a load target; :class:`ValueError` naming ``option`` and the fix.

    Only a plain ``http(s)://host[:port][/prefix]`` is taken: credentials in the URL would end up
    in logs, and a query or fragment would silently apply to every request.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(
            f"{option} must be an http:// or https:// URL like https://agent.example.com, "
            f"got {url!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"{option} must not carry credentials (user:password@); give the token with --token "
            "or its environment variable"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{option} must not have a query or fragment; give the base URL only")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{option} has an invalid port: {url!r}") from None
    if not parts.hostname:
        raise ValueError(f"{option} names no host: {url!r}")
    return Target(
        scheme=scheme,
        host=parts.hostname.lower(),
        port=port if port is not None else _DEFAULT_PORTS[scheme],
        base_path=parts.path.rstrip("/"),
    )


class HostGuard:
    """Builds request URLs on the target and refuses any that would leave it."""

    def __init__(self, base_url: str) -> None:
        self.target = parse_target(base_url)

    def url(self, path: str) -> str:
        """``path`` (starting with ``/``) under the target's base URL, checked."""
        if not path.startswith("/"):
            raise OffTargetError(f"request paths must start with '/', got {path!r}")
        return self.check(self.target.base_url + path)

    def websocket_url(self, path: str) -> str:
        """The ``ws(s)://`` URL of ``path`` on the target (same host, port and prefix)."""
        http_url = self.url(path)
        return _WEBSOCKET_SCHEMES[self.target.scheme] + http_url[len(self.target.scheme) :]

    def check(self, url: str) -> str:
        """``url`` itself when it is on the target, else :class:`OffTargetError`."""
        try:
            candidate = parse_target(url, option="the request URL")
        except ValueError as exc:
            raise OffTargetError(str(exc)) from None
        expected = self.target
        same_origin = (candidate.scheme, candidate.host, candidate.port) == (
            expected.scheme,
            expected.host,
            expected.port,
        )
        prefix = expected.base_path
        under_prefix = candidate.base_path == prefix or candidate.base_path.startswith(prefix + "/")
        # Dot segments could climb out of the prefix once a server normalises the path.
        climbs = any(segment in (".", "..") for segment in candidate.base_path.split("/"))
        if not same_origin or not under_prefix or climbs:
            raise OffTargetError(
                f"refusing to send to {candidate.origin}{candidate.base_path}: the run's only "
                f"target is {expected.base_url}"
            )
        return url
