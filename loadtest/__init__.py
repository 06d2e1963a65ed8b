"""Load scenarios for the agent service (HTTP, WebSocket) and the webhook -> callback flow.

``python -m loadtest {http,ws,webhook,all} [--host URL] ...`` (:mod:`loadtest.cli`). Only
:mod:`loadtest.locustfile` imports locust, and only inside the locust subprocess.
"""
