"""Asynchronous agent tasks: the webhook ingress, the task record, the worker and callbacks."""
