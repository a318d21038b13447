"""Obtain credentials from the running Python gateway auth service
(mcp-oauth-dynamicclient 0.2.0) for bench/run.sh.

Run with bench/.venv/bin/python and the SAME environment as the service
(JWT_*, BASE_DOMAIN, REDIS_URL, ...), so the package's own code signs with the
service's key and writes to the service's Redis.

The shortest honest path to a token:
1. POST /register on the live service -> client_id + client_secret (its own code).
2. The one step we cannot run here is the GitHub sign-in
   (/authorize -> github.com -> /callback -> code -> /token), since github.com
   is not reachable. Its only lasting effect is the refresh-token record that
   the authorization_code branch of /token writes through
   AuthManager.create_refresh_token(). We call that very method, with the
   same user_data shape that branch passes (user_id, username, client_id, scope),
   so the service finds `oauth:refresh:<token>` in Redis exactly as after a
   real sign-in.
3. POST /token grant_type=refresh_token on the live service -> an access token
   signed by the service itself (RS256 with JWT_PRIVATE_KEY_B64), whose jti it
   stores in Redis. GET /verify with it must answer 200 before we go on.

Writes JSON {client_id, client_secret, refresh_tokens[], access_token} to the
file named by argv[2] (mode 0600); prints nothing secret.
Usage: python_seed.py BASE_URL OUT_FILE FAMILIES
"""

import asyncio
import json
import os
import sys
import urllib.parse
import urllib.request

from mcp_oauth_dynamicclient.auth_authlib import AuthManager
from mcp_oauth_dynamicclient.config import Settings
from mcp_oauth_dynamicclient.redis_client import RedisManager


def post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.loads(r.read())


def main() -> None:
    base, out, families = sys.argv[1], sys.argv[2], int(sys.argv[3])

    # 1. Registration through the service's own /register.
    status, reg = post(
        f"{base}/register",
        json.dumps({"redirect_uris": ["http://127.0.0.1:9/cb"], "client_name": "bench"}).encode(),
        "application/json",
    )
    assert status == 201, f"/register answered {status}"
    client_id, client_secret = reg["client_id"], reg["client_secret"]

    # 2. The refresh-token records a GitHub sign-in would have left, written by
    #    the package's own AuthManager against the service's Redis.
    settings = Settings()
    auth = AuthManager(settings)
    redis = RedisManager(settings)

    async def seed() -> list[str]:
        await redis.initialize()
        try:
            return [
                await auth.create_refresh_token(
                    {"user_id": "4242", "username": "bench", "client_id": client_id, "scope": "openid profile email"},
                    redis.client,
                )
                for _ in range(families)
            ]
        finally:
            await redis.close()

    refresh_tokens = asyncio.run(seed())

    # 3. An access token issued by the live service's refresh grant.
    status, tok = post(
        f"{base}/token",
        urllib.parse.urlencode(
            {
                "grant_type": "refresh_token",
                "client_id": client_id,
                "client_secret": client_secret,
                "refresh_token": refresh_tokens[0],
            }
        ).encode(),
        "application/x-www-form-urlencoded",
    )
    assert status == 200, f"/token answered {status}"
    access_token = tok["access_token"]
    req = urllib.request.Request(f"{base}/verify", headers={"Authorization": f"Bearer {access_token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200, f"/verify answered {r.status}"

    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(
            {
                "client_id": client_id,
                "client_secret": client_secret,
                "refresh_tokens": refresh_tokens,
                "access_token": access_token,
            },
            f,
        )
    print(f"python gateway: registered a client, seeded {families} refresh tokens, /token and /verify answered 200")


if __name__ == "__main__":
    main()
