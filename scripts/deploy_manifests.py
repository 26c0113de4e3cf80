"""Split rendered manifests for the offline checks.

kubernetes-validate knows only built-in kinds and reports a custom resource as a WARN, which the
deploy check counts as a failure. This script checks the custom resources the chart renders
(prometheus-operator ServiceMonitor/PrometheusRule, KEDA ScaledObject) against strict structural
schemas of the fields the CRDs define, and writes every other document to a file for
kubernetes-validate.

    python scripts/deploy_manifests.py RENDERED.yaml BUILTIN_OUT.yaml

Exit status 1 when a custom resource does not match. Needs pyyaml and jsonschema (both come
with kubernetes-validate).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

DURATION = {"type": "string", "pattern": r"^(0|([0-9]+(ms|s|m|h|d|w|y))+)$"}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": STRING_MAP,
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string"},
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
    },
}


def _resource(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {"apiVersion": {}, "kind": {}, "metadata": METADATA, "spec": spec},
    }


SERVICE_MONITOR = _resource({
    "type": "object",
    "additionalProperties": False,
    "required": ["selector", "endpoints"],
    "properties": {
        "selector": LABEL_SELECTOR,
        "namespaceSelector": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}},
        },
        "jobLabel": {"type": "string"},
        "targetLabels": {"type": "array", "items": {"type": "string"}},
        "podTargetLabels": {"type": "array", "items": {"type": "string"}},
        "sampleLimit": {"type": "integer", "minimum": 0},
        "endpoints": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "port": {"type": "string"},
                    "targetPort": {"type": ["string", "integer"]},
                    "path": {"type": "string", "pattern": "^/"},
                    "scheme": {"enum": ["http", "https"]},
                    "interval": DURATION,
                    "scrapeTimeout": DURATION,
                    "honorLabels": {"type": "boolean"},
                    "relabelings": {"type": "array"},
                    "metricRelabelings": {"type": "array"},
                },
            },
        },
    },
})

RULE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["expr"],
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
    "properties": {
        "alert": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
        "record": {"type": "string", "pattern": "^[a-zA-Z_:][a-zA-Z0-9_:]*$"},
        "expr": {"type": ["string", "integer"], "minLength": 1},
        "for": DURATION,
        "keep_firing_for": DURATION,
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
    },
}
PROMETHEUS_RULE = _resource({
    "type": "object",
    "additionalProperties": False,
    "required": ["groups"],
    "properties": {
        "groups": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "rules"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "interval": DURATION,
                    "limit": {"type": "integer"},
                    "partial_response_strategy": {"type": "string"},
                    "rules": {"type": "array", "minItems": 1, "items": RULE},
                },
            },
        }
    },
})

SCALED_OBJECT = _resource({
    "type": "object",
    "additionalProperties": False,
    "required": ["scaleTargetRef", "triggers"],
    "properties": {
        "scaleTargetRef": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "kind": {"type": "string"},
                "apiVersion": {"type": "string"},
                "envSourceContainerName": {"type": "string"},
            },
        },
        "pollingInterval": {"type": "integer", "minimum": 1},
        "cooldownPeriod": {"type": "integer", "minimum": 0},
        "initialCooldownPeriod": {"type": "integer", "minimum": 0},
        "idleReplicaCount": {"type": "integer", "minimum": 0},
        "minReplicaCount": {"type": "integer", "minimum": 0},
        "maxReplicaCount": {"type": "integer", "minimum": 1},
        "fallback": {"type": "object"},
        "advanced": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "restoreToOriginalReplicaCount": {"type": "boolean"},
                "scalingModifiers": {"type": "object"},
                "horizontalPodAutoscalerConfig": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"name": {"type": "string"}, "behavior": {"type": "object"}},
                },
            },
        },
        "triggers": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["type", "metadata"],
                "properties": {
                    "type": {"type": "string"},
                    "name": {"type": "string"},
                    "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                    "useCachedMetrics": {"type": "boolean"},
                    "metadata": STRING_MAP,
                    "authenticationRef": {"type": "object"},
                },
            },
        },
    },
})

CUSTOM_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE,
    ("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT,
}


def split(rendered: Path, builtin_out: Path) -> int:
    docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
    builtin, errors, custom = [], [], 0
    for doc in docs:
        key = (doc.get("apiVersion", ""), doc.get("kind", ""))
        schema = CUSTOM_SCHEMAS.get(key)
        if schema is None:
            builtin.append(doc)
            continue
        custom += 1
        name = f"{key[1]}/{doc.get('metadata', {}).get('name', '?')}"
        for err in jsonschema.Draft7Validator(schema).iter_errors(doc):
            path = "/".join(str(p) for p in err.absolute_path)
            errors.append(f"{rendered}: {name}: {path}: {err.message}")
    builtin_out.write_text(yaml.safe_dump_all(builtin, sort_keys=False))
    for line in errors:
        print(f"ERROR {line}", file=sys.stderr)
    print(f"{rendered.name}: {len(builtin)} built-in, {custom} custom resources, {len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(split(Path(sys.argv[1]), Path(sys.argv[2])))
