"""The container service: the agent's sessions API over HTTP and WebSocket, on the runtime core.

``python -m runtime.service serve`` runs it (:mod:`runtime.service.__main__`); the modules:

* :mod:`~runtime.service.settings` -- ``SERVICE_*`` environment variables;
* :mod:`~runtime.service.app` -- the FastAPI app, its routes and the WebSocket protocol;
* :mod:`~runtime.service.streaming` -- an agent step in a worker thread, its events streamed;
* :mod:`~runtime.service.lifecycle` -- the session limit and the drain state;
* :mod:`~runtime.service.server` -- uvicorn, JSON logs and the graceful shutdown.

Nothing is imported here, so the ``healthcheck`` command stays quick to start.
"""
