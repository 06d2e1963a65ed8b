"""The synthesized manifests: committed without drift, valid against the pinned Kubernetes schema
and the KEDA/VPA CRDs, clean under checkov, and hygienic (probes, resources, security context,
disruption budgets, network policies, one autoscaler per workload, grace >= drain)."""

from __future__ import annotations

import copy
import filecmp
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from config.model import K8S_PRE_STOP_SECONDS
from k8s.app import DIST_DIR
from k8s.lib import defaults
from k8s.lib.checkov import ANNOTATION_PREFIX
from runtime.queue_worker import WorkerSettings
from runtime.service.settings import ServiceSettings
from runtime.settings import RuntimeSettings
from runtime.tasks.settings import TaskSettings
from tests.fakes.checkov import run_checkov
from tests.k8s.conftest import COMMITTED_ENVS, REPO_ROOT, Manifest, Synthesized
from tests.k8s.crd_schemas import crd_schema, validate_against_crd

WORKLOAD_KINDS = {"Deployment"}


def pod_spec(manifest: Manifest) -> dict[str, Any]:
    doc = manifest.doc
    if manifest.kind == "Deployment":
        return dict(doc["spec"]["template"]["spec"])
    if manifest.kind == "ScaledJob":
        return dict(doc["spec"]["jobTargetRef"]["template"]["spec"])
    raise AssertionError(f"{manifest} has no pod template")


def pod_labels(manifest: Manifest) -> dict[str, str]:
    return dict(manifest.doc["spec"]["template"]["metadata"]["labels"])


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    match = selector.get("matchLabels", {})
    assert "matchExpressions" not in selector, "only matchLabels are used by these charts"
    return bool(match) and all(labels.get(key) == value for key, value in match.items())


def env_of(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the runtime sees it; Secret keys get stand-in values."""
    environ = {}
    for variable in container.get("env", []):
        if "value" in variable:
            environ[variable["name"]] = variable["value"]
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            keys = {
                defaults.SECRET_KEY_LLM_API_KEY,
                defaults.SECRET_KEY_REDIS_PASSWORD,
                defaults.SECRET_KEY_SERVICE_AUTH_TOKEN,
            }
            # A Kubernetes Secret's key, or (Cloud Run) a Secret Manager secret's latest version.
            cloud_run = ref["key"] == "latest" and any(ref["name"].endswith(k) for k in keys)
            assert ref["key"] in keys or cloud_run, variable
            environ[variable["name"]] = "stand-in-secret-value-0123456789"
    return environ


def workloads(k8s_synth: Synthesized) -> list[Manifest]:
    return [m for m in k8s_synth.manifests if m.cluster and m.kind in {"Deployment", "ScaledJob"}]


# --- committed manifests --------------------------------------------------------------------------


def test_committed_manifests_match_a_fresh_synth(k8s_synth: Synthesized) -> None:
    for env in COMMITTED_ENVS:
        fresh, committed = k8s_synth.outdir / env, DIST_DIR / env
        assert committed.is_dir(), f"{committed} is missing: run `make synth` and commit k8s/dist"
        fresh_files = sorted(p.relative_to(fresh) for p in fresh.rglob("*.yaml"))
        committed_files = sorted(p.relative_to(committed) for p in committed.rglob("*.yaml"))
        assert fresh_files == committed_files, "run `make synth` and commit k8s/dist"
        drifted = [
            str(path)
            for path in fresh_files
            if not filecmp.cmp(fresh / path, committed / path, shallow=False)
        ]
        assert drifted == [], f"{env}: {drifted} differ from the charts; run `make synth`"


def test_every_config_yields_the_expected_objects(k8s_synth: Synthesized) -> None:
    for env in k8s_synth.configs:
        kinds = Counter(m.kind for m in k8s_synth.of(env))
        assert kinds["Namespace"] == 1
        assert kinds["HorizontalPodAutoscaler"] == 1
        assert kinds["VerticalPodAutoscaler"] == 1
        assert kinds["PodDisruptionBudget"] >= 1
        assert kinds["NetworkPolicy"] == 2, "one for the service's pods, one for the worker's"
        assert kinds["ScaledObject"] + kinds["ScaledJob"] == 1
        cloud_run = k8s_synth.of(env, cluster=False)
        assert [(m.api_version, m.kind) for m in cloud_run] == [
            ("serving.knative.dev/v1", "Service")
        ]


def test_the_cli_writes_every_env_and_refuses_a_bad_config(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "k8s.main", "--outdir", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(COMMITTED_ENVS)
    bad = subprocess.run(
        [sys.executable, "-m", "k8s.main", "--env", "no-such-env", "--outdir", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "no such config file" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_cdk8s_project_file_runs_the_same_app(tmp_path: Path) -> None:
    # `cdk8s synth` (npm cdk8s-cli) runs cdk8s.yaml's app from k8s/; run that command line here,
    # pointed at a temporary folder, and expect the committed manifests.
    project = yaml.safe_load((REPO_ROOT / "k8s" / "cdk8s.yaml").read_text())
    assert project["language"] == "python"
    assert (REPO_ROOT / "k8s" / project["output"]) == DIST_DIR
    # A shell, as the CLI uses: the app command is a shell line (`cd .. && ...`).
    run = subprocess.run(  # noqa: S602
        f"{project['app']} --outdir {tmp_path}", shell=True, cwd=REPO_ROOT / "k8s",
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    for env in COMMITTED_ENVS:
        for path in (DIST_DIR / env).rglob("*.yaml"):
            fresh = tmp_path / env / path.relative_to(DIST_DIR / env)
            assert fresh.read_text() == path.read_text(), path


# --- schemas --------------------------------------------------------------------------------------


def test_builtin_objects_validate_against_the_pinned_kubernetes_schema(
    k8s_synth: Synthesized,
) -> None:
    checked, errors = 0, []
    for manifest in k8s_synth.manifests:
        if not manifest.builtin:
            continue
        try:
            kubernetes_validate.validate(manifest.doc, defaults.KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{manifest}: {exc.message} at {list(exc.path)}")
        checked += 1
    assert errors == []
    assert checked >= 3 * 8


def test_strict_validation_rejects_a_misspelt_field(k8s_synth: Synthesized) -> None:
    deployment = copy.deepcopy(k8s_synth.one("dev", "Deployment", "-service").doc)
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
    with pytest.raises(kubernetes_validate.ValidationError, match="terminationGracePeriod"):
        kubernetes_validate.validate(deployment, defaults.KUBERNETES_VERSION, strict=True)


def test_custom_resources_validate_against_their_crds(k8s_synth: Synthesized) -> None:
    checked = Counter[str]()
    for manifest in k8s_synth.manifests:
        if manifest.builtin or manifest.group == "serving.knative.dev":
            continue
        version = manifest.api_version.rpartition("/")[2]
        validate_against_crd(manifest.doc, crd_schema(manifest.group, manifest.kind, version))
        checked[manifest.kind] += 1
    assert checked["VerticalPodAutoscaler"] == 3
    assert checked["TriggerAuthentication"] >= 3
    assert checked["ScaledObject"] >= 2, "dev and prod scale a worker Deployment"
    assert checked["ScaledJob"] >= 1, "the variant runs long tasks as Jobs"


def test_the_bad_scaled_object_fixture_fails_crd_validation() -> None:
    bad = yaml.safe_load((Path(__file__).parent / "fixtures" / "bad-scaledobject.yaml").read_text())
    with pytest.raises(AssertionError):
        validate_against_crd(bad, crd_schema("keda.sh", "ScaledObject", "v1alpha1"))


# --- checkov --------------------------------------------------------------------------------------


def test_checkov_passes_and_every_skip_is_needed(k8s_synth: Synthesized, tmp_path: Path) -> None:
    # The same objects without their skip annotations, checked alongside the real ones.
    for number, manifest in enumerate(k8s_synth.manifests):
        doc = copy.deepcopy(manifest.doc)
        annotations = doc["metadata"].get("annotations", {})
        for key in [k for k in annotations if k.startswith(ANNOTATION_PREFIX)]:
            del annotations[key]
        # One object per file, in a folder per env and manifest folder, as checkov saw them.
        target = tmp_path / manifest.env / manifest.path.parent / f"{number:04d}.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump(doc))
    real, stripped = run_checkov("kubernetes", ["-d", str(k8s_synth.outdir)], ["-d", str(tmp_path)])
    assert real["summary"]["parsing_errors"] == 0
    assert real["summary"]["failed"] == 0, [
        (c["check_id"], c["resource"], c["file_path"]) for c in real["results"]["failed_checks"]
    ]
    assert real["summary"]["passed"] >= 200
    skipped = {(c["check_id"], c["resource"]) for c in real["results"]["skipped_checks"]}
    for check in real["results"]["skipped_checks"]:
        assert len(check["check_result"].get("suppress_comment", "")) >= 40, check["check_id"]

    # Without the skip annotations, exactly the skipped checks fail.
    failed = {(c["check_id"], c["resource"]) for c in stripped["results"]["failed_checks"]}
    assert failed == skipped


# --- workload hygiene -----------------------------------------------------------------------------


def test_every_container_is_hardened_and_sized(k8s_synth: Synthesized) -> None:
    for manifest in workloads(k8s_synth):
        spec = pod_spec(manifest)
        assert spec["automountServiceAccountToken"] is False, manifest
        assert spec["serviceAccountName"] != "default", manifest
        pod_context = spec["securityContext"]
        assert pod_context["runAsNonRoot"] is True
        assert pod_context["runAsUser"] >= 10000
        assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, manifest
            assert context["readOnlyRootFilesystem"] is True, manifest
            assert context["runAsNonRoot"] is True and context["runAsUser"] >= 10000, manifest
            assert context["capabilities"] == {"drop": ["ALL"]}, manifest
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, manifest
            for kind in ("requests", "limits"):
                assert set(container["resources"][kind]) == {"cpu", "memory"}, manifest
            # The read-only root filesystem's only writable path is an emptyDir, and TMPDIR
            # points at it.
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts[defaults.SCRATCH_PATH]], manifest
            assert env_of(container)["TMPDIR"] == defaults.SCRATCH_PATH
            assert "@sha256:" in container["image"], manifest
            assert container["imagePullPolicy"] == "Always"


def test_serving_containers_have_all_three_probes(k8s_synth: Synthesized) -> None:
    for env in k8s_synth.configs:
        service = k8s_synth.one(env, "Deployment", "-service")
        (container,) = pod_spec(service)["containers"]
        assert container["startupProbe"]["httpGet"]["path"] == defaults.HEALTH_PATH
        assert container["livenessProbe"]["httpGet"]["path"] == defaults.HEALTH_PATH
        assert container["readinessProbe"]["httpGet"]["path"] == defaults.READY_PATH
        startup = container["startupProbe"]
        # A cold start gets at least a minute before liveness can restart the pod.
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


def test_each_scaled_deployment_has_one_pdb_and_one_network_policy(
    k8s_synth: Synthesized,
) -> None:
    for env in k8s_synth.configs:
        max_replicas: dict[str, int] = {}
        for hpa in k8s_synth.of(env, kind="HorizontalPodAutoscaler"):
            max_replicas[hpa.doc["spec"]["scaleTargetRef"]["name"]] = hpa.doc["spec"]["maxReplicas"]
        for scaled in k8s_synth.of(env, kind="ScaledObject"):
            target = scaled.doc["spec"]["scaleTargetRef"]["name"]
            max_replicas[target] = scaled.doc["spec"]["maxReplicaCount"]
        deployments = k8s_synth.of(env, kind="Deployment")
        assert deployments
        for deployment in deployments:
            assert "replicas" not in deployment.doc["spec"], (
                f"{deployment}: an autoscaler owns the count; `kubectl apply` would reset it"
            )
            labels = pod_labels(deployment)
            if max_replicas[deployment.name] < 2:
                continue
            budgets = [
                pdb for pdb in k8s_synth.of(env, kind="PodDisruptionBudget")
                if selects(pdb.doc["spec"]["selector"], labels)
            ]  # fmt: skip
            policies = [
                policy for policy in k8s_synth.of(env, kind="NetworkPolicy")
                if selects(policy.doc["spec"]["podSelector"], labels)
            ]  # fmt: skip
            assert len(budgets) == 1, deployment
            assert len(policies) == 1, deployment
            assert set(policies[0].doc["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_one_autoscaler_per_workload(k8s_synth: Synthesized) -> None:
    for env in k8s_synth.configs:
        targets = [
            (m.doc["spec"]["scaleTargetRef"]["kind"], m.doc["spec"]["scaleTargetRef"]["name"])
            for m in k8s_synth.of(env)
            if m.kind in {"HorizontalPodAutoscaler", "ScaledObject"}
        ]
        assert len(targets) == len(set(targets)), f"{env}: {targets}"
        # KEDA makes its own HPA for a ScaledObject's target: an HPA of ours on it would fight.
        hpa_targets = {
            m.doc["spec"]["scaleTargetRef"]["name"]
            for m in k8s_synth.of(env, kind="HorizontalPodAutoscaler")
        }
        keda_targets = {
            m.doc["spec"]["scaleTargetRef"]["name"] for m in k8s_synth.of(env, kind="ScaledObject")
        }
        assert not hpa_targets & keda_targets
        for vpa in k8s_synth.of(env, kind="VerticalPodAutoscaler"):
            assert vpa.doc["spec"]["updatePolicy"]["updateMode"] in {"Off", "Initial"}


def test_grace_periods_cover_the_drain(k8s_synth: Synthesized) -> None:
    for env, config in k8s_synth.configs.items():
        service = k8s_synth.one(env, "Deployment", "-service")
        spec = pod_spec(service)
        (container,) = spec["containers"]
        drain = float(env_of(container)["SERVICE_DRAIN_SECONDS"])
        pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pre_stop == K8S_PRE_STOP_SECONDS
        assert spec["terminationGracePeriodSeconds"] >= pre_stop + drain + 5, env
        assert drain == config.container.drain_seconds
        for worker in [m for m in workloads(k8s_synth) if m.env == env and "-worker" in m.name]:
            (container,) = pod_spec(worker)["containers"]
            worker_drain = float(env_of(container)["WORKER_DRAIN_SECONDS"])
            assert config.kubernetes is not None
            assert worker_drain >= config.kubernetes.worker.max_task_seconds or (
                worker.kind == "ScaledJob"
            ), worker
            assert pod_spec(worker)["terminationGracePeriodSeconds"] > worker_drain, worker


def test_hpa_scale_down_waits_for_drained_pods(k8s_synth: Synthesized) -> None:
    for env, config in k8s_synth.configs.items():
        hpa = k8s_synth.one(env, "HorizontalPodAutoscaler")
        scale_down = hpa.doc["spec"]["behavior"]["scaleDown"]
        assert scale_down["stabilizationWindowSeconds"] >= 60
        (policy,) = scale_down["policies"]
        assert policy["type"] == "Pods"
        # The next pods go only when the last ones have had their preStop + drain.
        assert policy["periodSeconds"] >= K8S_PRE_STOP_SECONDS + config.container.drain_seconds
        metrics = {m["resource"]["name"] for m in hpa.doc["spec"]["metrics"]}
        assert metrics == {"cpu", "memory"}


def test_the_runtime_accepts_every_pod_environment(k8s_synth: Synthesized) -> None:
    for manifest in workloads(k8s_synth):
        (container,) = pod_spec(manifest)["containers"]
        environ = env_of(container)
        RuntimeSettings.from_env(environ)
        if container["args"][-1] == "serve":
            ServiceSettings.from_env(environ)
        else:
            TaskSettings.from_env(environ)
            WorkerSettings.from_env(environ)


def test_secrets_only_by_reference(k8s_synth: Synthesized) -> None:
    # No Secret in the manifests (k8s/deploy or the user creates it), and no variable that
    # looks like a credential carries a literal value.
    assert not [m for m in k8s_synth.manifests if m.kind == "Secret"]
    for manifest in workloads(k8s_synth) + [m for m in k8s_synth.manifests if not m.cluster]:
        if manifest.cluster:
            containers = pod_spec(manifest)["containers"]
        else:
            containers = manifest.doc["spec"]["template"]["spec"]["containers"]
        for container in containers:
            # *_SECRET_ARN names a Secrets Manager secret the runtime reads: an ARN, not a value.
            literal = [
                v["name"] for v in container["env"]
                if "value" in v and any(w in v["name"] for w in ("KEY", "TOKEN", "PASSWORD"))
                and not (
                    v["name"].endswith("_SECRET_ARN")
                    and v["value"].startswith("arn:aws:secretsmanager:")
                )
            ]  # fmt: skip
            assert literal == [], manifest
    for env, config in k8s_synth.configs.items():
        (container,) = pod_spec(k8s_synth.one(env, "Deployment", "-service"))["containers"]
        refs = {
            v["name"]: v["valueFrom"]["secretKeyRef"] for v in container["env"] if "valueFrom" in v
        }
        assert config.kubernetes is not None
        assert {ref["name"] for ref in refs.values()} == {config.kubernetes.secret_name}
        assert ("LLM_API_KEY" in refs) == (
            config.llm.provider == "openai-compatible"
            and config.kubernetes.aws.llm_api_key_secret_arn is None
        )
        assert {"REDIS_PASSWORD", "SERVICE_AUTH_TOKEN"} <= set(refs)


def test_pods_read_the_llm_key_by_arn_when_the_config_gives_one(k8s_synth: Synthesized) -> None:
    # prod sets kubernetes.aws.llm_api_key_secret_arn, dev does not, the variant is Bedrock.
    arns = {
        env: config.kubernetes.aws.llm_api_key_secret_arn if config.kubernetes else None
        for env, config in k8s_synth.configs.items()
    }
    assert arns["prod"] is not None and arns["dev"] is None
    for manifest in workloads(k8s_synth):
        config = k8s_synth.configs[manifest.env]
        assert config.kubernetes is not None
        arn = config.kubernetes.aws.llm_api_key_secret_arn
        for container in pod_spec(manifest)["containers"]:
            values = {v["name"]: v.get("value") for v in container["env"]}
            refs = {
                v["name"]: v["valueFrom"]["secretKeyRef"]
                for v in container["env"]
                if "valueFrom" in v
            }
            key_refs = [r for r in refs.values() if r["key"] == defaults.SECRET_KEY_LLM_API_KEY]
            if config.llm.provider == "bedrock":
                assert "LLM_API_KEY" not in refs and "LLM_API_KEY_SECRET_ARN" not in values
            elif arn is not None:
                # The rotated key, read by ARN in the secret's region; no copy in the Secret.
                assert "LLM_API_KEY" not in refs and not key_refs, manifest
                assert values["LLM_API_KEY_SECRET_ARN"] == arn, manifest
                # boto3 reads AWS_DEFAULT_REGION (not AWS_REGION) for the client's region.
                assert values["AWS_DEFAULT_REGION"] == config.kubernetes.aws.region, manifest
                assert values["AWS_REGION"] == config.kubernetes.aws.region, manifest
            else:
                assert refs["LLM_API_KEY"]["key"] == defaults.SECRET_KEY_LLM_API_KEY, manifest
                assert not {"LLM_API_KEY_SECRET_ARN", "AWS_REGION", "AWS_DEFAULT_REGION"} & set(
                    values
                ), manifest
    # Cloud Run has no IRSA: it keeps the key in Secret Manager, whatever the cluster does.
    # (Checked below: the pods' region variables give the runtime's Secrets Manager client one.)
    for env, config in k8s_synth.configs.items():
        if config.llm.provider != "openai-compatible":
            continue
        (knative,) = k8s_synth.of(env, cluster=False)
        (container,) = knative.doc["spec"]["template"]["spec"]["containers"]
        names = {v["name"] for v in container["env"]}
        assert "LLM_API_KEY" in names and "LLM_API_KEY_SECRET_ARN" not in names


def test_the_runtime_finds_the_secrets_region_in_a_pod_environment(
    k8s_synth: Synthesized, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # runtime/wiring.py builds boto3.client("secretsmanager") at start, with no region argument.
    import boto3

    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    config = k8s_synth.configs["prod"]
    assert config.kubernetes is not None
    for manifest in workloads(k8s_synth):
        if manifest.env != "prod":
            continue
        (container,) = pod_spec(manifest)["containers"]
        environ = env_of(container)
        with monkeypatch.context() as patch:
            for name, value in environ.items():
                if name.startswith("AWS_"):
                    patch.setenv(name, value)
            client = boto3.session.Session().client("secretsmanager")
        assert client.meta.region_name == config.kubernetes.aws.region, manifest


def test_service_network_policy_admits_only_the_ingress_controller(
    k8s_synth: Synthesized,
) -> None:
    for env, config in k8s_synth.configs.items():
        assert config.kubernetes is not None
        controller = config.kubernetes.ingress_controller
        policy = k8s_synth.one(env, "NetworkPolicy", "-service").doc["spec"]
        (rule,) = policy["ingress"]
        peers = rule["from"]
        assert peers[0]["namespaceSelector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": controller.namespace
        }
        assert peers[0]["podSelector"]["matchLabels"] == controller.pod_labels
        alb = (
            config.kubernetes.ingress is not None and config.kubernetes.ingress.controller == "alb"
        )
        assert [p["ipBlock"]["cidr"] for p in peers[1:]] == (
            list(controller.source_cidrs) if alb else []
        )
        assert rule["ports"] == [{"port": defaults.CONTAINER_PORT, "protocol": "TCP"}]
        egress_ports = sorted(
            (port["protocol"], port["port"]) for rule in policy["egress"] for port in rule["ports"]
        )
        assert egress_ports == sorted(
            [("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", config.kubernetes.redis.port)]
        )


def test_ingress_timeouts_suit_websockets(k8s_synth: Synthesized) -> None:
    for env, config in k8s_synth.configs.items():
        ingress = k8s_synth.one(env, "Ingress").doc
        annotations = ingress["metadata"]["annotations"]
        idle = config.container.alb_idle_timeout_seconds
        assert idle > config.container.ws_heartbeat_seconds
        if ingress["spec"]["ingressClassName"] == "alb":
            assert annotations["alb.ingress.kubernetes.io/load-balancer-attributes"] == (
                f"idle_timeout.timeout_seconds={idle}"
            )
            assert "alb.ingress.kubernetes.io/certificate-arn" in annotations
        else:
            assert annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"] == str(idle)
            assert annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"] == str(idle)
            assert ingress["spec"]["tls"][0]["hosts"] == [ingress["spec"]["rules"][0]["host"]]


def test_namespace_enforces_the_restricted_pod_security_standard(
    k8s_synth: Synthesized,
) -> None:
    for env in k8s_synth.configs:
        labels = k8s_synth.one(env, "Namespace").doc["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert labels["pod-security.kubernetes.io/enforce-version"] == "v1.33"


# --- Cloud Run ------------------------------------------------------------------------------------


def test_cloud_run_service_matches_the_deployment(k8s_synth: Synthesized) -> None:
    for env, config in k8s_synth.configs.items():
        assert config.kubernetes is not None
        (knative,) = k8s_synth.of(env, cluster=False)
        deployment = pod_spec(k8s_synth.one(env, "Deployment", "-service"))["containers"][0]
        spec = knative.doc["spec"]["template"]["spec"]
        annotations = knative.doc["spec"]["template"]["metadata"]["annotations"]
        (container,) = spec["containers"]
        # Structure Cloud Run accepts (`gcloud run services replace`): one container, one port
        # named http1, the fields below and nothing a cluster-only schema would add.
        assert set(knative.doc) == {"apiVersion", "kind", "metadata", "spec"}
        assert set(knative.doc["spec"]) == {"template", "traffic"}
        assert set(spec) == {"containerConcurrency", "timeoutSeconds", "containers"}
        assert set(container) == {
            "image", "args", "ports", "env", "resources", "startupProbe", "readinessProbe",
            "livenessProbe",
        }  # fmt: skip
        assert container["ports"] == [{"name": "http1", "containerPort": defaults.CONTAINER_PORT}]
        # The same concurrency limit, image, probes and resources as the cluster's pods.
        assert spec["containerConcurrency"] == config.container.max_concurrent_sessions
        assert (
            int(env_of(deployment)["SERVICE_MAX_CONCURRENT_SESSIONS"])
            == (spec["containerConcurrency"])
        )
        assert container["image"] == (config.kubernetes.cloud_run.image or deployment["image"])
        assert container["args"] == deployment["args"]
        assert container["resources"]["limits"] == deployment["resources"]["limits"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            ours, theirs = container[probe], deployment[probe]
            assert ours["httpGet"]["path"] == theirs["httpGet"]["path"]
            for key in ("periodSeconds", "failureThreshold", "timeoutSeconds"):
                assert ours[key] == theirs[key], (env, probe, key)
        assert annotations["autoscaling.knative.dev/minScale"] == str(
            config.kubernetes.cloud_run.min_instances
        )
        assert annotations["autoscaling.knative.dev/maxScale"] == str(
            config.kubernetes.cloud_run.max_instances
        )
        assert spec["timeoutSeconds"] == config.kubernetes.cloud_run.timeout_seconds
        # The same variables, secrets from Secret Manager instead of a Kubernetes Secret; where
        # the pods read the LLM key by ARN (IRSA), Cloud Run keeps LLM_API_KEY in Secret Manager.
        cloud_run_env = env_of(container)
        expected = set(env_of(deployment)) - {"TMPDIR"}
        if config.kubernetes.aws.llm_api_key_secret_arn is not None:
            by_arn = {"LLM_API_KEY_SECRET_ARN", "AWS_REGION", "AWS_DEFAULT_REGION"}
            expected = expected - by_arn | {"LLM_API_KEY"}
        assert set(cloud_run_env) == expected
        ServiceSettings.from_env(cloud_run_env)
        RuntimeSettings.from_env(cloud_run_env)
