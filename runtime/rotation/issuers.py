"""Where a new LLM API key comes from, and how an old one is revoked.

A rotation stores each key as a JSON record (:func:`key_record`), which
:class:`runtime.llm.secrets.SecretCache` reads through its ``api_key`` field::

    {"api_key": "sk-...", "issuer": "openai_admin", "key_id": "svc_acct_...", "issued_at": "..."}

``key_id`` is what the issuer needs to revoke the key later (an OpenAI project service account
id); a key put in by hand (a plain string, or JSON without ``key_id``) cannot be revoked by the
rotation and is left for the operator.

Issuers:

* :class:`OpenAIAdminIssuer` -- OpenAI's Admin API: one project service account per key. The
  response of ``POST /organization/projects/{project_id}/service_accounts`` is the only time the
  key's value is shown; ``DELETE .../service_accounts/{id}`` revokes the account and its key.
* :class:`StagedIssuer` -- for providers without an admin API: an operator creates the next key in
  the provider's console and puts it in a staging secret; the rotation takes it from there and
  fails with a clear message when nothing new is staged. Revocation stays with the operator.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from runtime.llm.secrets import SecretUnavailableError, parse_api_key
from runtime.rotation.provider import ProviderClient

logger = logging.getLogger("runtime.rotation")

IssuerKind = Literal["openai_admin", "staged"]

# OpenAI's list endpoint returns at most 100 per page; more pages than this means something else
# is wrong, and the orphan sweep must not loop for the whole function timeout.
_MAX_LIST_PAGES = 50


class IssuerError(Exception):
    """No new key could be issued or an old one revoked; the message says why and what to do."""


@dataclass(frozen=True)
class StoredKey:
    """One version of the LLM key secret, as the rotation reads it back."""

    api_key: str
    issuer: str | None = None
    key_id: str | None = None


@dataclass(frozen=True)
class IssuedKey:
    api_key: str
    key_id: str | None


def parse_stored_key(secret_string: str, secret_id: str) -> StoredKey:
    """A stored version: a plain key, or the JSON record (extra fields are ignored)."""
    api_key = parse_api_key(secret_string, secret_id)
    issuer = key_id = None
    if secret_string.strip().startswith("{"):
        # parse_api_key has already proved it is a JSON object.
        data: dict[str, Any] = json.loads(secret_string)
        issuer = data.get("issuer") if isinstance(data.get("issuer"), str) else None
        key_id = data.get("key_id") if isinstance(data.get("key_id"), str) else None
    return StoredKey(api_key=api_key, issuer=issuer, key_id=key_id)


def key_record(key: IssuedKey, *, issuer: str, now: datetime | None = None) -> str:
    """The ``SecretString`` a rotation writes for ``key``."""
    issued_at = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    record: dict[str, str] = {"api_key": key.api_key, "issuer": issuer, "issued_at": issued_at}
    if key.key_id is not None:
        record["key_id"] = key.key_id
    return json.dumps(record)


class KeyIssuer(Protocol):
    kind: str

    def issue(self, *, token: str, current: StoredKey | None) -> IssuedKey:
        """A new key that differs from ``current``; ``token`` names it (idempotency)."""
        ...

    def revoke(self, key: StoredKey) -> bool:
        """Revoke ``key`` at the provider; False when this issuer cannot (not its key)."""
        ...


class OpenAIAdminIssuer:
    """A project service account per key, through OpenAI's Admin API.

    ``admin_key`` returns the organization's admin key (read from its own secret at each call, so
    rotating the admin key by hand needs no redeploy). Accounts are named
    ``<name_prefix>-<rotation token>``: a createSecret that failed after creating its account
    (e.g. the put into Secrets Manager failed) leaves an account of that name, which the retry,
    carrying the same token, deletes before it creates the next one.
    """

    kind = "openai_admin"

    def __init__(
        self,
        *,
        admin: ProviderClient,
        project_id: str,
        admin_key: Callable[[], str],
        name_prefix: str,
    ) -> None:
        self._admin = admin
        self._project = project_id
        self._admin_key = admin_key
        self._prefix = name_prefix

    @property
    def _accounts_path(self) -> str:
        return f"/organization/projects/{self._project}/service_accounts"

    def account_name(self, token: str) -> str:
        return f"{self._prefix}-{token}"

    def issue(self, *, token: str, current: StoredKey | None) -> IssuedKey:
        admin_key = self._admin_key()
        name = self.account_name(token)
        for orphan in self._accounts_named(name, admin_key):
            logger.warning(
                "deleting service account %s left by an earlier attempt of this rotation", orphan
            )
            self._delete(orphan, admin_key)
        _, payload = self._admin.request(
            "POST", self._accounts_path, key=admin_key, json_body={"name": name}
        )
        account_id = payload.get("id") if isinstance(payload, dict) else None
        api_key = payload.get("api_key") if isinstance(payload, dict) else None
        value = api_key.get("value") if isinstance(api_key, dict) else None
        if not isinstance(account_id, str) or not isinstance(value, str) or not value:
            if isinstance(account_id, str):
                # Created without a usable key (e.g. a policy made it role "none"): do not leak it.
                self._delete(account_id, admin_key)
            raise IssuerError(
                f"OpenAI created service account {name!r} without an API key in the response "
                "(expected id and api_key.value); check that the project allows service account "
                "keys and that the admin key has the api.management.write scope"
            )
        if current is not None and value == current.api_key:  # pragma: no cover - provider bug
            raise IssuerError("OpenAI returned the current key as a new one; rotation stopped")
        logger.info("created service account %s (%s) for the new key", account_id, name)
        return IssuedKey(api_key=value, key_id=account_id)

    def revoke(self, key: StoredKey) -> bool:
        if key.issuer != self.kind or key.key_id is None:
            return False
        self._delete(key.key_id, self._admin_key())
        logger.info("revoked service account %s (its key left AWSPREVIOUS)", key.key_id)
        return True

    def _delete(self, account_id: str, admin_key: str) -> None:
        # 404: already gone (a retried finishSecret, or deleted by hand): the goal is reached.
        self._admin.request(
            "DELETE",
            f"{self._accounts_path}/{account_id}",
            key=admin_key,
            accept_statuses=frozenset({404}),
        )

    def _accounts_named(self, name: str, admin_key: str) -> list[str]:
        found: list[str] = []
        after: str | None = None
        for _ in range(_MAX_LIST_PAGES):
            params = {"limit": "100"} | ({"after": after} if after else {})
            _, page = self._admin.request("GET", self._accounts_path, key=admin_key, params=params)
            data = page.get("data") if isinstance(page, dict) else None
            if not isinstance(data, list):
                raise IssuerError("OpenAI's service account list has no data array")
            found.extend(
                item["id"]
                for item in data
                if isinstance(item, dict)
                and item.get("name") == name
                and isinstance(item.get("id"), str)
            )
            last = page.get("last_id")
            if not page.get("has_more") or not isinstance(last, str):
                return found
            after = last
        raise IssuerError(
            f"the project has more than {_MAX_LIST_PAGES * 100} service accounts; delete unused "
            "ones (OpenAI dashboard, project settings) before rotating"
        )


class StagedIssuer:
    """Takes the next key from a staging secret an operator filled.

    ``read_staged`` returns the staging secret's ``SecretString`` (None when it has no value).
    The staged key is used only when it differs from the current one, so a rotation can never
    silently "rotate" to the same key. The operator revokes the old key at the provider once the
    rotation has finished and every cache has moved on (see the README, "Key rotation").
    """

    kind = "staged"

    def __init__(self, *, read_staged: Callable[[], str | None], staging_secret_id: str) -> None:
        self._read = read_staged
        self._staging_id = staging_secret_id

    def issue(self, *, token: str, current: StoredKey | None) -> IssuedKey:
        raw = self._read()
        hint = (
            f"create the new key at the provider, then `aws secretsmanager put-secret-value "
            f'--secret-id {self._staging_id} --secret-string \'{{"api_key": "<new key>"}}\'` '
            "and rotate again"
        )
        if raw is None:
            raise IssuerError(f"no key is staged in {self._staging_id}: {hint}")
        try:
            staged = parse_stored_key(raw, self._staging_id)
        except SecretUnavailableError as exc:
            raise IssuerError(f"no usable key is staged ({exc}): {hint}") from None
        if current is not None and staged.api_key == current.api_key:
            raise IssuerError(
                f"the key staged in {self._staging_id} is already the current key, so there is "
                f"nothing new to rotate to: {hint}"
            )
        return IssuedKey(api_key=staged.api_key, key_id=staged.key_id)

    def revoke(self, key: StoredKey) -> bool:
        return False
