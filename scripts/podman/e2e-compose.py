"""Writes the compose file scripts/compose-e2e.sh runs: deploy/compose/compose.yml as
shipped, except that Traefik takes its certificate from a file (a local CA the e2e client
trusts) instead of Let's Encrypt, which cannot be reached from a test machine, and that
relative paths are made absolute so the file can live outside deploy/compose.

Usage: python e2e-compose.py SRC DST CERT_DIR
"""
import os
import sys

import yaml

src, dst, cert_dir = sys.argv[1:4]
base = os.path.dirname(os.path.abspath(src))
with open(src) as f:
    doc = yaml.safe_load(f)

traefik = doc["services"]["traefik"]
acme = [a for a in traefik["command"] if a.startswith("--certificatesResolvers.") or ".tls.certResolver=" in a]
if not acme:
    sys.exit("e2e-compose.py: no Let's Encrypt flags in the traefik command: update this script")
traefik["command"] = [a for a in traefik["command"] if a not in acme] + [
    "--entryPoints.websecure.http.tls=true",
    "--providers.file.filename=/etc/traefik/e2e/tls.yml",
]
if os.environ.get("E2E_TRAEFIK_DEBUG"):
    # Diagnosis: Traefik's debug log (provider events, filtered containers) and its API
    # on :8080, reachable on the compose network only (nothing publishes it).
    traefik["command"] = [a for a in traefik["command"] if not a.startswith("--log.level=")] + [
        "--log.level=DEBUG",
        "--api.insecure=true",
    ]
traefik["volumes"] = [v for v in traefik["volumes"] if not v.startswith("letsencrypt:")] + [
    f"{cert_dir}:/etc/traefik/e2e:ro"
]
del doc["volumes"]["letsencrypt"]


def absolute(path):
    return os.path.normpath(os.path.join(base, path)) if path.startswith((".", "..")) else path


for svc in doc["services"].values():
    build = svc.get("build")
    if isinstance(build, dict) and "context" in build:
        build["context"] = absolute(build["context"])
    if "volumes" in svc:
        svc["volumes"] = [absolute(v) for v in svc["volumes"]]

with open(dst, "w") as f:
    yaml.safe_dump(doc, f, sort_keys=False)
