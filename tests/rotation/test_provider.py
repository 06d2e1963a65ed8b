"""The provider client only sends keys over https (or to a loopback test server when allowed)."""

from __future__ import annotations

import pytest

from runtime.rotation.provider import check_base_url


@pytest.mark.parametrize(
    "url",
    ["https://api.openai.com/v1", "https://api.openai.com/v1/", "https://llm.internal:8443/v1"],
)
def test_https_is_accepted(url: str) -> None:
    assert check_base_url(url) == url.rstrip("/")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/v1", "http://localhost/v1", "http://[::1]/v1"]
)
def test_loopback_http_only_when_allowed(url: str) -> None:
    assert check_base_url(url, allow_loopback_http=True) == url
    with pytest.raises(ValueError, match="must use https"):
        check_base_url(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://api.openai.com/v1", "must use https"),
        ("http://10.0.0.5/v1", "must use https"),
        ("ftp://127.0.0.1/v1", "must use https"),
        ("https://user:pw@api.openai.com/v1", "must not carry credentials"),
        ("https:///v1", "has no host"),
    ],
)
def test_unsafe_urls_are_refused_even_in_tests(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_base_url(url, allow_loopback_http=True)
