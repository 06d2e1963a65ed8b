"""Custom resources checked offline against their upstream CRDs (KEDA's, the VPA's).

The CRD files live outside the project: ``$AGENT_CRD_SCHEMAS``, by default ``../shared/schemas``
beside the repository, one folder per upstream holding its CustomResourceDefinition YAML. Without
them a test cannot say anything about a custom resource, so it fails on CI (``CI`` set) and skips
elsewhere, saying where to get them.

From openAPIV3Schema to jsonschema: the schemas are OpenAPI 3.0 schema objects, which Draft 7
reads the same way for every keyword they use (``type``, ``properties``, ``items``,
``required``, ``enum``, ``pattern``, ``minimum``, ``additionalProperties``, ``anyOf``) except
``nullable``, translated here to a ``"null"`` type. Not checked: the ``x-kubernetes-*``
extensions other than the two below (list and map types, CEL ``x-kubernetes-validations``:
assert those rules in the chart's own tests) and ``format`` (int32/int64 ranges).

Unknown fields: the API server prunes a field its structural schema does not declare, silently,
while jsonschema accepts it (the CRDs set no ``additionalProperties: false``). So a misspelt
field would pass both and vanish at apply. :func:`undeclared_fields` walks the object against
the schema and reports every such field, except under ``x-kubernetes-preserve-unknown-fields``
and in the objects' own ``metadata`` (ObjectMeta, which the API server validates itself).
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Any, NoReturn

import jsonschema
import pytest
import yaml

ENV_VAR = "AGENT_CRD_SCHEMAS"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = REPO_ROOT.parent / "shared" / "schemas"
HOW_TO_GET = (
    f"put the CustomResourceDefinition YAML files in {DEFAULT_DIR} (or point ${ENV_VAR} at a "
    f"folder of them): KEDA's from its release's keda-<version>-crds.yaml or config/crd/bases "
    f"in kedacore/keda; the VPA's from kubernetes/autoscaler's "
    f"vertical-pod-autoscaler/deploy/vpa-v1-crd-gen.yaml"
)


def schema_dir() -> Path:
    return Path(os.environ.get(ENV_VAR) or DEFAULT_DIR)


def _missing(reason: str) -> NoReturn:
    message = f"{reason}; {HOW_TO_GET}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@functools.cache
def _crds(directory: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Every CRD under ``directory`` by (group, kind)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(directory.rglob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                spec = doc["spec"]
                found[(spec["group"], spec["names"]["kind"])] = doc
    return found


def crd_schema(group: str, kind: str, version: str) -> dict[str, Any]:
    """The openAPIV3Schema of ``kind`` (``group``, ``version``), ready for Draft 7."""
    directory = schema_dir()
    if not directory.is_dir():
        _missing(f"no CRD schemas: {directory} does not exist")
    crd = _crds(directory).get((group, kind))
    if crd is None:
        _missing(f"no CustomResourceDefinition for {kind}.{group} under {directory}")
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            schema: dict[str, Any] = _translate(copy.deepcopy(served["schema"]["openAPIV3Schema"]))
            return schema
    versions = [served["name"] for served in crd["spec"]["versions"]]
    raise AssertionError(f"{kind}.{group} serves {versions}, not {version}")


def _translate(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_translate(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    translated = {key: _translate(value) for key, value in schema.items()}
    if translated.pop("nullable", False):
        if "type" in translated:
            translated["type"] = [translated["type"], "null"]
        if "enum" in translated:
            translated["enum"] = [*translated["enum"], None]
    if translated.get("x-kubernetes-int-or-string") and "anyOf" not in translated:
        translated["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return translated


def undeclared_fields(instance: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """The paths in ``instance`` that ``schema`` does not declare (the API server would prune
    them)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found: list[str] = []
    if isinstance(instance, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        object_meta = not path or schema.get("x-kubernetes-embedded-resource")
        for key, value in instance.items():
            where = f"{path}.{key}" if path else key
            if key == "metadata" and object_meta:
                continue
            if key in properties:
                found += undeclared_fields(value, properties[key], where)
            elif isinstance(extra, dict):
                found += undeclared_fields(value, extra, where)
            elif extra is not True:
                found.append(where)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(instance):
            found += undeclared_fields(item, schema["items"], f"{path}[{index}]")
    return found


def validate_against_crd(manifest: dict[str, Any], schema: dict[str, Any]) -> None:
    """Raise AssertionError listing every schema violation and every undeclared field."""
    validator = jsonschema.Draft7Validator(schema)
    problems = [
        f"{'.'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(manifest)
    ]
    problems += [
        f"{where}: not in the schema (pruned)" for where in undeclared_fields(manifest, schema)
    ]
    if problems:
        name = manifest.get("metadata", {}).get("name")
        raise AssertionError(f"{manifest.get('kind')} {name}: " + "; ".join(problems))
