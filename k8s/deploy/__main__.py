"""What `pulumi up` runs (Pulumi.yaml here): read the stack's config, build the component, export
its outputs. The logic lives in agent_stack.py, where the tests import it."""

import sys
from pathlib import Path

# Pulumi runs this file with k8s/deploy as the working directory and first on sys.path, so the
# repository's packages (config/, k8s/) are not importable yet: put the repository root first,
# before importing them. (This folder is not named pulumi/, so it never shadows the library.)
_REPO_ROOT = Path(__file__).resolve().parents[2]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

import pulumi  # noqa: E402 (after the sys.path line above)

from k8s.deploy.agent_stack import AgentDeployment, args_from_pulumi_config  # noqa: E402

args = args_from_pulumi_config(pulumi.Config())
agent = AgentDeployment(args.config.name, args)
pulumi.export("namespace", agent.namespace)
pulumi.export("endpoint", agent.endpoint)
