"""Rotation of the LLM API key: the Secrets Manager four-step rotation Lambda and its key issuers.

* :mod:`runtime.rotation.protocol` -- createSecret / setSecret / testSecret / finishSecret as
  plain functions over a Secrets Manager client, a key issuer and a key tester;
* :mod:`runtime.rotation.issuers` -- where a new key comes from (a provider's admin API, or a key
  an operator staged) and how an old one is revoked;
* :mod:`runtime.rotation.provider` -- the HTTPS client every provider call goes through;
* :mod:`runtime.rotation.handler` -- the thin Lambda handler Secrets Manager invokes.
"""
