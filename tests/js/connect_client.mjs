// The MCP TypeScript SDK's stdio client spawning `mcp-connect <MCP_URL>`
// and calling tools through it. Prints one JSON line per step; exits 1 on the
// first failure.
//
// Environment: CONNECT_BIN (the mcp-connect binary), MCP_URL, CONNECT_ARGS (JSON
// array of extra arguments), TOKEN_STORE (connect's --token-store directory),
// SCENARIO (tools | sampling | refresh | revoke | stepup | stateless), SIGNIN_USER,
// SIGNIN_PASSWORD, OPENER_LOG, CONNECT_ENV (JSON object of extra environment for
// connect). connect runs with MCP_CONNECT_BROWSER="node connect_opener.mjs".
//
// `stateless` speaks the 2026-07-28 wire (no initialize; `_meta` on every request,
// `server/discover` first) through the SDK's stdio transport itself: the SDK's Client
// class (1.32) only knows the initialize handshake.
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport, getDefaultEnvironment } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { CookieJar, parseForm } from './browser.mjs';

const scenario = process.env.SCENARIO ?? 'tools';
const mcpUrl = process.env.MCP_URL;
const store = process.env.TOKEN_STORE;
const openerLog = process.env.OPENER_LOG;
const extra = JSON.parse(process.env.CONNECT_ARGS ?? '[]');

function report(step, more = {}) {
  console.log(JSON.stringify({ step, ...more }));
}
function fail(step, err) {
  console.log(JSON.stringify({ step, error: String(err?.stack ?? err) }));
  process.exit(1);
}
function saved() {
  const files = readdirSync(store).filter((f) => f.endsWith('.json'));
  if (files.length !== 1) throw new Error(`expected one token file in ${store}, found ${files}`);
  return JSON.parse(readFileSync(join(store, files[0]), 'utf8'));
}
function signIns() {
  if (!openerLog || !existsSync(openerLog)) return [];
  return readFileSync(openerLog, 'utf8').split('\n').filter(Boolean);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Drives the device page (RFC 8628 §3.3): code entry, sign-in, consent, until a page without a form.
async function approveDevice(uri, userCode) {
  const jar = new CookieJar();
  let url = `${uri}?user_code=${encodeURIComponent(userCode)}`;
  let init = { method: 'GET' };
  for (let i = 0; i < 20; i++) {
    const headers = new Headers(init.headers ?? {});
    const cookie = jar.header(url);
    if (cookie) headers.set('cookie', cookie);
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    jar.store(url, res);
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get('location'), url).toString();
      init = { method: 'GET' };
      continue;
    }
    const body = await res.text();
    if (res.status !== 200) throw new Error(`device step ${url} answered ${res.status}: ${body.slice(0, 300)}`);
    const form = parseForm(body, url);
    if (!form) return body;
    const params = new URLSearchParams();
    for (const f of form.fields) {
      if (!f.name || f.type === 'submit') continue;
      const creds = { user_code: userCode, username: process.env.SIGNIN_USER, text: process.env.SIGNIN_USER, password: process.env.SIGNIN_PASSWORD };
      params.append(f.name, creds[f.name] ?? (f.value ? f.value : creds[f.type]) ?? f.value);
    }
    const approve = form.buttons.find((b) => b.name && /approve|allow|accept|sign|continue|yes/i.test(`${b.value} ${b.text}`));
    if (approve) params.append(approve.name, approve.value);
    url = form.action.toString();
    init = { method: form.method.toUpperCase(), body: params.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } };
  }
  throw new Error('device approval did not finish');
}

const transport = new StdioClientTransport({
  command: process.env.CONNECT_BIN,
  args: [mcpUrl, '--token-store', store, ...extra],
  env: {
    ...getDefaultEnvironment(),
    MCP_CONNECT_BROWSER: `node ${join(process.cwd(), 'connect_opener.mjs')}`,
    SIGNIN_USER: process.env.SIGNIN_USER ?? '',
    SIGNIN_PASSWORD: process.env.SIGNIN_PASSWORD ?? '',
    OPENER_LOG: openerLog ?? '',
    ...JSON.parse(process.env.CONNECT_ENV ?? '{}'),
  },
  stderr: 'pipe',
});
let stderr = '';
let device;
transport.stderr.on('data', (d) => {
  stderr += d.toString();
  const m = stderr.match(/visit (\S+) and enter the code (\S+)/);
  if (m && !device) {
    device = approveDevice(m[1], m[2]).then(
      () => report('device_approved', { verification_uri: m[1] }),
      (e) => fail('device_approved', e),
    );
  }
});

if (scenario === 'stateless') {
  await stateless();
  process.exit(0);
}

// 2026-07-28: every request carries its version and capabilities in `_meta`; the
// transport (connect) must put the version in MCP-Protocol-Version itself.
async function stateless() {
  const META = {
    'io.modelcontextprotocol/protocolVersion': '2026-07-28',
    'io.modelcontextprotocol/clientCapabilities': {},
    'io.modelcontextprotocol/clientInfo': { name: 'connect-test', version: '1.0.0' },
  };
  const pending = new Map();
  let nextId = 1;
  transport.onmessage = (m) => {
    const p = pending.get(m.id);
    if (p && !('method' in m)) {
      pending.delete(m.id);
      p(m);
    }
  };
  transport.onerror = (e) => fail('transport', e);
  const request = (method, params) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => reject(new Error(`no answer to ${method}\nstderr:\n${stderr}`)), 60000);
      pending.set(id, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      transport.send({ jsonrpc: '2.0', id, method, params }).catch(reject);
    });
  try {
    await transport.start();
    // A server may answer -32601 (the real bridge relays it to an MCP server that lacks it).
    const discover = await request('server/discover', { _meta: META });
    report('discovered', { versions: discover.result?.supportedVersions ?? null, error: discover.error ?? null });
    const list = await request('tools/list', { _meta: META });
    if (!list.result) throw new Error(`tools/list: ${JSON.stringify(list)}`);
    report('tools', { names: list.result.tools.map((t) => t.name) });
    const call = await request('tools/call', { name: 'echo', arguments: { message: 'stateless hello' }, _meta: META });
    if (!JSON.stringify(call.result ?? call).includes('stateless hello')) throw new Error(`tools/call: ${JSON.stringify(call)}`);
    report('tool_call');
    // No `_meta` version on this one: connect sends the version server/discover settled on.
    const bare = await request('tools/list', {});
    report('bare_request', { ok: Boolean(bare.result), error: bare.error ?? null });
    await transport.close();
    report('done', { sign_ins: signIns(), stderr });
  } catch (e) {
    fail('error', `${e?.stack ?? e}\nstderr:\n${stderr}`);
  }
}

const client = new Client(
  { name: 'connect-test', version: '1.0.0' },
  { capabilities: scenario === 'sampling' ? { sampling: {} } : {} },
);
if (scenario === 'sampling') {
  // A server-to-client request relayed by connect; the answer goes back as a POST.
  client.setRequestHandler(CreateMessageRequestSchema, async () => ({
    model: 'connect-test-model',
    role: 'assistant',
    content: { type: 'text', text: 'sampled by the stdio client' },
  }));
}
async function echo(message) {
  const r = await client.callTool({ name: 'echo', arguments: { message } });
  const text = r.content?.map((c) => c.text).join('') ?? '';
  if (!text.includes(message)) throw new Error(`echo returned ${JSON.stringify(r)}`);
  return text;
}

try {
  await client.connect(transport);
  report('initialized', { server: client.getServerVersion()?.name });
} catch (e) {
  fail('initialized', `${e}\nstderr:\n${stderr}`);
}
try {
  const tools = await client.listTools();
  report('tools', { names: tools.tools.map((t) => t.name) });
  await echo('hello through connect');
  report('tool_call');
  if (scenario === 'sampling') {
    const r = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'hi', maxTokens: 10 } });
    if (!JSON.stringify(r).includes('sampled by the stdio client')) throw new Error(`sampling result: ${JSON.stringify(r)}`);
    report('sampled');
  }
  if (scenario === 'refresh') {
    const before = saved();
    // Let the token reach its refresh point (a fifth of its lifetime before expiry).
    const margin = Math.min(60, Math.floor(before.lifetime / 5));
    const due = (before.expires_at - margin) * 1000 + 50;
    while (Date.now() < due) await sleep(Math.min(250, due - Date.now()));
    await echo('after the refresh point');
    const after = saved();
    if (after.access_token === before.access_token) throw new Error('the access token did not change');
    if (after.refresh_token === before.refresh_token) throw new Error('the refresh token did not rotate');
    report('refreshed', { ahead: stderr.includes('ahead of expiry'), sign_ins: signIns().length });
  }
  if (scenario === 'revoke') {
    const before = saved();
    for (const token of [before.refresh_token, before.access_token]) {
      const res = await fetch(`${before.issuer}/revoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token, client_id: before.client_id }).toString(),
      });
      if (res.status !== 200) throw new Error(`revoke answered ${res.status}: ${await res.text()}`);
    }
    // Wait until the gateway refuses the old token (the revocation feed is asynchronous).
    for (let i = 0; ; i++) {
      const res = await fetch(mcpUrl, {
        method: 'POST',
        headers: { authorization: `Bearer ${before.access_token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
      });
      await res.arrayBuffer();
      if (res.status === 401) break;
      if (i > 200) throw new Error('the revoked token is still accepted');
      await sleep(25);
    }
    report('revoked');
    await echo('after revocation');
    const after = saved();
    report('reauthorized', { sign_ins: signIns().length, new_token: after.access_token !== before.access_token, refresh_refused: stderr.includes('refresh token was refused') });
  }
  if (scenario === 'stepup') {
    // 403 insufficient_scope: connect signs in again for the union of scopes and retries.
    const r = await client.callTool({ name: 'admin_echo', arguments: { message: 'with more scope' } });
    const text = r.content?.map((c) => c.text).join('') ?? '';
    if (!text.includes('with more scope')) throw new Error(`admin_echo returned ${JSON.stringify(r)}`);
    report('stepped_up', { sign_ins: signIns().length, scope: saved().scope });
    // A scope the server never grants: bounded, then the request is answered with the refusal.
    let refused = null;
    try {
      const r2 = await client.callTool({ name: 'never_echo', arguments: { message: 'x' } });
      refused = { unexpected: r2 };
    } catch (e) {
      refused = { code: e.code, message: String(e.message) };
    }
    report('refused', { ...refused, sign_ins: signIns().length });
    await echo('still fine after the refusal');
  }
  if (device) await device;
  await client.close();
  report('done', { sign_ins: signIns(), stderr });
} catch (e) {
  fail('error', `${e?.stack ?? e}\nstderr:\n${stderr}`);
}
