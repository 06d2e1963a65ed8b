"""Tests of the Kubernetes manifests (k8s/): charts, validation, Pulumi deployment."""
