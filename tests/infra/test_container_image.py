"""The container image: Dockerfile rules, checkov's Dockerfile checks, the build context, and the
pinned requirements against what the container code imports. No Docker needed: the image is built
by `cdk deploy`, and everything here reads files.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from aws_cdk import IgnoreStrategy
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from constructs.secure_defaults import (
    CONTAINER_PORT,
    CONTAINER_USER,
    HEALTHCHECK_COMMAND,
    SERVICE_COMMAND,
    WORKER_COMMAND,
)
from tests.fakes import docker_shim
from tests.fakes.checkov import run_checkov
from tests.infra.conftest import REPO_ROOT, Synthesized

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
REQUIREMENTS = REPO_ROOT / "runtime" / "container-requirements.txt"
# Lambda-only code: neither in the image nor imported by what is.
# Lambda-only code (the API and queue handlers, the key rotation function): not in the image.
LAMBDA_ONLY = (REPO_ROOT / "runtime" / "handlers", REPO_ROOT / "runtime" / "rotation")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    stage: int  # 1 for the first FROM's stage, 0 before it


def instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    parsed, stage = [], 0
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        parsed.append(Instruction(keyword.upper(), arguments.strip(), stage))
    return parsed


def of(keyword: str, stage: int | None = None) -> list[Instruction]:
    return [
        i for i in instructions() if i.keyword == keyword and (stage is None or i.stage == stage)
    ]


def final_stage() -> int:
    return max(i.stage for i in instructions())


def exec_form(arguments: str) -> list[str]:
    """A JSON-array (exec form) argument list; a shell-form string fails the test."""
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), arguments
    return value


# --- checkov --------------------------------------------------------------------------------------


def test_checkov_dockerfile_checks_pass() -> None:
    [report] = run_checkov("dockerfile", ["-f", str(DOCKERFILE)])
    assert report["summary"]["failed"] == 0, [
        (c["check_id"], c["check_name"]) for c in report["results"]["failed_checks"]
    ]
    assert report["summary"]["passed"] >= 10
    assert report["summary"]["skipped"] == 0


# --- the Dockerfile's rules ---------------------------------------------------------------------


def base_image() -> str:
    """The base image of every stage (they must agree)."""
    images = {stage.arguments.split()[0] for stage in of("FROM")}
    assert len(images) == 1, f"the build and runtime stages use different bases: {images}"
    return images.pop()


def test_base_image_is_pinned_by_version_and_digest() -> None:
    image = base_image()
    match = re.fullmatch(
        r"python:(?P<version>3\.(?P<minor>\d+)\.\d+)-slim-[a-z]+@sha256:[0-9a-f]{64}", image
    )
    assert match, image
    assert int(match["minor"]) >= 11  # the runtime's floor
    assert "latest" not in image


def test_multi_stage_build_copies_only_the_virtualenv_and_the_code() -> None:
    stages = of("FROM")
    assert len(stages) == 2
    assert stages[0].arguments.endswith(" AS build")
    final = final_stage()
    copies = [c.arguments for c in of("COPY", stage=final)]
    assert copies == ["--from=build /opt/venv /opt/venv", "runtime/ runtime/"]
    assert of("ADD") == []  # COPY only: no remote URLs, no implicit unpacking


def test_pip_installs_only_the_hashed_requirements_without_a_cache() -> None:
    installs = [r.arguments for r in of("RUN") if re.search(r"\bpip\b.*\binstall\b", r.arguments)]
    assert installs, "the image installs its dependencies with pip"
    for command in installs:
        for part in re.split(r"&&", command):
            if "install" not in part:
                continue
            assert "-r runtime/container-requirements.txt" in part
            assert "--no-cache-dir" in part
            assert "--require-hashes" in part
            assert "--only-binary=:all:" in part
    # The requirements carry a hash for every pin (pip refuses the install otherwise).
    text = REQUIREMENTS.read_text(encoding="utf-8")
    pins = re.findall(r"^[A-Za-z0-9._-]+==\S+", text, re.M)
    assert pins and text.count("--hash=sha256:") >= len(pins)


def test_runs_as_a_numeric_non_root_user_set_before_the_command() -> None:
    final = [i for i in instructions() if i.stage == final_stage()]
    keywords = [i.keyword for i in final]
    [user] = [i for i in final if i.keyword == "USER"]
    uid, _, gid = user.arguments.partition(":")
    assert uid.isdigit() and int(uid) >= 10_000
    assert not gid or (gid.isdigit() and int(gid) >= 10_000)
    assert uid == CONTAINER_USER  # the task definitions repeat it
    assert keywords.index("USER") < keywords.index("CMD")
    assert keywords.index("USER") < keywords.index("HEALTHCHECK")
    # Nothing runs as root after the switch, and the user is created with that uid.
    assert all(k != "RUN" for k in keywords[keywords.index("USER") :])
    assert any(f"--uid {uid}" in i.arguments for i in final if i.keyword == "RUN")


def test_command_and_healthcheck_are_exec_form() -> None:
    [command] = of("CMD")
    assert exec_form(command.arguments) == list(SERVICE_COMMAND)
    [health] = of("HEALTHCHECK")
    options, _, probe = health.arguments.partition(" CMD ")
    assert all(option.startswith("--") for option in options.split())
    assert exec_form(probe) == list(HEALTHCHECK_COMMAND)
    assert of("ENTRYPOINT") == []  # the worker overrides CMD alone


def test_the_image_runs_the_command_the_service_tests_start() -> None:
    """The service's own tests start ``python -m runtime.service serve`` in a subprocess; the
    image must run exactly that, or the tests would prove a different entry point."""
    started = set()
    for path in (REPO_ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.List) or len(node.elts) < 3:
                continue
            head, *rest = node.elts
            literal = [e.value for e in rest if isinstance(e, ast.Constant)]
            if (
                isinstance(head, ast.Attribute)
                and head.attr == "executable"
                and len(literal) == len(rest)
                and literal[:2] == ["-m", "runtime.service"]
            ):
                started.add(tuple(literal))
    assert started, "no test starts `python -m runtime.service ...` any more"
    [command] = of("CMD")
    image = exec_form(command.arguments)
    assert image[0] == "python"
    assert tuple(image[1:]) in started, (image, started)


def test_every_command_the_stack_runs_is_a_subcommand_of_the_image_entry_point() -> None:
    # The service (CMD), the worker (the stack's command override) and the health probe.
    run = subprocess.run(
        [sys.executable, "-m", "runtime.service", "--help"], cwd=REPO_ROOT, capture_output=True,
        text=True, check=False, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    choices = re.search(r"\{([a-z,]+)\}", run.stdout)
    assert choices, run.stdout
    for command in (SERVICE_COMMAND, WORKER_COMMAND, HEALTHCHECK_COMMAND):
        assert command[:3] == ("python", "-m", "runtime.service")
        assert command[3] in choices.group(1).split(","), command


def test_python_environment_and_the_rest_of_the_runtime_contract() -> None:
    final = final_stage()
    environment = " ".join(e.arguments for e in of("ENV", stage=final))
    assert "PYTHONDONTWRITEBYTECODE=1" in environment
    assert "PYTHONUNBUFFERED=1" in environment
    assert "PATH=/opt/venv/bin:$PATH" in environment
    assert [e.arguments for e in of("EXPOSE")] == [str(CONTAINER_PORT)]
    assert [s.arguments for s in of("STOPSIGNAL")] == ["SIGTERM"]
    [workdir] = of("WORKDIR", stage=final)
    assert workdir.arguments.startswith("/")
    # No secret in the image: no credentials in ARG or ENV, and the context has none (below).
    for instruction in of("ARG") + of("ENV"):
        assert not re.search(r"(PASSWORD|SECRET|TOKEN|API_KEY|ACCESS_KEY)", instruction.arguments)


# --- the build context ----------------------------------------------------------------------------


def _ignored(path: str) -> bool:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # The strategy CDK stages the asset with, so this is what `cdk deploy` sends to Docker.
    strategy = IgnoreStrategy.docker(str(REPO_ROOT), patterns)
    return strategy.ignores(str(REPO_ROOT / path))


@pytest.mark.parametrize(
    "path",
    [
        ".venv", ".venv/bin/python", ".venv-checkov", "node_modules", "cdk.out", "tests",
        "tests/infra/test_gates.py", ".git", ".git/config", ".mypy_cache", ".pytest_cache",
        ".ruff_cache", "README.md", "docs", "config/prod.yaml", "stacks", "constructs", "bench",
        ".env", "runtime/handlers", "runtime/handlers/serverless_api.py", "runtime/rotation",
        "runtime/rotation/handler.py",
        "runtime/lambda-requirements.txt", "runtime/__pycache__/agent.cpython-313.pyc",
        "runtime/service/__pycache__", "runtime/llm/.pytest_cache",
    ],
)  # fmt: skip
def test_dockerignore_leaves_out(path: str) -> None:
    assert _ignored(path), path


@pytest.mark.parametrize(
    "path",
    ["Dockerfile", "runtime/container-requirements.txt", "runtime/agent.py",
     "runtime/service/app.py", "runtime/tasks/worker.py", "runtime/queue_worker.py"],
)  # fmt: skip
def test_dockerignore_keeps(path: str) -> None:
    assert not _ignored(path), path


def test_synth_stages_the_image_without_calling_docker(synth: Synthesized) -> None:
    """`cdk synth` only copies the build context; Docker runs when `cdk deploy` publishes.

    The session's synthesis ran with a ``docker`` first on PATH that records every call
    (tests/infra/conftest.py)."""
    assert synth.docker_calls == []
    for config_name in ("agent-prod", "agent-hybrid"):
        assets = json.loads((synth.outdir / f"{config_name}-container.assets.json").read_text())
        [image] = assets["dockerImages"].values()
        assert (synth.outdir / image["source"]["directory"] / "Dockerfile").is_file()


def test_the_staged_context_holds_only_what_the_image_needs(synth: Synthesized) -> None:
    assets = json.loads((synth.outdir / "agent-prod-container.assets.json").read_text())
    [asset] = assets["dockerImages"].values()
    context = synth.outdir / asset["source"]["directory"]
    assert {p.name for p in context.iterdir()} == {"Dockerfile", ".dockerignore", "runtime"}
    staged = {p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file()}
    assert "runtime/container-requirements.txt" in staged
    assert not [p for p in staged if "__pycache__" in p or p.endswith(".pyc")]
    assert not [p for p in staged if p.startswith(("runtime/handlers", "runtime/rotation"))]


# --- requirements against imports -----------------------------------------------------------------


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\]+)", line)
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def _container_modules() -> list[Path]:
    return [
        path
        for path in sorted((REPO_ROOT / "runtime").rglob("*.py"))
        if not any(folder in path.parents for folder in LAMBDA_ONLY)
    ]


def _runtime_imports(path: Path) -> set[str]:
    """Modules ``path`` imports when it runs (``if TYPE_CHECKING:`` blocks are not run)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_every_import_of_the_container_code_is_in_the_requirements() -> None:
    pins = _pins()
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for path in _container_modules():
        for module in _runtime_imports(path):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top == "runtime":
                continue
            provided = {canonicalize_name(d) for d in distributions.get(top, [])}
            if not provided & set(pins):
                missing[f"{path.relative_to(REPO_ROOT)}: {module}"] = sorted(provided)
    assert missing == {}, "imports the image would not have; pin them in " + str(REQUIREMENTS)
    modules = {m for path in _container_modules() for m in _runtime_imports(path)}
    # The container code never pulls in Lambda-only code, which the image leaves out.
    assert not [m for m in modules if m.startswith(("runtime.handlers", "aws_lambda_powertools"))]
    assert {"fastapi", "uvicorn", "redis", "boto3", "httpx"} <= {m.split(".")[0] for m in modules}


def test_the_requirements_are_a_closed_set_at_the_tested_versions() -> None:
    """Every pin is what the test environment runs, and every dependency of a pin is pinned.

    The markers are evaluated for the image: CPython of the Dockerfile's version, on Linux.
    ``scripts/lock_container_requirements.py`` checks the same against PyPI for both CPUs.
    """
    pins = _pins()
    version = re.search(r"python:(\d+\.\d+)\.(\d+)", base_image())
    assert version
    environment: dict[str, str] = {
        **{key: str(value) for key, value in default_environment().items()},
        "python_version": version.group(1),
        "python_full_version": f"{version.group(1)}.{version.group(2)}",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }
    unpinned = {}
    for name, pinned in pins.items():
        installed = importlib.metadata.version(name)
        assert installed == pinned, f"{name}: the tests run {installed}, the image pins {pinned}"
        for requirement in map(Requirement, importlib.metadata.requires(name) or []):
            if requirement.marker is not None and not requirement.marker.evaluate(environment):
                continue
            dependency = canonicalize_name(requirement.name)
            if dependency not in pins:
                unpinned[f"{name} -> {requirement}"] = "not pinned"
            elif not requirement.specifier.contains(pins[dependency], prereleases=True):
                unpinned[f"{name} -> {requirement}"] = f"pinned {pins[dependency]}"
    assert unpinned == {}
    # Lambda-only libraries stay out of the image.
    assert not {"aws-lambda-powertools", "aws-xray-sdk"} & set(pins)


def test_requirements_header_names_the_image_python() -> None:
    version = re.search(r"python:(\d+\.\d+)\.", base_image())
    assert version
    assert f"CPython {version.group(1)} on Linux" in REQUIREMENTS.read_text(encoding="utf-8")


def test_the_sessions_docker_records_its_calls_and_fails() -> None:
    before = docker_shim.calls()
    run = subprocess.run(["docker", "build", "."], capture_output=True, check=False)
    assert run.returncode == 97
    assert docker_shim.calls()[len(before) :] == ["build ."]


def test_jsii_started_with_the_sessions_docker_first_on_path(synth: Synthesized) -> None:
    # jsii's node process keeps the environment it started with: the shim must be in it.
    children = {
        int(pid)
        for task in Path(f"/proc/{os.getpid()}/task").iterdir()
        for pid in (task / "children").read_text().split()
    }
    paths = []
    for pid in children:
        with contextlib.suppress(OSError):
            if b"jsii" in Path(f"/proc/{pid}/cmdline").read_bytes():
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                [path] = [e[5:].decode() for e in environ if e.startswith(b"PATH=")]
                paths.append(path)
    assert paths, "no jsii node process under this test process"
    for path in paths:
        assert shutil.which("docker", path=path) == str(docker_shim.CALLS.parent / "docker")
