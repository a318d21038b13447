-- POST /token grant_type=refresh_token, client_secret_post.
--   FAMILIES: a file whose first line is "client_id client_secret" and each
--             further line one refresh token (one family each)
--   ROTATE=1: every answer carries the family's next refresh token (ours);
--             it goes back in the queue and the token just used is never
--             sent again. ROTATE=0: the tokens are used round robin (the
--             Python service does not rotate; the anchors ignore the body).
-- There are more families than connections, so a connection always finds a
-- token whose previous answer has come back.
local path = assert(os.getenv("FAMILIES"), "FAMILIES")
local rotate = os.getenv("ROTATE") == "1"
local queue, head, tail = {}, 1, 0
local client_id, client_secret

local function enc(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

local f = assert(io.open(path, "r"))
for line in f:lines() do
  if not client_id then
    client_id, client_secret = line:match("^(%S+)%s+(%S+)$")
  elseif #line > 0 then
    tail = tail + 1
    queue[tail] = line
  end
end
f:close()
local prefix = "grant_type=refresh_token&client_id=" .. enc(client_id)
  .. "&client_secret=" .. enc(client_secret) .. "&refresh_token="
local head_ = "POST /token HTTP/1.1\r\nHost: auth\r\n"
  .. "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: "

function request()
  local token
  if head <= tail then
    token = queue[head]
    queue[head] = nil
    head = head + 1
    if not rotate then
      tail = tail + 1
      queue[tail] = token
    end
  else
    -- Every family is in flight or lost: an answer that is not 2xx says so.
    token = "queue-empty"
  end
  -- Refresh tokens are base64url and dots: escaped only if they ever are not.
  if token:find("[^%w%-%._~]") then token = enc(token) end
  local body = prefix .. token
  return head_ .. #body .. "\r\n\r\n" .. body
end

if rotate then
  function response(status, headers, body)
    if status == 200 then
      local next_token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
      if next_token then
        tail = tail + 1
        queue[tail] = next_token
      end
    end
  end
end
