"""ECR cross-region replication: the container images of this region, copied to another.

A registry-level setting: an account has one replication configuration per region, and this
construct is it. Deploy it in the primary region only, from one deployment per account.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ecr as ecr

from constructs import Construct


class ImageReplication(Construct):
    """``self.configuration``: replicate to ``destination_region`` in this account.

    ``repository_prefixes`` limits it to repositories whose names start with one of them; empty
    replicates every repository. Only images pushed after deploy are replicated.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        destination_region: str,
        repository_prefixes: tuple[str, ...] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        if destination_region == stack.region:
            raise ValueError(
                f"ImageReplication: destination_region {destination_region} is this stack's own "
                f"region; ECR replicates to other regions only"
            )
        filters = [
            ecr.CfnReplicationConfiguration.RepositoryFilterProperty(
                filter=prefix, filter_type="PREFIX_MATCH"
            )
            for prefix in repository_prefixes
        ]
        self.configuration = ecr.CfnReplicationConfiguration(
            self,
            "Configuration",
            replication_configuration=ecr.CfnReplicationConfiguration.ReplicationConfigurationProperty(
                rules=[
                    ecr.CfnReplicationConfiguration.ReplicationRuleProperty(
                        destinations=[
                            ecr.CfnReplicationConfiguration.ReplicationDestinationProperty(
                                region=destination_region, registry_id=stack.account
                            )
                        ],
                        repository_filters=filters or None,
                    )
                ]
            ),
        )
