-- GET /verify as Traefik's forwardAuth sends it: X-Forwarded-* and the
-- client's Authorization. One static request (no per-request Lua), so the
-- load generator costs as little as wrk can make it.
--   TOKEN: the bearer token (the same for every request)
wrk.method = "GET"
wrk.path = "/verify"
wrk.headers["Host"] = "verifier"
wrk.headers["X-Forwarded-Method"] = "POST"
wrk.headers["X-Forwarded-Proto"] = "https"
wrk.headers["X-Forwarded-Host"] = "echo.example.com"
wrk.headers["X-Forwarded-Uri"] = "/mcp"
wrk.headers["X-Forwarded-For"] = "203.0.113.5"
wrk.headers["Authorization"] = "Bearer " .. assert(os.getenv("TOKEN"), "TOKEN")
