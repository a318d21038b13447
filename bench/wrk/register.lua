-- POST /register (RFC 7591), the same JSON for every side: a confidential
-- web client. Static request: no per-request Lua.
wrk.method = "POST"
wrk.path = "/register"
wrk.headers["Host"] = "auth"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"redirect_uris":["http://127.0.0.1:9/cb"],"client_name":"bench",'
  .. '"token_endpoint_auth_method":"client_secret_post",'
  .. '"grant_types":["authorization_code","refresh_token"],"response_types":["code"]}'
