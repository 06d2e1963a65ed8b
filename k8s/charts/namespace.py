"""The namespace, with the restricted Pod Security Standard enforced on every pod in it."""

from __future__ import annotations

from cdk8s import Chart
from cdk8s_plus_33 import k8s

from config.model import DeploymentConfig
from constructs import Construct
from k8s.lib import defaults


class NamespaceChart(Chart):
    def __init__(self, scope: Construct, construct_id: str, *, config: DeploymentConfig) -> None:
        super().__init__(scope, construct_id, disable_resource_name_hashes=True)
        assert config.kubernetes is not None
        level = defaults.POD_SECURITY_LEVEL
        self.namespace_object = k8s.KubeNamespace(
            self,
            "Namespace",
            metadata=k8s.ObjectMeta(
                name=config.kubernetes.namespace,
                labels={
                    # Pod Security Admission refuses any pod that is not restricted, so a later
                    # manifest edit cannot loosen a pod's security context unnoticed.
                    "pod-security.kubernetes.io/enforce": level,
                    "pod-security.kubernetes.io/enforce-version": defaults.POD_SECURITY_VERSION,
                    "pod-security.kubernetes.io/warn": level,
                    "pod-security.kubernetes.io/audit": level,
                    "app.kubernetes.io/part-of": defaults.PART_OF,
                    "app.kubernetes.io/managed-by": defaults.MANAGED_BY,
                },
            ),
        )
