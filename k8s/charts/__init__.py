"""One chart per deployable: namespace, agent service, queue worker, Cloud Run service."""
