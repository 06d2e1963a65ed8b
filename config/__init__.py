"""Typed deployment configuration: one model, one YAML file per environment.

``load_config("prod")`` reads ``config/prod.yaml``; the CDK app (and, in a later issue, the
cdk8s app)
build everything from the returned :class:`DeploymentConfig`. Nothing else branches on an
environment's name.
"""

from config.loader import ConfigError, config_path, load_config
from config.model import DeploymentConfig

__all__ = ["ConfigError", "DeploymentConfig", "config_path", "load_config"]
