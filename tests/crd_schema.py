"""Validate objects against the OpenAPI schema of a vendored CustomResourceDefinition (tests/schemas/), offline.

The schema is made strict the way the API server treats a `kubectl apply` or a client's create with
fieldValidation=Strict: a property that the schema does not declare is an error, except below
`x-kubernetes-preserve-unknown-fields`. CEL rules (`x-kubernetes-validations`) and defaulting are the API server's
and are not evaluated here.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import yaml

SCHEMAS = Path(__file__).resolve().parent / "schemas"
TRAINER = SCHEMAS / "kubeflow-trainer"
# The Kubeflow Trainer releases whose CRDs are vendored (one folder each); the objects must validate against all.
TRAINER_VERSIONS = ("v2.2.0", "v2.3.0")


def _strict(node):
    if isinstance(node, dict):
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        for value in node:
            _strict(value)
    return node


@cache
def crd_schema(path: Path, version: str = "v1alpha1") -> dict:
    """The strict openAPIV3Schema of ``version`` in the CRD file ``path``."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = next(doc for doc in yaml.load_all(path.read_text(), Loader=loader) if doc)
    served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    return _strict(copy.deepcopy(served["schema"]["openAPIV3Schema"]))


def schema_errors(obj: dict, path: Path) -> list[str]:
    """Every violation of the CRD's schema by ``obj``, as ``"<json path>: <message>"`` (empty: valid)."""
    import jsonschema

    validator = jsonschema.Draft7Validator(crd_schema(path))
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
            for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))]


def _errors_in_every_version(obj: dict, crd_file: str) -> list[str]:
    return [f"Trainer {version}: {error}" for version in TRAINER_VERSIONS
            for error in schema_errors(obj, TRAINER / version / crd_file)]


def trainjob_errors(obj: dict) -> list[str]:
    """Violations of the TrainJob CRD of any supported Trainer release, each prefixed with the release."""
    return _errors_in_every_version(obj, "trainer.kubeflow.org_trainjobs.yaml")


def runtime_errors(obj: dict) -> list[str]:
    """Violations of the ClusterTrainingRuntime CRD of any supported Trainer release, each prefixed with the release."""
    return _errors_in_every_version(obj, "trainer.kubeflow.org_clustertrainingruntimes.yaml")
