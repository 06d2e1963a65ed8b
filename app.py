#!/usr/bin/env python3
"""CDK entry point: ``npx cdk synth`` (dev) or ``npx cdk synth -c env=prod``.

``-c env=NAME`` picks ``config/NAME.yaml``; ``-c config=PATH`` picks any file (for trying a config
before committing it). A bad config exits with status 2 and one line per problem, no traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aws_cdk import App

from config.loader import ConfigError, load_config, load_config_file
from stacks.composition import build_app


def _default_env() -> str:
    # The CDK CLI passes cdk.json's context in; `python app.py` alone must read it itself.
    context = json.loads((Path(__file__).parent / "cdk.json").read_text())["context"]
    return str(context["agent:defaultEnv"])


def main() -> int:
    app = App()
    env = str(app.node.try_get_context("env") or _default_env())
    config_file = app.node.try_get_context("config")
    try:
        config = load_config_file(Path(config_file)) if config_file else load_config(env)
    except ConfigError as exc:
        print(f"cdk synth: invalid deployment config ({len(exc.problems)} problem(s)):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    build_app(app, config)
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
