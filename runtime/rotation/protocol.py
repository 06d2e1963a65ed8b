"""The Secrets Manager rotation protocol for the LLM API key, as plain functions.

Secrets Manager calls the rotation function four times per rotation, each with the secret, the
new version's ``ClientRequestToken`` and a ``Step``:

1. ``createSecret`` -- ask the issuer for a new key and store it as the ``AWSPENDING`` version
   with the token as its version id. Idempotent: if that version already has a value, nothing
   is issued again.
2. ``setSecret`` -- for a database this changes the password in the database. An API key is
   already live at the provider once issued (creation *is* setting), so this step only checks
   that the pending version exists.
3. ``testSecret`` -- call the provider with the pending key (``GET {base_url}/models``); a non-2xx
   answer fails the rotation, and ``AWSCURRENT`` stays where it was.
4. ``finishSecret`` -- first revoke the key that is about to fall out of ``AWSPREVIOUS`` (the one
   that was replaced a whole rotation period ago: nobody reads it any more), then move
   ``AWSCURRENT`` to the token; Secrets Manager moves ``AWSPREVIOUS`` to the old current version
   itself. Old and new key therefore overlap for one whole period, which covers every cache and
   every container started with the old key. Idempotent: a token that is already current ends
   the step, and revoking an account that is already gone counts as done.

Every step first checks that rotation is enabled and that the token is the ``AWSPENDING``
version (the checks of AWS's rotation templates). Key values never reach a log or an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from botocore.exceptions import ClientError

from runtime.llm.secrets import SecretUnavailableError
from runtime.rotation.issuers import (
    IssuerError,
    KeyIssuer,
    StoredKey,
    key_record,
    parse_stored_key,
)
from runtime.rotation.provider import ProviderError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

logger = logging.getLogger("runtime.rotation")

Step = Literal["createSecret", "setSecret", "testSecret", "finishSecret"]
STEPS: tuple[Step, ...] = ("createSecret", "setSecret", "testSecret", "finishSecret")
CURRENT, PENDING, PREVIOUS = "AWSCURRENT", "AWSPENDING", "AWSPREVIOUS"

KeyTester = Callable[[str], None]
"""Raises :class:`ProviderError` unless the provider accepts the key."""


class RotationError(Exception):
    """A step cannot proceed; Secrets Manager marks the rotation failed and retries later."""


@dataclass(frozen=True)
class RotationEvent:
    secret_id: str
    token: str
    step: Step

    @classmethod
    def parse(cls, event: Mapping[str, Any]) -> RotationEvent:
        secret_id, token, step = (event.get(k) for k in ("SecretId", "ClientRequestToken", "Step"))
        if not isinstance(secret_id, str) or not secret_id:
            raise RotationError("the rotation event has no SecretId")
        if not isinstance(token, str) or not token:
            raise RotationError("the rotation event has no ClientRequestToken")
        if step not in STEPS:
            raise RotationError(f"unknown rotation step {step!r}; expected one of {STEPS}")
        return cls(secret_id=secret_id, token=token, step=cast(Step, step))


class KeyRotator:
    """Runs one step of a rotation; see the module docstring for what each step does."""

    def __init__(
        self, *, secrets: SecretsManagerClient, issuer: KeyIssuer, tester: KeyTester
    ) -> None:
        self._sm = secrets
        self._issuer = issuer
        self._tester = tester

    def handle(self, event: RotationEvent) -> None:
        versions = self._versions(event)
        stages = versions[event.token]
        if CURRENT in stages:
            # A retried or late step of a rotation that already finished.
            logger.info("version %s is already AWSCURRENT; %s has nothing to do", event.token,
                        event.step)  # fmt: skip
            return
        if PENDING not in stages:
            raise RotationError(
                f"version {event.token} of {event.secret_id} is not AWSPENDING (stages: "
                f"{sorted(stages)}); only the pending version of a rotation can be rotated to"
            )
        step = {
            "createSecret": self.create_secret,
            "setSecret": self.set_secret,
            "testSecret": self.test_secret,
            "finishSecret": self.finish_secret,
        }[event.step]
        step(event.secret_id, event.token, versions)

    def _versions(self, event: RotationEvent) -> dict[str, list[str]]:
        metadata = self._sm.describe_secret(SecretId=event.secret_id)
        if not metadata.get("RotationEnabled"):
            raise RotationError(
                f"secret {event.secret_id} is not enabled for rotation; its rotation schedule "
                "must point at this function"
            )
        versions = {k: list(v) for k, v in metadata.get("VersionIdsToStages", {}).items()}
        if event.token not in versions:
            raise RotationError(
                f"secret {event.secret_id} has no version {event.token}: the token does not "
                "belong to a rotation Secrets Manager started"
            )
        return versions

    # --- the four steps ------------------------------------------------------------------------

    def create_secret(self, arn: str, token: str, versions: Mapping[str, list[str]]) -> None:
        if self._fetch(arn, version_id=token, stage=PENDING, missing_ok=True) is not None:
            logger.info("createSecret: version %s already holds a key; nothing issued", token)
            return
        current = self._read(arn, stage=CURRENT)
        try:
            issued = self._issuer.issue(token=token, current=current)
        except (IssuerError, ProviderError) as exc:
            raise RotationError(f"createSecret: {self._issuer.kind}: {exc}") from None
        self._sm.put_secret_value(
            SecretId=arn,
            ClientRequestToken=token,
            SecretString=key_record(issued, issuer=self._issuer.kind),
            VersionStages=[PENDING],
        )
        logger.info("createSecret: stored a new %s key as version %s (key id %s)",
                    self._issuer.kind, token, issued.key_id or "-")  # fmt: skip

    def set_secret(self, arn: str, token: str, versions: Mapping[str, list[str]]) -> None:
        # Nothing to set at the provider: the issuer created the key live. Checking the pending
        # value exists catches a createSecret that never completed.
        self._read(arn, version_id=token, stage=PENDING)
        logger.info("setSecret: an API key is live once issued; nothing to set")

    def test_secret(self, arn: str, token: str, versions: Mapping[str, list[str]]) -> None:
        pending = self._read(arn, version_id=token, stage=PENDING)
        try:
            self._tester(pending.api_key)
        except ProviderError as exc:
            raise RotationError(
                f"testSecret: the provider rejected the pending key of version {token}: {exc}; "
                "AWSCURRENT stays on the old key"
            ) from None
        logger.info("testSecret: the provider accepts the pending key of version %s", token)

    def finish_secret(self, arn: str, token: str, versions: Mapping[str, list[str]]) -> None:
        current_version = _holder(versions, CURRENT)
        previous_version = _holder(versions, PREVIOUS)
        if previous_version is not None and previous_version not in (token, current_version):
            self._revoke_previous(arn, previous_version, token)
        self._sm.update_secret_version_stage(
            SecretId=arn,
            VersionStage=CURRENT,
            MoveToVersionId=token,
            **({"RemoveFromVersionId": current_version} if current_version else {}),
        )
        logger.info("finishSecret: version %s is AWSCURRENT (was %s)", token, current_version)

    def _revoke_previous(self, arn: str, previous_version: str, token: str) -> None:
        previous = self._fetch(arn, version_id=previous_version, stage=None, missing_ok=True)
        if previous is None:
            return
        pending = self._read(arn, version_id=token, stage=PENDING)
        if previous.api_key == pending.api_key or (
            previous.key_id is not None and previous.key_id == pending.key_id
        ):
            # The same key again (a staged key put back): revoking it would revoke the new key.
            return
        try:
            revoked = self._issuer.revoke(previous)
        except ProviderError as exc:
            raise RotationError(
                f"finishSecret: could not revoke the key leaving AWSPREVIOUS (version "
                f"{previous_version}, key id {previous.key_id}): {exc}; AWSCURRENT was not moved"
            ) from None
        if not revoked:
            logger.warning(
                "finishSecret: the key leaving AWSPREVIOUS (version %s, issuer %s) was not issued "
                "by this rotation's %s issuer; revoke it at the provider by hand",
                previous_version, previous.issuer or "none", self._issuer.kind,
            )  # fmt: skip

    # --- Secrets Manager reads -----------------------------------------------------------------

    def _read(
        self, arn: str, *, version_id: str | None = None, stage: str | None = None
    ) -> StoredKey:
        stored = self._fetch(arn, version_id=version_id, stage=stage, missing_ok=False)
        if stored is None:  # pragma: no cover - _fetch raises instead when missing_ok is False
            raise RotationError(f"version {version_id or stage} of {arn} has no value")
        return stored

    def _fetch(
        self, arn: str, *, version_id: str | None, stage: str | None, missing_ok: bool
    ) -> StoredKey | None:
        kwargs: dict[str, str] = {"SecretId": arn}
        if version_id is not None:
            kwargs["VersionId"] = version_id
        if stage is not None:
            kwargs["VersionStage"] = stage
        try:
            response = self._sm.get_secret_value(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if missing_ok and code == "ResourceNotFoundException":
                return None
            raise RotationError(
                f"could not read version {version_id or stage} of {arn}: {code or 'error'}"
            ) from None
        secret_string = response.get("SecretString")
        if secret_string is None:
            if missing_ok:
                return None
            raise RotationError(f"version {version_id or stage} of {arn} has no SecretString")
        try:
            return parse_stored_key(secret_string, arn)
        except SecretUnavailableError as exc:
            raise RotationError(str(exc)) from None


def _holder(versions: Mapping[str, list[str]], stage: str) -> str | None:
    return next((version for version, stages in versions.items() if stage in stages), None)
