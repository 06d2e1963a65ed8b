"""The SSRF guard: which callback URLs may be called, with an injected resolver (no DNS)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from runtime.webhooks.ssrf import (
    MAX_URL_LENGTH,
    CheckedUrl,
    Resolver,
    UnsafeUrlError,
    check_url,
    system_resolver,
)

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"


def resolver(table: Mapping[str, Sequence[str]]) -> Resolver:
    """A resolver answering from ``table``; unknown names fail the way DNS failures do."""

    def resolve(host: str) -> Sequence[str]:
        if host not in table:
            raise UnsafeUrlError(f"callback_url host {host} does not resolve")
        return table[host]

    return resolve


def no_dns(host: str) -> Sequence[str]:
    raise AssertionError(f"IP literals must not be resolved, got {host}")


def rejected(url: str, *, loopback: bool = False, resolve: Resolver = no_dns) -> str:
    with pytest.raises(UnsafeUrlError) as caught:
        check_url(url, allow_http_loopback=loopback, resolve=resolve)
    return str(caught.value)


def test_public_https_url_is_accepted() -> None:
    checked = check_url(
        "https://Example.com/hook?x=1",
        allow_http_loopback=False,
        resolve=resolver({"example.com": [PUBLIC_V4, PUBLIC_V6, PUBLIC_V4]}),
    )
    assert checked == CheckedUrl(
        url="https://Example.com/hook?x=1",
        scheme="https",
        host="example.com",
        port=443,
        addresses=(PUBLIC_V4, PUBLIC_V6),
    )


def test_ports_are_allowed() -> None:
    checked = check_url(
        "https://example.com:8443/hook",
        allow_http_loopback=False,
        resolve=resolver({"example.com": [PUBLIC_V4]}),
    )
    assert checked.port == 8443


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("10.0.0.5", "a private address"),
        ("10.255.255.255", "a private address"),
        ("172.16.0.1", "a private address"),
        ("172.31.255.254", "a private address"),
        ("192.168.1.1", "a private address"),
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("[::1]", "a loopback address"),
        ("169.254.169.254", "the instance metadata address"),
        ("[fd00:ec2::254]", "the instance metadata address"),
        ("169.254.10.1", "a link-local address"),
        ("[fe80::1]", "a link-local address"),
        ("[fd12:3456::1]", "a private address"),
        ("100.64.0.1", "a shared (carrier-grade NAT) address"),
        ("0.0.0.0", "the unspecified address"),  # noqa: S104 -- a URL under test, not a bind
        ("[::]", "the unspecified address"),
        ("224.0.1.1", "a multicast address"),
        ("[ff02::1]", "a multicast address"),
        ("240.0.0.1", "a private address"),
        ("[fec0::1]", "a site-local address"),
        ("[::ffff:169.254.169.254]", "an IPv4-mapped form of 169.254.169.254, the instance"),
        ("[::ffff:127.0.0.1]", "an IPv4-mapped form of 127.0.0.1, a loopback address"),
        ("[::ffff:10.0.0.1]", "an IPv4-mapped form of 10.0.0.1, a private address"),
        ("[64:ff9b::a9fe:a9fe]", "a NAT64 form of 169.254.169.254"),
        ("[64:ff9b::10.1.2.3]", "a NAT64 form of 10.1.2.3, a private address"),
        ("[64:ff9b:1::5db8:d70e]", "a local-use NAT64 address"),
        ("[2002:a9fe:a9fe::1]", "a 6to4 form of 169.254.169.254"),
        ("[::7f00:1]", "a reserved address"),
        ("[2001:db8::1]", "a private address"),
    ],
)
def test_non_public_ip_literals_are_rejected(host: str, reason: str) -> None:
    message = rejected(f"https://{host}/hook")
    assert message.startswith(f"callback_url host {host.strip('[]')} is {reason}")
    assert message.endswith("; callbacks go to public addresses only")


@pytest.mark.parametrize(
    "host", [f"[::ffff:{PUBLIC_V4}]", "[64:ff9b::5db8:d70e]", "[2002:5db8:d70e::1]", PUBLIC_V4]
)
def test_ipv6_forms_of_a_public_ipv4_address_are_accepted(host: str) -> None:
    """NAT64 matters in practice: DNS64 in an IPv6-only subnet answers with 64:ff9b::/96."""
    check_url(f"https://{host}/hook", allow_http_loopback=False, resolve=no_dns)


def test_loopback_is_rejected_without_the_flag_and_allowed_with_it() -> None:
    assert rejected("http://127.0.0.1:8080/x") == "callback_url must use https"
    assert "a loopback address" in rejected("https://127.0.0.1:8080/x")
    checked = check_url("http://127.0.0.1:8080/x", allow_http_loopback=True, resolve=no_dns)
    assert (checked.scheme, checked.host, checked.port) == ("http", "127.0.0.1", 8080)
    assert check_url("https://[::1]/x", allow_http_loopback=True, resolve=no_dns).port == 443


def test_the_flag_does_not_open_private_or_metadata_addresses() -> None:
    assert "a private address" in rejected("http://10.0.0.5/x", loopback=True)
    assert "instance metadata" in rejected("http://169.254.169.254/latest/", loopback=True)
    assert "IPv4-mapped form of 127.0.0.1" in rejected("http://[::ffff:127.0.0.1]/", loopback=True)


def test_plain_http_to_a_public_host_is_rejected_even_with_the_flag() -> None:
    resolve = resolver({"example.com": [PUBLIC_V4]})
    assert rejected("http://example.com", resolve=resolve) == "callback_url must use https"
    assert rejected("http://example.com", loopback=True, resolve=resolve) == (
        "callback_url must use https (plain http is allowed for loopback addresses only)"
    )


def test_plain_http_needs_every_address_to_be_loopback() -> None:
    resolve = resolver({"dev.test": ["127.0.0.1", PUBLIC_V4]})
    assert "loopback addresses only" in rejected("http://dev.test/", loopback=True, resolve=resolve)
    # Over https the same mix is fine with the flag: each address is public or allowed loopback.
    check_url("https://dev.test/", allow_http_loopback=True, resolve=resolve)


@pytest.mark.parametrize(
    ("addresses", "bad"),
    [
        (["10.0.0.5"], "10.0.0.5, a private address"),
        (["169.254.169.254"], "169.254.169.254, the instance metadata address"),
        (["fd00:ec2::254"], "fd00:ec2::254, the instance metadata address"),
        (["127.0.0.1"], "127.0.0.1, a loopback address"),
        ([PUBLIC_V4, "192.168.0.10"], "192.168.0.10, a private address"),
        (
            [PUBLIC_V6, "::ffff:a9fe:a9fe"],
            "::ffff:a9fe:a9fe, an IPv4-mapped form of 169.254.169.254",
        ),
    ],
)
def test_names_resolving_to_any_non_public_address_are_rejected(
    addresses: list[str], bad: str
) -> None:
    message = rejected(
        "https://metadata.internal/hook", resolve=resolver({"metadata.internal": addresses})
    )
    assert message.startswith(f"callback_url host metadata.internal resolves to {bad}")
    assert message.endswith("callbacks go to public addresses only")


def test_example_message_from_the_contract() -> None:
    assert rejected(
        "https://metadata.internal/", resolve=resolver({"metadata.internal": ["10.0.0.5"]})
    ) == (
        "callback_url host metadata.internal resolves to 10.0.0.5, a private address; "
        "callbacks go to public addresses only"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/x", "callback_url must use https"),
        ("example.com/hook", "callback_url must use https"),
        ("https://user:pass@example.com/", "must not contain credentials"),
        ("https://user@example.com/", "must not contain credentials"),
        ("https://example.com@10.0.0.1/", "must not contain credentials"),
        ("https:///path", "must include a host name"),
        ("https://", "must include a host name"),
        ("https://example.com:0/", "port must be between 1 and 65535"),
        ("https://example.com:99999/", "not a valid URL"),
        ("https://example.com:abc/", "not a valid URL"),
        ("https://exa mple.com/", "whitespace, control characters or backslashes"),
        ("https://example.com\\@10.0.0.1/", "whitespace, control characters or backslashes"),
        ("https://exam\tple.com/", "whitespace, control characters or backslashes"),
        ("https://bücher.example/", "xn-- (punycode) form"),
        ("https://[fe80::1x]/", "not a valid URL"),
    ],
)
def test_malformed_or_disguised_urls_are_rejected(url: str, message: str) -> None:
    assert message in rejected(url, resolve=resolver({"example.com": [PUBLIC_V4]}))


def test_overlong_url_is_rejected() -> None:
    resolve = resolver({"example.com": [PUBLIC_V4]})
    base = "https://example.com/"
    check_url(base + "a" * (MAX_URL_LENGTH - len(base)), allow_http_loopback=False, resolve=resolve)
    message = rejected(base + "a" * (MAX_URL_LENGTH - len(base) + 1), resolve=resolve)
    assert message == f"callback_url is longer than {MAX_URL_LENGTH} characters"


def test_non_resolving_name_is_rejected() -> None:
    assert rejected("https://nowhere.invalid/", resolve=resolver({})) == (
        "callback_url host nowhere.invalid does not resolve"
    )
    assert "does not resolve" in rejected(
        "https://empty.test/", resolve=resolver({"empty.test": []})
    )


def test_resolver_answers_that_are_not_addresses_are_rejected() -> None:
    message = rejected("https://odd.test/", resolve=resolver({"odd.test": ["not-an-ip"]}))
    assert "resolved to 'not-an-ip', which is not an IP address" in message


def test_numeric_tricks_go_through_the_resolver() -> None:
    """ipaddress does not parse 2130706433 or 0x7f.1; the system resolver maps them to 127.0.0.1."""
    asked: list[str] = []

    def recording(host: str) -> Sequence[str]:
        asked.append(host)
        return ["127.0.0.1"]

    assert "127.0.0.1, a loopback address" in rejected("https://2130706433/", resolve=recording)
    assert "127.0.0.1, a loopback address" in rejected("https://0x7f.1/", resolve=recording)
    assert asked == ["2130706433", "0x7f.1"]


def test_system_resolver_on_real_names() -> None:
    addresses = system_resolver("localhost")
    assert addresses
    assert set(addresses) <= {"127.0.0.1", "::1"}
    assert len(addresses) == len(set(addresses))
    assert "a loopback address" in rejected("https://localhost/", resolve=system_resolver)
    checked = check_url("http://localhost:8080/x", allow_http_loopback=True)
    assert checked.addresses == tuple(addresses)
    # The classic decimal form of 127.0.0.1, resolved by the C library, not by ipaddress.
    assert "127.0.0.1, a loopback address" in rejected(
        "https://2130706433/", resolve=system_resolver
    )
    with pytest.raises(UnsafeUrlError, match="does not resolve"):
        system_resolver("nothing.invalid")
