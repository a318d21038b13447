// Several MCP services behind one gateway (`mcp-gateway up` with a catalog),
// walked with the official TypeScript SDK by one user who signs in ONCE:
//
// 1. every service challenges with its own resource_metadata (RFC 9728 §5.1),
//    whose document names that service's URL as `resource`;
// 2. one authorization naming every service's `resource` (RFC 8707 §2) gives one
//    token whose `aud` lists them all; a tool is called on each service with it;
// 3. the SDK's own flow, service by service, gives one token per service (the
//    browser's sign-in session and the client's consent are reused: no password
//    is typed again); a tool is called on each service with its own token;
// 4. a token for one service is refused at another.
//
// Environment: SERVICES (JSON list of {name, url, tool, args, expect}),
// SIGNIN_USER, SIGNIN_PASSWORD. Prints one JSON line per step; exits 1 on the
// first failure.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  UnauthorizedError,
  discoverAuthorizationServerMetadata,
  registerClient,
  startAuthorization,
  exchangeAuthorization,
} from '@modelcontextprotocol/sdk/client/auth.js';
import { signIn, CookieJar } from './browser.mjs';
import { MemoryProvider } from './memory_provider.mjs';

const services = JSON.parse(process.env.SERVICES);
const user = process.env.SIGNIN_USER;
const password = process.env.SIGNIN_PASSWORD;
const redirectUri = 'http://127.0.0.1:33419/callback';
const jar = new CookieJar();

function report(step, extra = {}) {
  console.log(JSON.stringify({ step, ...extra }));
}
function fail(step, err) {
  console.log(JSON.stringify({ step, error: String(err?.stack ?? err) }));
  process.exit(1);
}
function audience(token) {
  const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
  return Array.isArray(claims.aud) ? claims.aud : [claims.aud];
}
const same = (a, b) => JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());

/** A provider holding `client` (registered already, or not yet). */
const newProvider = (client) =>
  new MemoryProvider({ redirectUri, clientName: 'gateway catalog client', client });

/** Connects to `service` with the token `provider` holds and calls its tool. */
async function callTool(service, provider) {
  const client = new Client({ name: 'gateway-catalog', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(service.url), { authProvider: provider });
  await client.connect(transport);
  try {
    const names = (await client.listTools()).tools.map((t) => t.name);
    if (!names.includes(service.tool)) throw new Error(`${service.name}: tool ${service.tool} not in ${names}`);
    const result = await client.callTool({ name: service.tool, arguments: service.args });
    const text = JSON.stringify(result.content);
    if (result.isError || !text.includes(service.expect)) {
      throw new Error(`${service.name}: ${service.tool} answered ${text}, expected ${service.expect}`);
    }
  } finally {
    await transport.terminateSession().catch(() => {});
    await client.close();
  }
}

/** A raw initialize with `token` at `url`: the HTTP status. */
async function initializeStatus(url, token) {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'probe', version: '0' } } }),
  });
  await res.body?.cancel();
  return res;
}

// 1. Each service's own challenge and protected resource metadata.
let issuer;
try {
  for (const s of services) {
    const res = await initializeStatus(s.url);
    const www = res.headers.get('www-authenticate') ?? '';
    const m = www.match(/^Bearer resource_metadata="([^"]+)"/);
    if (res.status !== 401 || !m) throw new Error(`${s.name}: expected 401 with resource_metadata, got ${res.status} ${www}`);
    const u = new URL(s.url);
    const expected = `${u.origin}/.well-known/oauth-protected-resource${u.pathname}`;
    if (m[1] !== expected) throw new Error(`${s.name}: resource_metadata ${m[1]}, expected ${expected}`);
    const prm = await (await fetch(m[1])).json();
    if (prm.resource !== s.url) throw new Error(`${s.name}: PRM resource ${prm.resource}, expected ${s.url}`);
    if (issuer && prm.authorization_servers[0] !== issuer) throw new Error('services name different authorization servers');
    issuer = prm.authorization_servers[0];
  }
  report('challenges', { services: services.length });
} catch (e) { fail('challenges', e); }

// 2. One authorization naming every resource: one token for all of them.
let clientInformation;
let multiToken;
try {
  const metadata = await discoverAuthorizationServerMetadata(issuer);
  const provider = newProvider(undefined);
  clientInformation = await registerClient(issuer, { metadata, clientMetadata: provider.clientMetadata });
  const { authorizationUrl, codeVerifier } = await startAuthorization(issuer, {
    metadata,
    clientInformation,
    redirectUrl: redirectUri,
    scope: 'mcp',
    resource: new URL(services[0].url),
  });
  for (const s of services.slice(1)) authorizationUrl.searchParams.append('resource', s.url);
  // The one sign-in: the password is typed here and never again.
  const back = await signIn(authorizationUrl, redirectUri, { username: user, password, text: user }, { jar });
  const code = back.searchParams.get('code');
  if (!code) throw new Error(`no code in ${back}`);
  const tokens = await exchangeAuthorization(issuer, {
    metadata,
    clientInformation,
    authorizationCode: code,
    codeVerifier,
    redirectUri,
  });
  multiToken = tokens.access_token;
  const aud = audience(multiToken);
  if (!same(aud, services.map((s) => s.url))) throw new Error(`multi-resource token aud ${aud}`);
  const holder = newProvider(clientInformation);
  holder.saveTokens(tokens);
  for (const s of services) await callTool(s, holder);
  report('multi_resource_token', { audiences: aud.length, calls: services.length });
} catch (e) { fail('multi_resource_token', e); }

// 3. The SDK's own flow per service: one token each, no second sign-in.
const perService = [];
try {
  for (const s of services) {
    const provider = newProvider(clientInformation);
    const transport = new StreamableHTTPClientTransport(new URL(s.url), { authProvider: provider });
    const client = new Client({ name: 'gateway-catalog', version: '1.0.0' });
    try {
      await client.connect(transport);
      throw new Error(`${s.name}: connected without a token`);
    } catch (e) {
      if (!(e instanceof UnauthorizedError)) throw e;
    }
    if (!provider.authorizationUrl) throw new Error(`${s.name}: the SDK never asked to authorize`);
    const asked = provider.authorizationUrl.searchParams.getAll('resource');
    if (!same(asked, [s.url])) throw new Error(`${s.name}: the SDK asked for ${asked}`);
    // No credentials: a sign-in form here would fail the flow.
    const back = await signIn(provider.authorizationUrl, redirectUri, {}, { jar });
    const code = back.searchParams.get('code');
    if (!code) throw new Error(`${s.name}: no code in ${back}`);
    await transport.finishAuth(code);
    const token = provider.tokens().access_token;
    if (!same(audience(token), [s.url])) throw new Error(`${s.name}: token aud ${audience(token)}`);
    await callTool(s, provider);
    perService.push(token);
  }
  report('per_service_tokens', { tokens: perService.length, calls: services.length });
} catch (e) { fail('per_service_tokens', e); }

// 4. A token for one service is refused at every other one.
try {
  let refused = 0;
  for (const [i, token] of perService.entries()) {
    for (const [j, s] of services.entries()) {
      if (i === j) continue;
      const res = await initializeStatus(s.url, token);
      const www = res.headers.get('www-authenticate') ?? '';
      if (res.status !== 401 || !www.includes('error="invalid_token"')) {
        throw new Error(`${services[i].name}'s token at ${s.name}: ${res.status} ${www}`);
      }
      refused += 1;
    }
  }
  report('cross_service_refused', { refused });
} catch (e) { fail('cross_service_refused', e); }

report('done');
process.exit(0);
