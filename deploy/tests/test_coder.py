"""The Coder module (deploy/coder): it parses as HCL, its app's health check is the URL Kelpie
serves without a token, and its start script, rendered as `templatefile` renders it, is
valid bash that keeps the token off the command line."""

import pathlib
import re
import subprocess
import unittest

import hcl2

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODULE = ROOT / "deploy/coder"


def unquote(v):
    return v.strip('"') if isinstance(v, str) else v


def resources(doc, kind):
    """{name: body} of the resources of `kind` (python-hcl2 8 keeps the labels' quotes)."""
    out = {}
    for block in doc.get("resource", []):
        for k, named in block.items():
            if unquote(k) == kind:
                out.update({unquote(name): body for name, body in named.items()})
    return out


class CoderTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(MODULE / "main.tf") as f:
            cls.doc = hcl2.load(f)
        cls.variables = {unquote(k): v for block in cls.doc["variable"] for k, v in block.items()}

    def test_the_app_checks_the_health_url_kelpie_serves(self):
        app = resources(self.doc, "coder_app")["kelpie"]
        check = app["healthcheck"]
        check = check[0] if isinstance(check, list) else check
        self.assertEqual(unquote(check["url"]), "http://localhost:${var.port}/healthz")
        # Kelpie serves /healthz without the token (crates/kelpie-server/src/http.rs).
        http = (ROOT / "crates/kelpie-server/src/http.rs").read_text()
        m = re.search(r"Router::new\(\)\s*\.route\(\"(/healthz)\"", http)
        self.assertIsNotNone(m, "Kelpie's router no longer has /healthz outside the token check")
        self.assertEqual(unquote(app["url"]).split("?")[0], "http://localhost:${var.port}/")
        self.assertEqual(unquote(app["share"]), "${var.share}")
        self.assertIs(app["subdomain"], False, "path-based: the public URL the script passes is that path")
        self.assertEqual(unquote(self.variables["share"]["default"]), "owner")

    def test_the_script_starts_kelpie_on_start_with_the_token_from_a_file(self):
        script = resources(self.doc, "coder_script")["kelpie"]
        self.assertIs(script["run_on_start"], True)
        self.assertIn("templatefile", script["script"])
        self.assertIn("run.sh", script["script"])
        template = (MODULE / "run.sh").read_text()
        values = {"PORT": "6080", "TOKEN": "t0ken", "PUBLIC_URL": "https://coder.example.org/@a/w.main/apps/kelpie/",
                  "APP": "xterm", "SIZE": "1920x1080"}
        # templatefile: ${NAME} is Terraform's, $${ is a literal ${.
        rendered = re.sub(r"(?<!\$)\$\{([A-Z_]+)\}", lambda m: values[m.group(1)], template).replace("$${", "${")
        self.assertNotIn("${TOKEN}", rendered)
        run = subprocess.run(["bash", "-n"], input=rendered, text=True, capture_output=True)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn('--token-file "$dir/token"', rendered)
        self.assertIn("--listen \"127.0.0.1:6080\"", rendered)
        self.assertNotRegex(rendered, r"--token\s", "the token is not passed on the command line")
        self.assertEqual(rendered.count("t0ken"), 1, "the token appears once: written into the file")


if __name__ == "__main__":
    unittest.main()
