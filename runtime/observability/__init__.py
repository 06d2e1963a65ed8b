"""Observability shared by every adapter: correlation ids on log lines, LLM usage metrics."""
