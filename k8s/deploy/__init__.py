"""The Pulumi program that deploys ``k8s/dist/<env>/kubernetes/`` to a cluster: ``__main__.py`` is
what ``pulumi up`` runs here, ``agent_stack`` holds the logic (importable by tests)."""
