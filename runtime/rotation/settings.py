"""The rotation function's environment (written by constructs/key_rotation.py), checked once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runtime.settings import parse_environment

if TYPE_CHECKING:
    import httpx
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from runtime.rotation.issuers import KeyIssuer
    from runtime.rotation.protocol import KeyRotator


class RotationSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    issuer: Literal["openai_admin", "staged"] = Field(alias="ROTATION_ISSUER")
    # The provider the key is for: testSecret calls GET {base_url}{test_path} with the new key.
    llm_base_url: str = Field(min_length=8, alias="LLM_BASE_URL")
    test_path: str = Field(
        default="/models", pattern=r"^/[A-Za-z0-9/_.-]*$", alias="ROTATION_TEST_PATH"
    )
    http_timeout_seconds: float = Field(
        default=10, gt=0, le=60, alias="ROTATION_HTTP_TIMEOUT_SECONDS"
    )
    # openai_admin
    admin_base_url: str | None = Field(default=None, alias="OPENAI_ADMIN_BASE_URL")
    project_id: str | None = Field(
        default=None, pattern=r"^proj_[A-Za-z0-9]+$", alias="OPENAI_PROJECT_ID"
    )
    admin_key_secret_arn: str | None = Field(default=None, alias="OPENAI_ADMIN_KEY_SECRET_ARN")
    key_name_prefix: str = Field(
        default="agent-llm", pattern=r"^[A-Za-z0-9_-]{1,40}$", alias="ROTATION_KEY_NAME_PREFIX"
    )
    # staged
    staging_secret_arn: str | None = Field(default=None, alias="STAGING_SECRET_ARN")

    @model_validator(mode="after")
    def _issuer_fields(self) -> RotationSettings:
        if self.issuer == "openai_admin":
            missing = [
                name
                for name, value in (
                    ("OPENAI_ADMIN_BASE_URL", self.admin_base_url),
                    ("OPENAI_PROJECT_ID", self.project_id),
                    ("OPENAI_ADMIN_KEY_SECRET_ARN", self.admin_key_secret_arn),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"ROTATION_ISSUER openai_admin needs {', '.join(missing)}")
        if self.issuer == "staged" and not self.staging_secret_arn:
            raise ValueError("ROTATION_ISSUER staged needs STAGING_SECRET_ARN")
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RotationSettings:
        return parse_environment(cls, environ, "rotation")


def build_rotator(
    settings: RotationSettings,
    *,
    secrets: SecretsManagerClient,
    http: httpx.Client,
    allow_loopback_http: bool = False,
) -> KeyRotator:
    """The rotator the settings describe. ``allow_loopback_http`` is for tests only."""
    from runtime.llm.secrets import SecretCache
    from runtime.rotation.issuers import OpenAIAdminIssuer, StagedIssuer
    from runtime.rotation.protocol import KeyRotator
    from runtime.rotation.provider import ProviderClient, check_key_works

    def client(base_url: str) -> ProviderClient:
        return ProviderClient(
            base_url,
            http=http,
            timeout_seconds=settings.http_timeout_seconds,
            allow_loopback_http=allow_loopback_http,
        )

    provider = client(settings.llm_base_url)
    issuer: KeyIssuer
    if settings.issuer == "openai_admin":
        assert settings.admin_base_url and settings.project_id and settings.admin_key_secret_arn
        # TTL 0: read the admin key afresh for every rotation (rotations are rare).
        admin_key = SecretCache(settings.admin_key_secret_arn, client=secrets, ttl_seconds=0)
        issuer = OpenAIAdminIssuer(
            admin=client(settings.admin_base_url),
            project_id=settings.project_id,
            admin_key=admin_key.get,
            name_prefix=settings.key_name_prefix,
        )
    else:
        assert settings.staging_secret_arn
        staging_arn = settings.staging_secret_arn

        def read_staged() -> str | None:
            return secrets.get_secret_value(SecretId=staging_arn).get("SecretString")

        issuer = StagedIssuer(read_staged=read_staged, staging_secret_id=staging_arn)
    return KeyRotator(
        secrets=secrets,
        issuer=issuer,
        tester=lambda key: check_key_works(provider, key, path=settings.test_path),
    )
