"""Synthesize the Kubernetes manifests: ``python -m k8s.main`` (``make synth`` runs it).

One folder per config with a ``kubernetes`` section: ``k8s/dist/<env>/``. ``--env`` picks one
config (default: all of ``config/*.yaml``); ``--outdir`` writes elsewhere (tests compare a fresh
synth with the committed files). A bad config exits with status 2 and one line per problem, as
the CDK app does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from config.loader import ConfigError, available_envs, load_config
from k8s.app import DIST_DIR, synth


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m k8s.main", description=__doc__)
    parser.add_argument("--env", default="all", help="a config name (config/<env>.yaml) or all")
    parser.add_argument("--outdir", type=Path, default=DIST_DIR, help="default: k8s/dist")
    args = parser.parse_args(argv)
    envs = available_envs() if args.env == "all" else [args.env]
    configs, problems = {}, []
    for env in envs:
        try:
            configs[env] = load_config(env)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        print(f"invalid deployment config ({len(problems)} problem(s)):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    for env, config in configs.items():
        if config.kubernetes is None:
            print(f"{env}: no kubernetes section, nothing to write")
            continue
        files = synth(config, args.outdir / env)
        print(f"{env}: wrote {len(files)} manifest files to {args.outdir / env}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
