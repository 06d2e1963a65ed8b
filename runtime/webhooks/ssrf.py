"""The SSRF guard for callback URLs: only public HTTPS endpoints receive our callbacks.

A callback URL is chosen by the caller, and the worker that POSTs to it runs inside our
network, next to the instance metadata service, VPC endpoints and private services. Without
this guard, anyone who may submit a task could make the worker send requests to those.

:func:`check_url` accepts a URL only when:

* it is at most 2048 characters, with no whitespace, control characters or backslashes (those
  are where URL parsers disagree, and the HTTP client must connect to exactly the host checked);
* the scheme is ``https``; plain ``http`` only with ``allow_http_loopback`` and only when every
  address of the host is loopback (local development and tests);
* it has a host, in ASCII (IDNs in their ``xn--`` form), and no userinfo (``user:pass@``);
* every address the host resolves to is public: not private, loopback (unless
  ``allow_http_loopback``), link-local (which includes the metadata address 169.254.169.254),
  unspecified, multicast, reserved, shared (100.64.0.0/10), unique-local (fc00::/7, which
  includes the EC2 IPv6 metadata address fd00:ec2::254) or site-local. IPv6 forms that embed an
  IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) are
  judged by the IPv4 address inside, so ``[::ffff:169.254.169.254]`` is refused while a NAT64
  address of a public host (what DNS64 returns in an IPv6-only subnet) is fine.

"Every address" matters: a name with one public and one private address is refused, because
the client may connect to either. IP literals are checked without resolving; anything else,
including numeric tricks such as ``2130706433`` or ``0x7f.1`` that ``ipaddress`` does not parse
but the system resolver turns into 127.0.0.1, goes through the resolver and its results are
checked. Any port is allowed: the address, not the port, decides what is reachable.

The check resolves names itself, and the HTTP client resolves again when it connects; see
:mod:`runtime.webhooks.delivery` for that window and why delivery re-checks every attempt.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

Resolver = Callable[[str], Sequence[str]]
"""Host name -> IP address strings (IPv4 or IPv6). Injected in tests; DNS in production."""

MAX_URL_LENGTH = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_DEFAULT_PORTS = {"https": 443, "http": 80}
# Letters, digits, hyphens, dots and underscores (seen in some real DNS names). Anything else in
# a registered name is either an IDN in Unicode form or a parser trick.
_HOSTNAME_RE = re.compile(r"[a-z0-9_.-]+")
_UNSAFE_CHAR_RE = re.compile(r"[\x00-\x20\x7f\\]")

_SHARED_V4 = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
# RFC 8215 local-use NAT64: the translator is inside someone's network, so the IPv4 address in
# it says nothing about where the packet ends up.
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
_METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


class UnsafeUrlError(ValueError):
    """The callback URL may not be called; the message says why and what is accepted."""


@dataclass(frozen=True)
class CheckedUrl:
    """A URL that passed :func:`check_url`, with what the check resolved (for logs)."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def system_resolver(host: str) -> Sequence[str]:
    """Every IPv4 and IPv6 address ``getaddrinfo`` gives for ``host``, deduplicated, in order."""
    try:
        infos = socket.getaddrinfo(host, None, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UnsafeUrlError(f"callback_url host {host} does not resolve") from None
    except UnicodeError:
        # The idna codec refuses empty or over-long labels before any lookup happens.
        raise UnsafeUrlError(f"callback_url host {host} is not a valid DNS name") from None
    addresses: dict[str, None] = {}
    for _family, _type, _proto, _canonname, sockaddr in infos:
        addresses.setdefault(str(sockaddr[0]), None)
    return list(addresses)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 form carries (and the form's name), for judging the real target."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, "an IPv4-mapped form of"
    if address in _NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "a NAT64 form of"
    if address.sixtofour is not None:
        return address.sixtofour, "a 6to4 form of"
    return None


def _non_public_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination, or None when it is one.

    Loopback comes first so the caller can tell it apart (it is allowed in development).
    ``is_global`` alone is not enough: Python counts multicast, site-local and some reserved
    ranges as global, and judges embedded IPv4 forms by their IPv6 prefix only.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL_USE:
            return "a local-use NAT64 address"
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner, form = embedded
            inner_reason = _non_public_reason(inner)
            if inner_reason is not None:
                return f"{form} {inner}, {inner_reason}"
            if address.ipv4_mapped is not None or address in _NAT64_WELL_KNOWN:
                # The packet goes to the public IPv4 address; the IPv6 prefix is just transport
                # (::ffff:0:0/96 and 64:ff9b::/96 count as reserved/non-global in ipaddress).
                return None
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address in _METADATA_ADDRESSES:
        return "the instance metadata address"
    if address.is_link_local:
        return "a link-local address"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED_V4:
        return "a shared (carrier-grade NAT) address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "a non-public address"
    return None


def _parse_address(host: str, value: str) -> IPAddress:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise UnsafeUrlError(
            f"callback_url host {host} resolved to {value!r}, which is not an IP address"
        ) from None


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def check_url(
    url: str, *, allow_http_loopback: bool, resolve: Resolver = system_resolver
) -> CheckedUrl:
    """Accept ``url`` as a callback target or raise :class:`UnsafeUrlError` saying why."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrlError(f"callback_url is longer than {MAX_URL_LENGTH} characters")
    if _UNSAFE_CHAR_RE.search(url):
        raise UnsafeUrlError(
            "callback_url must not contain whitespace, control characters or backslashes; "
            "percent-encode them"
        )
    try:
        parts = urlsplit(url)
        port_value = parts.port
    except ValueError:
        raise UnsafeUrlError("callback_url is not a valid URL (check the host and port)") from None

    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise UnsafeUrlError("callback_url must use https")
    if scheme == "http" and not allow_http_loopback:
        raise UnsafeUrlError("callback_url must use https")
    if "@" in parts.netloc:
        raise UnsafeUrlError(
            "callback_url must not contain credentials (user:password@); "
            "authenticate with the webhook signature instead"
        )
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeUrlError("callback_url must include a host name")
    if port_value == 0:
        raise UnsafeUrlError("callback_url port must be between 1 and 65535")
    port = _DEFAULT_PORTS[scheme] if port_value is None else port_value

    literal = _literal_address(host)
    if literal is None:
        if ":" in host:
            raise UnsafeUrlError(f"callback_url host [{host}] is not a valid IPv6 address")
        if not _HOSTNAME_RE.fullmatch(host):
            raise UnsafeUrlError(
                "callback_url host must be an ASCII DNS name or IP address; write "
                "internationalized names in their xn-- (punycode) form"
            )
        resolved = [_parse_address(host, value) for value in resolve(host)]
        if not resolved:
            raise UnsafeUrlError(f"callback_url host {host} does not resolve")
    else:
        resolved = [literal]

    addresses = tuple(dict.fromkeys(str(a) for a in resolved))
    all_loopback = True
    for address in resolved:
        reason = _non_public_reason(address)
        is_plain_loopback = address.is_loopback and reason == "a loopback address"
        all_loopback = all_loopback and is_plain_loopback
        if reason is None or (is_plain_loopback and allow_http_loopback):
            continue
        subject = (
            f"callback_url host {host} is {reason}"
            if literal is not None
            else f"callback_url host {host} resolves to {address}, {reason}"
        )
        raise UnsafeUrlError(f"{subject}; callbacks go to public addresses only")
    if scheme == "http" and not all_loopback:
        raise UnsafeUrlError(
            "callback_url must use https (plain http is allowed for loopback addresses only)"
        )
    return CheckedUrl(url=url, scheme=scheme, host=host, port=port, addresses=addresses)
