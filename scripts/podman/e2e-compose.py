"""Writes the compose file scripts/compose-e2e.sh runs: deploy/compose/compose.yml as
shipped, except that Traefik takes its certificate from a file (a local CA the e2e client
trusts) instead of Let's Encrypt, which cannot be reached from a test machine, that the
fetch services may fetch private addresses (the only pages they can reach here), and that
relative paths are made absolute so the file can live outside deploy/compose.

Traefik's file provider reads one directory (deploy/compose/traefik, the shared MCP
middlewares): the certificate's tls.yml has to be in it, so that directory is replaced by
CERT_DIR/dynamic, a copy of the shipped files (unchanged) with tls.yml beside them.

Usage: python e2e-compose.py SRC DST CERT_DIR
"""
import os
import shutil
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
]
dynamic_mount = "./traefik:/etc/traefik/dynamic:ro"
if dynamic_mount not in traefik["volumes"] or "--providers.file.directory=/etc/traefik/dynamic" not in traefik["command"]:
    sys.exit(f"e2e-compose.py: traefik no longer mounts {dynamic_mount} for its file provider: update this script")
dynamic = os.path.join(cert_dir, "dynamic")
shutil.copytree(os.path.join(base, "traefik"), dynamic)
shutil.move(os.path.join(cert_dir, "tls.yml"), os.path.join(dynamic, "tls.yml"))
traefik["volumes"] = [f"{dynamic}:/etc/traefik/dynamic:ro" if v == dynamic_mount else v for v in traefik["volumes"]]
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


# The fetch services have no public page to fetch from a test machine: both may read
# pages on the compose network for this run (their address filters refuse them otherwise).
if "fetchs" in doc["services"]:
    doc["services"]["fetchs"]["environment"]["FETCH_ALLOW_PRIVATE_ADDRESSES"] = "true"
if "fetch" in doc["services"]:
    env = doc["services"]["fetch"]["environment"]
    env["BRIDGE_COMMAND"] += " --allow-private-ips"


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
