"""The VerticalPodAutoscaler (``autoscaling.k8s.io/v1``) as a typed ``ApiObject``.

Typed here rather than generated with ``cdk8s import``: the import emits a jsii package for
Python that must be compiled and committed, for the five fields we set. tests/k8s validates the
object against the VPA release's CRD schema, so a misspelt field fails there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cdk8s import ApiObject, ApiObjectMetadata, JsonPatch

from constructs import Construct

API_VERSION = "autoscaling.k8s.io/v1"
KIND = "VerticalPodAutoscaler"

# Off: recommendations only. Initial: requests set when a pod is created, never by evicting a
# running one. The HPA scales the same Deployment on CPU and memory utilization, so a VPA that
# evicts pods to resize them ("Recreate", "InPlaceOrRecreate") would fight it; these two cannot.
UpdateMode = Literal["Off", "Initial"]


@dataclass(frozen=True)
class VpaProps:
    name: str
    namespace: str
    labels: dict[str, str]
    deployment_name: str
    container_name: str
    update_mode: UpdateMode
    # Bounds for the recommendation: below the requests would starve the agent, above the limits
    # the node may not fit it.
    min_allowed: dict[str, str]
    max_allowed: dict[str, str]


class VerticalPodAutoscaler(ApiObject):
    def __init__(self, scope: Construct, construct_id: str, *, props: VpaProps) -> None:
        super().__init__(
            scope,
            construct_id,
            api_version=API_VERSION,
            kind=KIND,
            metadata=ApiObjectMetadata(
                name=props.name, namespace=props.namespace, labels=props.labels
            ),
        )
        self.props = props
        # ApiObject's Python binding takes no spec argument: the spec goes in as a JSON patch.
        spec = {
            "targetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": props.deployment_name,
            },
            "updatePolicy": {"updateMode": props.update_mode},
            "resourcePolicy": {
                "containerPolicies": [
                    {
                        "containerName": props.container_name,
                        "controlledResources": ["cpu", "memory"],
                        "minAllowed": props.min_allowed,
                        "maxAllowed": props.max_allowed,
                    }
                ]
            },
        }
        self.add_json_patch(JsonPatch.add("/spec", spec))
