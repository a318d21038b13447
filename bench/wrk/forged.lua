-- GET /verify with a token never seen before on every request: the header
-- and claims of a real token of ours (so every check before the signature
-- passes) and a random 64-byte signature, which does not verify.
--   TOKEN: a valid ES256 access token
local token = assert(os.getenv("TOKEN"), "TOKEN")
local signed = token:match("^(.*)%.[^.]*$")
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local chars = {}
for i = 1, 64 do chars[i] = alphabet:sub(i, i) end
local headers = {
  ["Host"] = "verifier",
  ["X-Forwarded-Method"] = "POST",
  ["X-Forwarded-Proto"] = "https",
  ["X-Forwarded-Host"] = "echo.example.com",
  ["X-Forwarded-Uri"] = "/mcp",
  ["X-Forwarded-For"] = "203.0.113.5",
}
local sig = {}

function init(args)
  -- Distinct per thread and per run.
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end

function request()
  -- 86 base64url characters: 64 bytes (r and s of P-256), with the last
  -- character's spare bits zero as base64url requires.
  for i = 1, 85 do sig[i] = chars[math.random(64)] end
  sig[86] = chars[1 + 16 * math.random(0, 3)]
  headers["Authorization"] = "Bearer " .. signed .. "." .. table.concat(sig)
  return wrk.format("GET", "/verify", headers)
end
