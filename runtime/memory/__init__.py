"""Long-term memory for the agent: facts it stores and searches by meaning, per session.

The pieces, each importable on its own so a process pays only for what it uses:

* :mod:`runtime.memory.context` -- the session the current step runs for (no dependencies; the
  agent loop binds it);
* :mod:`runtime.memory.types` -- :class:`~runtime.memory.types.Memory`, the store protocol and
  its errors;
* :mod:`runtime.memory.embedders` -- text to vectors (Bedrock Titan, any OpenAI-compatible
  ``/embeddings`` endpoint, or a local hashing embedder for tests);
* :mod:`runtime.memory.store` -- PostgreSQL with pgvector (needs psycopg);
* :mod:`runtime.memory.tools` -- the ``remember`` and ``recall`` tools;
* :mod:`runtime.memory.settings` and :mod:`runtime.memory.factory` -- the ``MEMORY_*``
  environment, and the tools it describes.

Nothing is imported here: ``runtime.agent`` imports the context module, and importing this
package must not drag psycopg into processes that never store a memory.
"""
