"""LLM clients: one interface (:class:`runtime.llm.types.LLMClient`), two backends."""
