"""The Kubernetes deployment: cdk8s charts (``k8s.charts``), their building blocks
(``k8s.lib``), the app that writes ``k8s/dist/`` (``k8s.main``) and the Pulumi program
(``k8s/deploy``). The folder is named k8s, not kubernetes, so it never shadows a library."""
