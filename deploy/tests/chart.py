"""Renders the Kelpie chart (deploy/helm/kelpie) with Helm's own Go SDK, as `helm template`
does, through the helm-python-sdk wheel (it bundles Helm as a shared library)."""

import pathlib

import helm_python as helm
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy/helm/kelpie"
PLAIN = ROOT / "deploy/kubernetes/kelpie.yaml"
# The values deploy/kubernetes/kelpie.yaml is rendered with: the token from a Secret the
# site makes (a random one in a committed file would be the same for everyone).
PLAIN_VALUES = {"token": {"existingSecret": "kelpie-token"}}


def render(values, name="desk", namespace="research"):
    """The manifests of `values`: {template path: [documents]}, empty templates left out."""
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(values, name=name, namespace=namespace)
    docs = {}
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        parsed = [d for d in yaml.safe_load_all(text) if d]
        if parsed:
            docs[path] = parsed
    return docs


def validate_schema(values):
    """Raises helm's HelmValuesError when `values` break values.schema.json."""
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(values)


def plain_manifests():
    """deploy/kubernetes/kelpie.yaml as the chart renders it now."""
    docs = render(PLAIN_VALUES, name="kelpie", namespace="default")
    head = (
        "# Kelpie for sites without Helm: rendered from deploy/helm/kelpie with\n"
        "#   token.existingSecret=kelpie-token (release `kelpie`, namespace `default`).\n"
        "# Make the token's Secret first, then apply:\n"
        "#   kubectl create secret generic kelpie-token --from-literal=token=$(openssl rand -hex 16)\n"
        "#   kubectl apply -f deploy/kubernetes/kelpie.yaml\n"
        "# Do not edit: `target/deploy-venv/bin/python deploy/tests/chart.py` writes it again\n"
        "# (make test checks that it matches the chart).\n"
    )
    body = "".join(
        f"---\n# Source: {path}\n" + yaml.safe_dump(d, sort_keys=False)
        for path, ds in docs.items()
        for d in ds
    )
    return head + body


if __name__ == "__main__":
    PLAIN.parent.mkdir(exist_ok=True)
    PLAIN.write_text(plain_manifests())
    print(f"wrote {PLAIN.relative_to(ROOT)}")
