"""OME's CRDs as a real API server uses them: validation, pruning and admission webhooks."""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[4]
# OME's CRDs and samples live beside the checkout (../shared/ome); OME_SHARED_DIR overrides.
OME_DIR = Path(os.environ.get("OME_SHARED_DIR") or REPO.parent / "shared" / "ome")

Json = dict[str, Any]

Json = dict[str, Any]

_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_META_FIELDS = {"name", "generateName", "namespace", "labels", "annotations", "finalizers",
                "ownerReferences", "uid", "resourceVersion", "generation",
                "creationTimestamp", "deletionTimestamp", "managedFields"}
# The OME webhook's text-to-text scenario forms.
_SCENARIO = re.compile(r"^(D\(\d+,\d+\)|N\([\d.]+,[\d.]+\)/\([\d.]+,[\d.]+\)"
                       r"|U\(\d+,\d+\)(/\(\d+,\d+\))?)$")


class CrdSchemas:
    """The ``openAPIV3Schema`` of each OME kind, by plural, read from the CRD files."""

    def __init__(self, crd_dir: Path) -> None:
        self.kinds: dict[str, tuple[str, bool, Json]] = {}
        for path in sorted(crd_dir.glob("*.yaml")):
            crd = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
            names = crd["spec"]["names"]
            version = crd["spec"]["versions"][0]
            namespaced = crd["spec"]["scope"] == "Namespaced"
            self.kinds[names["plural"]] = (names["kind"], namespaced,
                                           version["schema"]["openAPIV3Schema"])

    def schema(self, plural: str) -> Json:
        return self.kinds[plural][2]

    def admit(self, plural: str, body: Json) -> tuple[Json, list[str], list[str]]:
        """What a real API server stores for ``body``: (pruned copy, pruned paths, errors)."""
        kind, namespaced, schema = self.kinds[plural]
        errors: list[str] = []
        if body.get("apiVersion") != "ome.io/v1beta1" or body.get("kind") != kind:
            errors.append(f"apiVersion/kind: expected ome.io/v1beta1 {kind}, got "
                          f"{body.get('apiVersion')} {body.get('kind')}")
        pruned: list[str] = []
        stored: Json = {"apiVersion": body.get("apiVersion"), "kind": body.get("kind")}
        stored["metadata"] = _prune_metadata(body.get("metadata") or {}, pruned)
        errors += _metadata_errors(stored["metadata"])
        for key, value in body.items():
            if key in ("apiVersion", "kind", "metadata"):
                continue
            if key == "status":  # the status subresource: ignored on create
                continue
            sub = schema.get("properties", {}).get(key)
            if sub is None:
                pruned.append(key)
                continue
            stored[key] = prune(value, sub, key, pruned)
        validator = jsonschema.Draft7Validator(
            {**schema, "properties": {k: v for k, v in schema["properties"].items()
                                      if k not in ("metadata", "status")}})
        for error in validator.iter_errors(stored):
            where = ".".join(str(p) for p in error.absolute_path) or "(root)"
            errors.append(f"{where}: {error.message[:300]}")
        return stored, pruned, errors

    def check_status(self, plural: str, status: Json) -> None:
        """Fail the test when the fake itself writes a status the CRD would not keep."""
        sub = self.schema(plural)["properties"]["status"]
        pruned: list[str] = []
        prune(status, sub, "status", pruned)
        errors = [e.message for e in jsonschema.Draft7Validator(sub).iter_errors(status)]
        assert not pruned and not errors, (plural, pruned, errors)


def prune(value: Any, schema: Json, path: str, pruned: list[str]) -> Any:
    """Structural-schema pruning: drop what the schema does not declare, record its path.

    Handles ``properties``, ``additionalProperties`` (maps), ``items``,
    ``x-kubernetes-preserve-unknown-fields`` (unknown fields kept) and int-or-string
    (``anyOf`` leaves, kept as they are). Nulls are dropped, as for non-nullable fields.
    """
    if isinstance(value, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        keep_unknown = schema.get("x-kubernetes-preserve-unknown-fields", False)
        out: Json = {}
        for key, item in value.items():
            where = f"{path}.{key}"
            if item is None and not schema.get("nullable"):
                pruned.append(f"{where} (null)")
                continue
            if properties is not None and key in properties:
                out[key] = prune(item, properties[key], where, pruned)
            elif isinstance(extra, dict):
                out[key] = prune(item, extra, where, pruned)
            elif keep_unknown or extra is True:
                out[key] = item
            else:
                pruned.append(where)
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(item, schema["items"], f"{path}[{i}]", pruned)
                for i, item in enumerate(value)]
    return value


def _prune_metadata(meta: Json, pruned: list[str]) -> Json:
    out: Json = {}
    for key, value in meta.items():
        if key in _META_FIELDS:
            out[key] = copy.deepcopy(value)
        else:
            pruned.append(f"metadata.{key}")
    return out


def _metadata_errors(meta: Json) -> list[str]:
    errors = []
    name = meta.get("name")
    if not isinstance(name, str) or len(name) > 253 or not _SUBDOMAIN.match(name):
        errors.append(f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 subdomain "
                      "is required")
    for field in ("labels", "annotations"):
        values = meta.get(field) or {}
        if not isinstance(values, dict):
            errors.append(f"metadata.{field}: must be a map of strings")
            continue
        for key, value in values.items():
            prefix, _, label = key.rpartition("/")
            if len(label) > 63 or not _LABEL_NAME.match(label) or (
                    prefix and not _SUBDOMAIN.match(prefix)):
                errors.append(f"metadata.{field}: Invalid key: {key!r}")
            if not isinstance(value, str):
                errors.append(f"metadata.{field}.{key}: Invalid value: {value!r}: must be a "
                              "string")
            elif field == "labels" and (len(value) > 63 or not _LABEL_VALUE.match(value)):
                errors.append(f"metadata.labels.{key}: Invalid value: {value!r}")
    return errors



def webhook_errors(plural: str, obj: Json) -> list[str]:
    """What OME's admission webhooks check beyond the schema."""
    name = str(obj["metadata"].get("name"))
    spec = obj.get("spec") or {}
    errors = []
    if plural == "inferenceservices" and (len(name) > 63 or not _DNS_LABEL.match(name)):
        errors.append(f"metadata.name: {name!r} must match [a-z]([-a-z0-9]*[a-z0-9])?")
    if plural == "benchmarkjobs":
        endpoint = spec.get("endpoint") or {}
        if ("inferenceService" in endpoint) == ("endpoint" in endpoint):
            errors.append("spec.endpoint: give exactly one of inferenceService, endpoint")
        scenarios = spec.get("trafficScenarios") or []
        errors += [f"spec.trafficScenarios: {s!r} is not valid for text-to-text"
                   for s in scenarios if not _SCENARIO.match(s)]
        for field in ("trafficScenarios", "numConcurrency"):
            values = spec.get(field) or []
            if len(values) != len(set(values)):
                errors.append(f"spec.{field}: duplicates")
    return errors


def iter_yaml(path: Path) -> Iterator[Json]:
    """The documents of a YAML file, skipping empty ones."""
    yield from (doc for doc in yaml.safe_load_all(path.read_text()) if doc)
