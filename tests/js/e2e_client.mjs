// The whole path as a real MCP client walks it, with the official TypeScript
// SDK: start with only the MCP URL, get 401, discover (RFC 9728 → RFC 8414),
// register (RFC 7591), sign in through the server's pages, exchange the code
// with PKCE, initialize, list and call tools, refresh the token, then revoke
// and check the revoked token is refused.
//
// Environment: MCP_URL, SIGNIN_USER, SIGNIN_PASSWORD, TOOL (default echo),
// TOOL_ARGS (JSON, default {"message":"hello"}), EXPECT (substring of the tool
// result), CLIENT_METADATA_URL (optional: use this Client ID Metadata Document
// URL as the client_id instead of registering), REVOKED_CHECKS (default 1: how
// many requests in a row must refuse the revoked token). Prints one JSON line per step;
// exits 1 on the first failure.
//
// CLIENT_METADATA_URL: an https URL goes through the SDK's own
// `clientMetadataUrl` provider property (the SDK uses it when the server
// advertises client_id_metadata_document_supported). The SDK refuses any other
// scheme, so an http URL (a loopback test server) is given to the SDK as the
// client's stored information instead, as for a pre-registered client; the
// authorization server then resolves the document exactly the same way.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError, refreshAuthorization, discoverAuthorizationServerMetadata } from '@modelcontextprotocol/sdk/client/auth.js';
import { signIn, CookieJar } from './browser.mjs';
import { MemoryProvider } from './memory_provider.mjs';

const mcpUrl = new URL(process.env.MCP_URL);
const user = process.env.SIGNIN_USER;
const password = process.env.SIGNIN_PASSWORD;
const tool = process.env.TOOL ?? 'echo';
const toolArgs = JSON.parse(process.env.TOOL_ARGS ?? '{"message":"hello through the gateway"}');
const expect = process.env.EXPECT ?? 'hello through the gateway';
const redirectUri = 'http://127.0.0.1:33418/callback';
const clientMetadataUrl = process.env.CLIENT_METADATA_URL || undefined;
const metadataViaSdk = clientMetadataUrl?.startsWith('https://') ?? false;
const revokedChecks = Number(process.env.REVOKED_CHECKS ?? 1);
// COOKIE_JAR_FILE: keep the browser's cookies across runs (a returning user's browser).
const cookieJarFile = process.env.COOKIE_JAR_FILE || undefined;
async function browserJar() {
  return cookieJarFile ? CookieJar.load(cookieJarFile) : new CookieJar();
}
async function keepJar(jar) {
  if (cookieJarFile) await jar.save(cookieJarFile);
}

function report(step, extra = {}) {
  console.log(JSON.stringify({ step, ...extra }));
}
function fail(step, err) {
  console.log(JSON.stringify({ step, error: String(err?.stack ?? err) }));
  process.exit(1);
}


const provider = new MemoryProvider({
  redirectUri,
  clientName: 'gateway e2e client',
  metadata: { software_id: 'gateway-e2e', software_version: '1.0.0' },
  clientMetadataUrl: metadataViaSdk ? clientMetadataUrl : undefined,
  client: clientMetadataUrl && !metadataViaSdk ? { client_id: clientMetadataUrl } : undefined,
});

async function connect() {
  const client = new Client({ name: 'gateway-e2e', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
  await client.connect(transport);
  return { client, transport };
}

// 1. Unauthenticated: the endpoint must challenge with resource_metadata.
try {
  const res = await fetch(mcpUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'probe', version: '0' } } }),
  });
  const www = res.headers.get('www-authenticate') ?? '';
  if (res.status !== 401 || !/^Bearer resource_metadata="[^"]+"/.test(www)) throw new Error(`expected 401 with resource_metadata, got ${res.status} ${www}`);
  report('challenge', { status: res.status, www_authenticate: www });
} catch (e) { fail('challenge', e); }

// 2. The SDK discovers, registers and starts authorization; we sign in as the browser.
let transport;
try {
  const first = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
  const client = new Client({ name: 'gateway-e2e', version: '1.0.0' });
  try {
    await client.connect(first);
    throw new Error('connect succeeded without signing in');
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
  }
  if (!provider.authorizationUrl) throw new Error('SDK never asked to open the authorization URL');
  const clientId = provider.clientInformation()?.client_id;
  if (clientMetadataUrl && clientId !== clientMetadataUrl) throw new Error(`client_id ${clientId} is not the metadata document URL`);
  if (new URL(provider.authorizationUrl).searchParams.get('client_id') !== clientId) throw new Error('authorization URL carries another client_id');
  report('registered', {
    client_id: clientId,
    via: clientMetadataUrl ? (metadataViaSdk ? 'metadata_document_sdk' : 'metadata_document_preset') : 'registration',
  });
  const jar = await browserJar();
  const back = await signIn(provider.authorizationUrl, redirectUri, { username: user, password, text: user }, { jar });
  await keepJar(jar);
  const code = back.searchParams.get('code');
  if (!code) throw new Error(`no code in ${back}: ${back.searchParams.get('error')} ${back.searchParams.get('error_description')}`);
  if (!back.searchParams.get('iss')) throw new Error('authorization response lacks iss (RFC 9207)');
  await first.finishAuth(code);
  if (!provider.tokens()?.access_token) throw new Error('no access token after finishAuth');
  if (!provider.tokens()?.refresh_token) throw new Error('no refresh token');
  if (!(provider.tokens()?.expires_in > 0)) throw new Error('no expires_in');
  report('token', { scope: provider.tokens().scope, expires_in: provider.tokens().expires_in });
} catch (e) { fail('authorize', e); }

// 3. Initialize, list, call.
let client;
try {
  ({ client, transport } = await connect());
  const tools = await client.listTools();
  const names = tools.tools.map((t) => t.name);
  if (!names.includes(tool)) throw new Error(`tool ${tool} not in ${names}`);
  const result = await client.callTool({ name: tool, arguments: toolArgs });
  const text = JSON.stringify(result.content);
  if (!text.includes(expect)) throw new Error(`tool result lacks ${expect}: ${text}`);
  report('tool_call', { tools: names.length, session: transport.sessionId ?? null });
} catch (e) { fail('tool_call', e); }

// 4. Refresh: a rotated refresh token gives a new access token that works.
let metadata;
try {
  const prmUrl = (await fetch(mcpUrl, { method: 'POST' })).headers.get('www-authenticate').match(/resource_metadata="([^"]+)"/)[1];
  const prm = await (await fetch(prmUrl)).json();
  metadata = await discoverAuthorizationServerMetadata(prm.authorization_servers[0]);
  const old = provider.tokens();
  const fresh = await refreshAuthorization(prm.authorization_servers[0], {
    metadata,
    clientInformation: provider.clientInformation(),
    refreshToken: old.refresh_token,
    resource: new URL(prm.resource),
  });
  if (fresh.refresh_token === old.refresh_token) throw new Error('refresh token was not rotated');
  provider.saveTokens(fresh);
  await client.close();
  ({ client, transport } = await connect());
  const result = await client.callTool({ name: tool, arguments: toolArgs });
  if (!JSON.stringify(result.content).includes(expect)) throw new Error('call after refresh failed');
  // The rotated-out refresh token must now be refused (and revokes its family).
  const reuse = await fetch(metadata.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: old.refresh_token, client_id: provider.clientInformation().client_id }),
  });
  const reuseBody = await reuse.json();
  if (reuse.status !== 400 || reuseBody.error !== 'invalid_grant') throw new Error(`reused refresh token: ${reuse.status} ${JSON.stringify(reuseBody)}`);
  report('refresh', { rotated: true, reuse_refused: true });
} catch (e) { fail('refresh', e); }

// 5. Revocation: after reuse detection revoked the family, get a new grant by
//    signing in again, then revoke its access token and see it refused.
try {
  await client.close().catch(() => {});
  provider.saveTokens(undefined);
  provider.authorizationUrl = undefined;
  const again = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
  const c2 = new Client({ name: 'gateway-e2e', version: '1.0.0' });
  await c2.connect(again).catch((e) => { if (!(e instanceof UnauthorizedError)) throw e; });
  const jar = await browserJar();
  const back = await signIn(provider.authorizationUrl, redirectUri, { username: user, password, text: user }, { jar });
  await keepJar(jar);
  await again.finishAuth(back.searchParams.get('code'));
  const token = provider.tokens().access_token;
  const call = () => fetch(mcpUrl, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'probe', version: '0' } } }),
  });
  const before = await call();
  if (before.status !== 200) throw new Error(`fresh token refused: ${before.status}`);
  const rev = await fetch(metadata.revocation_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token, token_type_hint: 'access_token', client_id: provider.clientInformation().client_id }),
  });
  if (rev.status !== 200) throw new Error(`revoke answered ${rev.status}`);
  // REVOKED_CHECKS consecutive refusals (default 1): behind several verifiers
  // taken in turn, every one of them must have learnt of the revocation.
  const t0 = Date.now();
  let status = 0;
  let refusals = 0;
  while (Date.now() - t0 < 3000) {
    status = (await call()).status;
    refusals = status === 401 ? refusals + 1 : 0;
    if (refusals >= revokedChecks) break;
    if (refusals === 0) await new Promise((r) => setTimeout(r, 20));
  }
  if (refusals < revokedChecks) throw new Error(`revoked token still accepted (${status}, ${refusals} refusals in a row)`);
  report('revoked', { refused_after_ms: Date.now() - t0, consecutive_refusals: refusals });
} catch (e) { fail('revoke', e); }

report('done');
process.exit(0);
