"""Scaling what-if: simulate a task burst against the worker autoscalers the project emits."""
