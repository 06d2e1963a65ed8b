"""The agent runtime: the code every deployment pattern runs.

Plain Python, importable without AWS. Adapters (the Lambda handler here, the webhook worker and the
container service later) all call :func:`runtime.agent.run_step`.
"""
