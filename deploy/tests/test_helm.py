"""The Helm chart: it renders with Helm for each way browsers reach the desktop, every
manifest passes the Kubernetes 1.30 schemas strictly (kubernetes-validate --strict), the
values schema refuses bad values, and deploy/kubernetes/kelpie.yaml is what the chart renders."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

import yaml
from helm_python import HelmError

sys.path.insert(0, os.path.dirname(__file__))
import chart  # noqa: E402

KUBE_VERSION = "1.30.0"
VALIDATE = os.path.join(os.path.dirname(sys.executable), "kubernetes-validate")

VALUE_SETS = {
    "hostPort (defaults)": {},
    "websocket behind a TLS ingress": {
        "network": {"mode": "websocket"},
        "ingress": {"enabled": True, "className": "nginx", "host": "desk.example.org",
                    "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "3600"}},
        "networkPolicy": {"httpFrom": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]},
    },
    "turn relay": {
        "network": {"mode": "turn", "udpPort": 40000},
        "turn": {"servers": ["turn:turn.example.org:3478?transport=udp"], "existingSecret": "coturn",
                 "relayOnly": True},
        "ingress": {"enabled": True, "host": "desk.example.org", "path": "/alice/"},
    },
    "gpu, metrics, site token": {
        "gpu": {"enabled": True, "runtimeClassName": "nvidia"},
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "token": {"existingSecret": "alice-token"},
        "network": {"publicIP": "203.0.113.7"},
        "app": "vglrun -d egl paraview",
        "extraEnv": [{"name": "KELPIE_FPS", "value": "30"}],
    },
}

# Custom resources the Kubernetes schemas do not know: checked by hand below.
CUSTOM = {"ServiceMonitor"}


def kinds(docs):
    return {d["kind"]: d for ds in docs.values() for d in ds}


def env_of(deployment):
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


class ChartTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rendered = {name: chart.render(values) for name, values in VALUE_SETS.items()}

    def test_every_manifest_validates_against_kubernetes_1_30_strictly(self):
        with tempfile.TemporaryDirectory() as tmp:
            files = []
            for i, (name, docs) in enumerate(self.rendered.items()):
                for j, d in enumerate(x for ds in docs.values() for x in ds if x["kind"] not in CUSTOM):
                    path = os.path.join(tmp, f"{i}-{j}-{d['kind']}.yaml")
                    with open(path, "w") as f:
                        yaml.safe_dump(d, f)
                    files.append(path)
            plain = [d for d in yaml.safe_load_all(chart.PLAIN.read_text()) if d]
            for j, d in enumerate(plain):
                path = os.path.join(tmp, f"plain-{j}-{d['kind']}.yaml")
                with open(path, "w") as f:
                    yaml.safe_dump(d, f)
                files.append(path)
            run = subprocess.run([VALIDATE, "--strict", "-k", KUBE_VERSION, *files], capture_output=True, text=True)
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
            # Each file was checked against a schema (a kind it did not know would warn).
            self.assertNotIn("WARN", run.stdout + run.stderr)
            self.assertEqual(run.stdout.count(" passed for resource "), len(files), run.stdout)

    def test_a_manifest_that_breaks_the_schema_is_refused(self):
        # The check above can fail: a field Kubernetes 1.30 does not have.
        d = kinds(self.rendered["hostPort (defaults)"])["Deployment"]
        d = json.loads(json.dumps(d))
        d["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/healthz"
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            yaml.safe_dump(d, f)
            f.flush()
            run = subprocess.run([VALIDATE, "--strict", "-k", KUBE_VERSION, f.name], capture_output=True, text=True)
        self.assertNotEqual(run.returncode, 0, run.stdout)

    def test_host_port_mode_puts_the_node_address_in_the_candidates(self):
        k = kinds(self.rendered["hostPort (defaults)"])
        env = env_of(k["Deployment"])
        self.assertEqual(env["KELPIE_PUBLIC_IP"], {"fieldRef": {"fieldPath": "status.hostIP"}})
        self.assertNotIn("KELPIE_TRANSPORT", env)
        ports = k["Deployment"]["spec"]["template"]["spec"]["containers"][0]["ports"]
        self.assertIn({"name": "webrtc", "containerPort": 8080, "protocol": "UDP", "hostPort": 8080}, ports)
        self.assertIn("Secret", k, "a token Secret is made when none is named")
        self.assertEqual(len(k["Secret"]["data"]["token"]), 44, "32 random characters, base64")

    def test_websocket_mode_opens_no_udp_and_serves_through_the_tls_ingress(self):
        k = kinds(self.rendered["websocket behind a TLS ingress"])
        env = env_of(k["Deployment"])
        self.assertEqual(env["KELPIE_TRANSPORT"], "websocket")
        self.assertEqual(env["KELPIE_PUBLIC_URL"], "https://desk.example.org/")
        ports = k["Deployment"]["spec"]["template"]["spec"]["containers"][0]["ports"]
        self.assertEqual([p["protocol"] for p in ports], ["TCP"])
        self.assertEqual(k["Ingress"]["spec"]["tls"], [{"hosts": ["desk.example.org"], "secretName": "desk-kelpie-tls"}])
        rules = k["NetworkPolicy"]["spec"]["ingress"]
        self.assertEqual(len(rules), 1, "no UDP rule")
        self.assertIn("from", rules[0])

    def test_turn_mode_hands_out_the_relay_and_its_secret(self):
        env = env_of(kinds(self.rendered["turn relay"])["Deployment"])
        self.assertEqual(env["KELPIE_ICE_SERVER"], "turn:turn.example.org:3478?transport=udp")
        self.assertEqual(env["KELPIE_TURN_SECRET"], {"secretKeyRef": {"name": "coturn", "key": "turn-secret"}})
        self.assertEqual(env["KELPIE_ICE_TRANSPORT"], "relay")
        self.assertEqual(env["KELPIE_PUBLIC_URL"], "https://desk.example.org/alice/")
        self.assertNotIn("KELPIE_PUBLIC_IP", env)

    def test_gpu_probes_shm_token_file_and_service_monitor(self):
        k = kinds(self.rendered["gpu, metrics, site token"])
        spec = k["Deployment"]["spec"]["template"]["spec"]
        c = spec["containers"][0]
        self.assertEqual(c["resources"]["limits"]["nvidia.com/gpu"], "1")
        self.assertEqual(spec["runtimeClassName"], "nvidia")
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            self.assertEqual(c[probe]["httpGet"], {"path": "/healthz", "port": "http"})
        shm = next(v for v in spec["volumes"] if v["name"] == "shm")
        self.assertEqual(shm["emptyDir"]["medium"], "Memory")
        env = env_of(k["Deployment"])
        self.assertEqual(env["KELPIE_PUBLIC_IP"], "203.0.113.7")
        self.assertEqual(env["KELPIE_TOKEN_FILE"], "/run/kelpie/token/token")
        self.assertNotIn("KELPIE_TOKEN", env, "the token never goes into the environment")
        self.assertNotIn("Secret", k, "the site's Secret is used, none is made")
        token = next(v for v in spec["volumes"] if v["name"] == "token")
        self.assertEqual(token["secret"]["secretName"], "alice-token")
        sm = k["ServiceMonitor"]
        self.assertEqual(sm["apiVersion"], "monitoring.coreos.com/v1")
        self.assertEqual(sm["metadata"]["labels"]["release"], "prometheus")
        self.assertEqual(sm["spec"]["endpoints"], [{
            "port": "http", "path": "/metrics", "interval": "30s",
            "bearerTokenSecret": {"name": "alice-token", "key": "token"},
        }])
        self.assertEqual(sm["spec"]["selector"]["matchLabels"],
                         k["Deployment"]["spec"]["selector"]["matchLabels"])

    def test_the_values_schema_refuses_bad_values(self):
        for values in VALUE_SETS.values():
            chart.validate_schema(values)
        bad = {
            "an unknown network mode": {"network": {"mode": "udp"}},
            "a size that is not WxH": {"size": "big"},
            "a port out of range": {"network": {"udpPort": 70000}},
            "a variable that is not Kelpie's": {"extraEnv": [{"name": "LD_PRELOAD", "value": "/tmp/x.so"}]},
            "turn without servers": {"network": {"mode": "turn"}, "turn": {"existingSecret": "coturn"}},
            "a misspelt key": {"ingres": {"enabled": True}},
            "a GPU count as text": {"gpu": {"enabled": True, "count": "one"}},
        }
        for why, values in bad.items():
            with self.subTest(why):
                with self.assertRaises(HelmError):
                    chart.validate_schema(values)
                with self.assertRaises(HelmError, msg="helm refuses to render it too"):
                    chart.render(values)

    def test_helm_lint_finds_no_warning(self):
        import helm_python

        report = helm_python.lint(str(chart.CHART), strict=True, kube_version="v" + KUBE_VERSION)
        self.assertEqual(report["errors"], [])
        # Severity 2 is a warning, 3 an error; 1 (information, e.g. "icon is recommended") is fine.
        self.assertEqual([m for m in report["messages"] if m["severity"] >= 2], [], report)

    def test_the_plain_manifests_are_the_chart_rendered(self):
        self.assertEqual(
            chart.PLAIN.read_text(), chart.plain_manifests(),
            "deploy/kubernetes/kelpie.yaml is stale: run target/deploy-venv/bin/python deploy/tests/chart.py",
        )


if __name__ == "__main__":
    unittest.main()
