"""Checks the Grafana dashboard against a live /metrics: every metric a panel queries must be
a sample name there (parsed with prometheus-client, as Prometheus parses it).
  check_dashboard.py DASHBOARD.json METRICS.txt
Prints JSON: {"queried": [...], "missing": [...], "values": {sample with labels: value}} for
the viewer report metrics; exits 1 when some are missing."""

import json
import re
import sys

from prometheus_client.parser import text_string_to_metric_families


def queried(dashboard):
    names = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            names.update(re.findall(r"\bkelpie_[a-z0-9_]+", target["expr"]))
    for var in dashboard.get("templating", {}).get("list", []):
        q = var.get("query")
        if isinstance(q, dict):
            names.update(re.findall(r"\bkelpie_[a-z0-9_]+", q.get("query", "")))
    return sorted(names)


def main():
    with open(sys.argv[1]) as f:
        dashboard = json.load(f)
    with open(sys.argv[2]) as f:
        families = list(text_string_to_metric_families(f.read()))
    samples = {s.name for fam in families for s in fam.samples}
    names = queried(dashboard)
    missing = [n for n in names if n not in samples]
    values = {
        s.name + json.dumps(s.labels, sort_keys=True): s.value
        for fam in families
        for s in fam.samples
        if s.name.startswith("kelpie_viewer_") and (s.name.endswith("_count") or s.name.endswith("_total"))
    }
    print(json.dumps({"queried": names, "missing": missing, "values": values}))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
