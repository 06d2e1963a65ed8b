"""Entry points that adapt a transport (API Gateway, SQS, HTTP) to the agent step."""
