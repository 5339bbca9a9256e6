"""Derive the vendored KubeRay schemas from the CRDs (run by hand when KubeRay changes; tests only read the output).

    python tests/infra/schemas/derive_kuberay.py path/to/kuberay [COMMIT]

Reads `ray-operator/config/crd/bases/ray.io_{rayclusters,rayjobs}.yaml` (Apache-2.0, ray-project/kuberay) and writes
`kuberay_{raycluster,rayjob}_v1.json`: the `v1` openAPIV3Schema with two edits, both so that the file stays small
and the check stays strict:
- every pod template (`template`, `submitterPodTemplate`) becomes `{"type": "object", "x-pod-template": true}`;
  tests validate those against the Kubernetes PodTemplateSpec schema (kubernetes-validate) instead;
- objects that list `properties` and allow nothing else get `additionalProperties: false`, which is what
  `kubectl apply` (strict field validation, the default since Kubernetes 1.27) does with unknown fields.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

POD_TEMPLATES = {"template", "submitterPodTemplate"}


def trim(node, key: str | None = None):
    if isinstance(node, dict):
        if key in POD_TEMPLATES and node.get("type") == "object":
            return {"type": "object", "x-pod-template": True}
        out = {}
        for k, v in node.items():
            if k == "properties":
                out[k] = {name: trim(child, name) for name, child in v.items()}
            elif k == "description":
                continue
            else:
                out[k] = trim(v)
        if "properties" in out and "additionalProperties" not in out and not out.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [trim(v) for v in node]
    return node


def main(repo: str, commit: str = "unknown") -> None:
    here = Path(__file__).parent
    for kind, name in (("raycluster", "rayclusters"), ("rayjob", "rayjobs")):
        crd = yaml.safe_load((Path(repo) / f"ray-operator/config/crd/bases/ray.io_{name}.yaml").read_text())
        version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
        schema = trim(version["schema"]["openAPIV3Schema"])
        schema["$comment"] = f"derived from ray-project/kuberay@{commit} ray.io_{name}.yaml by derive_kuberay.py"
        (here / f"kuberay_{kind}_v1.json").write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
