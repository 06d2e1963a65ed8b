"""CDK stacks. Stacks compose constructs and grant; constructs (in ``constructs/``) build."""
