"""Read and validate a deployment config file, turning every problem into one readable line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from config.model import DeploymentConfig

CONFIG_DIR = Path(__file__).resolve().parent
_ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


class ConfigError(Exception):
    """The config cannot be used. ``problems`` holds one line per problem, each naming the file."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def config_path(env: str, config_dir: Path = CONFIG_DIR) -> Path:
    return config_dir / f"{env}.yaml"


def available_envs(config_dir: Path = CONFIG_DIR) -> list[str]:
    return sorted(p.stem for p in config_dir.glob("*.yaml"))


def load_config(env: str, *, config_dir: Path = CONFIG_DIR) -> DeploymentConfig:
    """Load ``<config_dir>/<env>.yaml``; raise :class:`ConfigError` listing every problem."""
    if not _ENV_NAME.match(env):
        raise ConfigError([f"env {env!r}: use lower-case letters, digits and '-' (e.g. dev)"])
    path = config_path(env, config_dir)
    if not path.is_file():
        envs = ", ".join(available_envs(config_dir)) or "none"
        raise ConfigError(
            [f"{_show(path)}: no such config file; choose -c env=<name> from: {envs}"]
        )
    return load_config_file(path)


def load_config_file(path: Path) -> DeploymentConfig:
    shown = _show(path)
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError([f"{shown}: YAML syntax error{where}: {problem}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{shown}: expected a mapping of settings at the top level"])
    try:
        return DeploymentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError([_describe(shown, err) for err in exc.errors()]) from None


def _describe(shown: str, err: Any) -> str:
    field = ".".join(str(part) for part in err["loc"]) or "(top level)"
    message = str(err["msg"]).removeprefix("Value error, ")
    kind = err["type"]
    if kind == "extra_forbidden":
        message = "unknown setting; check the spelling against the config reference in README.md"
    elif kind == "missing":
        message = "required setting is missing"
    got = ""
    if (
        kind not in ("missing", "model_type")
        and "input" in err
        and not isinstance(err["input"], dict)
    ):
        got = f" (got {err['input']!r})"
    return f"{shown}: {field}: {message}{got}"


def _show(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
