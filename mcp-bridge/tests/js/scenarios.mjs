// Drives the bridge with the official MCP TypeScript SDK client (StreamableHTTPClientTransport).
// Usage: node scenarios.mjs <bridge MCP URL> <scenario> [<scenario> ...]
// Env: SDK_DIR = path of @modelcontextprotocol/sdk; SCENARIO_ARGS = JSON object of extra inputs.
// Prints one JSON line per scenario: {"scenario": name, "ok": true, ...facts} and, for the
// kill scenario, a line "MARK started" when the Rust side must kill the child.
import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";

const sdk = process.env.SDK_DIR;
const load = (p) => import(pathToFileURL(`${sdk}/dist/esm/${p}`).href);
const { Client } = await load("client/index.js");
const { StreamableHTTPClientTransport } = await load("client/streamableHttp.js");
const { SSEClientTransport } = await load("client/sse.js");
const { CreateMessageRequestSchema, LoggingMessageNotificationSchema } = await load("types.js");

const [url, ...scenarios] = process.argv.slice(2);
const extra = JSON.parse(process.env.SCENARIO_ARGS || "{}");
const headers = {
  "X-User-Id": "user-42",
  "X-User-Name": "Ada",
  "X-User-Email": "ada@example.com",
  "X-Client-Id": "client-7",
  "X-Scopes": "mcp",
  // Must never reach the server nor be shown back.
  Authorization: "Bearer super-secret-token",
};

async function connect({ sampling = false, legacy = false } = {}) {
  const client = new Client(
    { name: "bridge-test", version: "1.0.0" },
    { capabilities: sampling ? { sampling: {} } : {} },
  );
  if (sampling) {
    client.setRequestHandler(CreateMessageRequestSchema, async (req) => ({
      model: "test-model",
      role: "assistant",
      content: { type: "text", text: `sampled: ${req.params.messages.length} message(s)` },
    }));
  }
  const transport = legacy
    ? new SSEClientTransport(new URL(url.replace(/\/mcp$/, "/sse")), {
        requestInit: { headers },
        eventSourceInit: { fetch: (u, init) => fetch(u, { ...init, headers: { ...init?.headers, ...headers } }) },
      })
    : new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  await client.connect(transport);
  return { client, transport };
}

const text = (r) => r.content.map((c) => c.text ?? "").join("");

async function rawPost(sessionId, body) {
  const res = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      "mcp-session-id": sessionId,
      "mcp-protocol-version": "2025-06-18",
    },
    body: JSON.stringify(body),
  });
  return res.status;
}

const run = {
  async echo() {
    const { client, transport } = await connect();
    const tools = (await client.listTools()).tools.map((t) => t.name).sort();
    assert.deepEqual(tools, ["echo", "request_context", "whoami"]);
    const r = await client.callTool({ name: "echo", arguments: { message: "hello bridge" } });
    assert.equal(text(r), "hello bridge");
    const who = (await client.callTool({ name: "whoami", arguments: {} })).structuredContent;
    assert.equal(who.user_id, "user-42");
    assert.equal(who.scopes, "mcp");
    const ctx = (await client.callTool({ name: "request_context", arguments: {} })).structuredContent;
    assert.equal(ctx.session_id, transport.sessionId);
    assert.ok(!JSON.stringify(ctx).includes("super-secret-token"), "token leaked into request_context");
    assert.ok(!("authorization" in ctx.headers));
    const sid = transport.sessionId;
    await transport.terminateSession();
    const after = await rawPost(sid, { jsonrpc: "2.0", id: 99, method: "tools/list" });
    assert.equal(after, 404);
    await client.close();
    return { tools, protocol_version: ctx.protocol_version };
  },

  async legacy() {
    const { client } = await connect({ legacy: true });
    const r = await client.callTool({ name: "echo", arguments: { message: "old transport" } });
    assert.match(text(r), /old transport/);
    await client.close();
    return {};
  },

  async everything() {
    const { client, transport } = await connect({ sampling: true });
    const tools = (await client.listTools()).tools.map((t) => t.name);
    assert.ok(tools.includes("echo") && tools.includes("trigger-sampling-request"), tools.join(","));
    const echo = await client.callTool({ name: "echo", arguments: { message: "hi" } });
    assert.match(text(echo), /hi/);
    const sum = await client.callTool({ name: "get-sum", arguments: { a: 2, b: 3 } });
    assert.match(text(sum), /5/);
    // Resources and prompts.
    const resources = (await client.listResources()).resources;
    assert.ok(resources.length > 0);
    const read = await client.readResource({ uri: resources[0].uri });
    assert.ok(read.contents.length > 0);
    const prompts = (await client.listPrompts()).prompts.map((p) => p.name);
    assert.ok(prompts.includes("simple-prompt"), prompts.join(","));
    const prompt = await client.getPrompt({ name: "simple-prompt" });
    assert.ok(prompt.messages.length > 0);
    // Progress notifications on the request's own stream.
    const progress = [];
    const long = await client.callTool(
      { name: "trigger-long-running-operation", arguments: { duration: 1, steps: 4 } },
      undefined,
      { onprogress: (p) => progress.push(p.progress) },
    );
    assert.match(text(long), /completed/i);
    assert.equal(progress.length, 4, `progress: ${progress}`);
    // Sampling: the server asks the client for an LLM completion mid-call.
    const sampled = await client.callTool({
      name: "trigger-sampling-request",
      arguments: { prompt: "say hi", maxTokens: 10 },
    });
    assert.match(text(sampled), /sampled: 1 message/);
    // Cancellation: abort a long call; the session stays usable.
    const ac = new AbortController();
    const started = Date.now();
    const cancelled = client
      .callTool(
        { name: "trigger-long-running-operation", arguments: { duration: 20, steps: 20 } },
        undefined,
        { signal: ac.signal, onprogress: () => ac.abort("test cancels") },
      )
      .then(() => "finished", (e) => `rejected: ${e}`);
    const outcome = await cancelled;
    assert.match(outcome, /rejected/);
    assert.ok(Date.now() - started < 5000);
    const again = await client.callTool({ name: "echo", arguments: { message: "after cancel" } });
    assert.match(text(again), /after cancel/);
    const sid = transport.sessionId;
    await transport.terminateSession();
    assert.equal(await rawPost(sid, { jsonrpc: "2.0", id: 5, method: "tools/list" }), 404);
    await client.close();
    return { tools: tools.length, progress: progress.length, resources: resources.length };
  },

  async stateless() {
    // A server without sessions: the SDK initializes, gets no Mcp-Session-Id, and every
    // later request goes without one.
    const { client, transport } = await connect();
    assert.equal(transport.sessionId, undefined);
    const tools = (await client.listTools()).tools.map((t) => t.name).sort();
    assert.deepEqual(tools, ["echo", "request_context", "whoami"]);
    const r = await client.callTool({ name: "echo", arguments: { message: "stateless" } });
    assert.equal(text(r), "stateless");
    const who = (await client.callTool({ name: "whoami", arguments: {} })).structuredContent;
    assert.equal(who.user_id, "user-42");
    const ctx = (await client.callTool({ name: "request_context", arguments: {} })).structuredContent;
    assert.equal(ctx.session_id, null);
    assert.ok(!JSON.stringify(ctx).includes("super-secret-token"));
    await client.close();
    return { session: transport.sessionId ?? null, version: ctx.protocol_version };
  },

  async polling() {
    // SSE polling (2025-11-25): the bridge ends the POST stream of a slow call after its
    // priming event; the SDK waits `retry` ms, resumes with GET + Last-Event-ID and gets
    // the progress and the result from the bridge's replay buffer. The SDK's own backoff is
    // set to ten minutes, so the call completes in time only if the server's retry is used.
    const seen = [];
    const recording = async (u, init) => {
      const res = await fetch(u, init);
      const h = new Headers(init?.headers);
      const entry = { method: init?.method ?? "GET", lastEventId: h.get("last-event-id"), status: res.status };
      if (entry.method === "POST" && String(init.body).includes('"tools/call"') && res.body) {
        const [mine, theirs] = res.body.tee();
        entry.body = new Response(mine).text();
        seen.push(entry);
        return new Response(theirs, { status: res.status, headers: res.headers });
      }
      seen.push(entry);
      return res;
    };
    const client = new Client({ name: "bridge-test", version: "1.0.0" }, { capabilities: {} });
    const transport = new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers },
      fetch: recording,
      reconnectionOptions: {
        initialReconnectionDelay: 600000,
        maxReconnectionDelay: 600000,
        reconnectionDelayGrowFactor: 1,
        maxRetries: 100,
      },
    });
    await client.connect(transport);
    const progress = [];
    const long = await client.callTool(
      { name: "trigger-long-running-operation", arguments: { duration: 1, steps: 3 } },
      undefined,
      { timeout: 120000, onprogress: (p) => progress.push(p.progress) },
    );
    assert.match(text(long), /completed/i);
    assert.equal(progress.length, 3, `progress: ${progress}`);
    const post = seen.find((e) => e.body);
    const body = await post.body;
    const primed = body.match(/^id: (\d+)_(\d+)\nretry: (\d+)\ndata: \n\n/);
    assert.ok(primed, `POST stream did not start with a priming event and retry: ${JSON.stringify(body)}`);
    assert.equal(Number(primed[3]), extra.retry_ms);
    assert.ok(!body.includes('"result"'), `the POST stream carried the result: ${body}`);
    const resumes = seen.filter((e) => e.method === "GET" && e.lastEventId?.startsWith(`${primed[1]}_`));
    assert.ok(resumes.length >= 1, `no resumption of stream ${primed[1]}: ${JSON.stringify(seen)}`);
    assert.ok(resumes.every((e) => e.status === 200), JSON.stringify(resumes));
    await transport.terminateSession();
    await client.close();
    return { resumes: resumes.length, progress: progress.length };
  },

  async kill() {
    // A child killed mid-request: the waiter gets an error promptly, the session is gone
    // (404), and a new client session works.
    const { client, transport } = await connect();
    let marked = false;
    const t0 = { at: 0 };
    const pending = client
      .callTool(
        { name: "trigger-long-running-operation", arguments: { duration: 60, steps: 60 } },
        undefined,
        {
          timeout: 120000,
          onprogress: () => {
            if (!marked) {
              marked = true;
              t0.at = Date.now();
              console.log("MARK started");
            }
          },
        },
      )
      .then(() => "finished", (e) => String(e));
    const outcome = await pending;
    const waited = Date.now() - t0.at;
    assert.match(outcome, /exited|-32000/, outcome);
    const sid = transport.sessionId;
    assert.equal(await rawPost(sid, { jsonrpc: "2.0", id: 5, method: "tools/list" }), 404);
    await client.close().catch(() => {});
    const fresh = await connect();
    const r = await fresh.client.callTool({ name: "echo", arguments: { message: "reborn" } });
    assert.match(text(r), /reborn/);
    await fresh.transport.terminateSession();
    await fresh.client.close();
    return { waited_ms: waited };
  },

  async memory() {
    const { client, transport } = await connect();
    await client.callTool({
      name: "create_entities",
      arguments: { entities: [{ name: "Ada", entityType: "person", observations: ["wrote programs"] }] },
    });
    const graph = await client.callTool({ name: "read_graph", arguments: {} });
    assert.match(text(graph), /Ada/);
    await transport.terminateSession();
    await client.close();
    return {};
  },

  async filesystem() {
    const { client, transport } = await connect();
    const dir = extra.dir;
    await client.callTool({ name: "write_file", arguments: { path: `${dir}/note.txt`, content: "bridged" } });
    const r = await client.callTool({ name: "read_text_file", arguments: { path: `${dir}/note.txt` } });
    assert.match(text(r), /bridged/);
    const listing = await client.callTool({ name: "list_directory", arguments: { path: dir } });
    assert.match(text(listing), /note\.txt/);
    await transport.terminateSession();
    await client.close();
    return {};
  },

  async thinking() {
    const { client, transport } = await connect();
    const r = await client.callTool({
      name: "sequentialthinking",
      arguments: { thought: "First step", thoughtNumber: 1, totalThoughts: 2, nextThoughtNeeded: true },
    });
    assert.match(text(r), /thoughtNumber/);
    await transport.terminateSession();
    await client.close();
    return {};
  },

  async time() {
    const { client, transport } = await connect();
    const r = await client.callTool({ name: "get_current_time", arguments: { timezone: "UTC" } });
    assert.match(text(r), /UTC/);
    await transport.terminateSession();
    await client.close();
    return {};
  },

  async fetch() {
    const { client, transport } = await connect();
    const tools = (await client.listTools()).tools.map((t) => t.name);
    assert.ok(tools.includes("fetch"), tools.join(","));
    // A fetch of the bridge's own health endpoint: a real round trip through the child.
    const health = url.replace(/\/mcp$/, "/health");
    const r = await client.callTool({ name: "fetch", arguments: { url: health, raw: true } });
    assert.match(text(r), /ok/);
    await transport.terminateSession();
    await client.close();
    return { tools };
  },

  async concurrent() {
    // Several sessions at once through one bridge (shared child in shared mode).
    const clients = await Promise.all([1, 2, 3, 4].map(() => connect()));
    const results = await Promise.all(
      clients.flatMap(({ client }, i) =>
        [0, 1, 2].map((j) =>
          client.callTool({ name: "echo", arguments: { message: `c${i}-${j}` } }).then(text),
        ),
      ),
    );
    results.forEach((r, k) => assert.match(r, new RegExp(`c${Math.floor(k / 3)}-${k % 3}`)));
    for (const { client, transport } of clients) {
      await transport.terminateSession();
      await client.close();
    }
    return { calls: results.length };
  },
};

for (const name of scenarios) {
  try {
    const facts = await run[name]();
    console.log(JSON.stringify({ scenario: name, ok: true, ...facts }));
  } catch (e) {
    console.log(JSON.stringify({ scenario: name, ok: false, error: String(e?.stack ?? e) }));
  }
}
process.exit(0);
