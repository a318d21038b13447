// The official MCP TypeScript SDK client against a bridge with a tool policy.
// Usage: node tool_policy.mjs <bridge MCP URL>
// Env: SDK_DIR = path of @modelcontextprotocol/sdk; SCENARIO_ARGS = JSON object:
//   user:          identity headers to send (as the verifier would set them)
//   calls:         tool names to call (arguments {message: "hi"})
//   legacy:        use the 2024-11-05 HTTP+SSE transport instead of Streamable HTTP
//   wait_for_tools: poll (new connection each time) until listTools gives exactly these
//   timeout_ms:    bound for that poll
//   mirror:        mirror each request's JSON-RPC method and tool / prompt name or
//                  resource URI into Mcp-Method / Mcp-Name, as MCP 2026-07-28
//                  clients do (this SDK version does not yet)
// Prints one JSON line: {"ok": true, "tools": [...], "calls": {name: {...}}, "attempts": n}.
import { pathToFileURL } from "node:url";

const sdk = process.env.SDK_DIR;
const load = (p) => import(pathToFileURL(`${sdk}/dist/esm/${p}`).href);
const { Client } = await load("client/index.js");
const { StreamableHTTPClientTransport } = await load("client/streamableHttp.js");
const { SSEClientTransport } = await load("client/sse.js");

const [url] = process.argv.slice(2);
const args = JSON.parse(process.env.SCENARIO_ARGS || "{}");
const headers = args.user || {};

const NAMED = { "tools/call": "name", "prompts/get": "name", "resources/read": "uri" };
async function mirrorFetch(u, init) {
  const h = new Headers(init?.headers);
  if (init?.method === "POST" && typeof init.body === "string") {
    const m = JSON.parse(init.body);
    if (!Array.isArray(m) && typeof m.method === "string") {
      h.set("Mcp-Method", m.method);
      const field = NAMED[m.method];
      if (field && typeof m.params?.[field] === "string") h.set("Mcp-Name", m.params[field]);
    }
  }
  return fetch(u, { ...init, headers: h });
}

async function connect() {
  const client = new Client({ name: "tool-policy-test", version: "1.0.0" }, { capabilities: {} });
  const transport = args.legacy
    ? new SSEClientTransport(new URL(url.replace(/\/mcp$/, "/sse")), {
        requestInit: { headers },
        eventSourceInit: { fetch: (u, init) => fetch(u, { ...init, headers: { ...init?.headers, ...headers } }) },
      })
    : new StreamableHTTPClientTransport(new URL(url), {
        requestInit: { headers },
        ...(args.mirror ? { fetch: mirrorFetch } : {}),
      });
  await client.connect(transport);
  return client;
}

async function listTools(client) {
  return (await client.listTools()).tools.map((t) => t.name).sort();
}

try {
  let attempts = 1;
  let client = await connect();
  let tools = await listTools(client);
  if (args.wait_for_tools) {
    const want = JSON.stringify([...args.wait_for_tools].sort());
    const deadline = Date.now() + (args.timeout_ms ?? 10000);
    while (JSON.stringify(tools) !== want) {
      if (Date.now() > deadline) throw new Error(`tools stayed ${JSON.stringify(tools)}, wanted ${want}`);
      await new Promise((r) => setTimeout(r, 100));
      await client.close();
      client = await connect();
      tools = await listTools(client);
      attempts += 1;
    }
  }
  const calls = {};
  for (const name of args.calls || []) {
    try {
      const r = await client.callTool({ name, arguments: { message: "hi" } });
      calls[name] = { ok: true, text: r.content.map((c) => c.text ?? "").join("") };
    } catch (e) {
      calls[name] = { ok: false, code: e.code, message: e.message };
    }
  }
  await client.close();
  console.log(JSON.stringify({ ok: true, tools, calls, attempts }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e?.stack || e) }));
}
process.exit(0);
