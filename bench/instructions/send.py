"""Sends exactly N requests of one kind over one keep-alive connection and
checks every answer (bench/instructions.sh). Standard library only.

    send.py verify HOST PORT N TOKEN
    send.py forged HOST PORT N TOKEN     (TOKEN's header and claims, a random
                                          signature each time; all refused)
    send.py register HOST PORT N
    send.py refresh HOST PORT N FAMILIES_FILE   (first line "client_id secret",
                                                then one refresh token per line;
                                                every answer's new token is used next)
"""
import http.client
import json
import random
import sys
import urllib.parse


def main() -> int:
    kind, host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    conn = http.client.HTTPConnection(host, port, timeout=600)
    want = {"verify": 200, "forged": 401, "register": 201, "refresh": 200}[kind]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    if kind in ("verify", "forged"):
        headers = {
            "X-Forwarded-Method": "POST",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "echo.example.com",
            "X-Forwarded-Uri": "/mcp",
            "X-Forwarded-For": "203.0.113.5",
            "Authorization": "Bearer " + sys.argv[5],
        }
    elif kind == "register":
        body = json.dumps({
            "client_name": "bench",
            "redirect_uris": ["https://app.example.com/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_post",
            "scope": "mcp",
        })
    else:
        lines = [l.strip() for l in open(sys.argv[5]) if l.strip()]
        client_id, secret = lines[0].split()
        tokens = lines[1:]
    for i in range(n):
        if kind == "verify":
            conn.request("GET", "/verify", headers=headers)
        elif kind == "forged":
            # 86 base64url characters (64 bytes), the last one's spare bits zero.
            sig = "".join(random.choices(alphabet, k=85)) + alphabet[16 * random.randrange(4)]
            signed = sys.argv[5].rsplit(".", 1)[0]
            conn.request("GET", "/verify", headers={**headers, "Authorization": f"Bearer {signed}.{sig}"})
        elif kind == "register":
            conn.request("POST", "/register", body=body, headers={"Content-Type": "application/json"})
        else:
            j = i % len(tokens)
            form = urllib.parse.urlencode({
                "grant_type": "refresh_token",
                "client_id": client_id,
                "client_secret": secret,
                "refresh_token": tokens[j],
            })
            conn.request("POST", "/token", body=form,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        data = r.read()
        if r.status != want:
            print(f"{kind}: request {i} answered {r.status}: {data[:200]!r}", file=sys.stderr)
            return 1
        if kind == "refresh":
            tokens[j] = json.loads(data)["refresh_token"]
    if kind == "refresh":
        # The next run starts from the rotated tokens (a used one is reuse).
        with open(sys.argv[5], "w") as f:
            f.write(f"{client_id} {secret}\n" + "\n".join(tokens) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
