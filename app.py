#!/usr/bin/env python3
"""CDK entry point.

``npx cdk synth`` synthesizes the default environment (cdk.json ``agent:defaultEnv``);
``-c env=prod`` picks ``config/prod.yaml``; ``-c env=all`` every ``config/*.yaml`` at once (stack
ids carry the config's name, so they never collide); ``-c config=PATH`` any one file, for trying
a config before committing it. A bad config exits with status 2 and one line per problem.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aws_cdk import App

from config.loader import ConfigError, available_envs, load_config, load_config_file
from config.model import DeploymentConfig
from stacks.composition import build_app


def _default_env() -> str:
    # The CDK CLI passes cdk.json's context in; `python app.py` alone must read it itself.
    context = json.loads((Path(__file__).parent / "cdk.json").read_text())["context"]
    return str(context["agent:defaultEnv"])


def _configs(app: App) -> list[DeploymentConfig]:
    config_file = app.node.try_get_context("config")
    if config_file:
        return [load_config_file(Path(config_file))]
    env = str(app.node.try_get_context("env") or _default_env())
    names = available_envs() if env == "all" else [env]
    configs, problems = [], []
    for name in names:
        try:
            configs.append(load_config(name))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return configs


def main() -> int:
    app = App()
    try:
        configs = _configs(app)
    except ConfigError as exc:
        print(f"invalid deployment config ({len(exc.problems)} problem(s)):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    build_app(app, configs)
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
