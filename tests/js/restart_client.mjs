// What a restart of the authorization server must not lose, seen by the MCP TypeScript
// SDK: the registered client, the user's consent and the refresh token. Run twice
// against the same gateway, with the server restarted in between:
//
//   PHASE=before  register, sign in (consent given), call a tool; keep the client, the
//                 tokens and the browser's cookies in STATE_FILE
//   PHASE=authz-down  (optional, while the authorization server is stopped) the kept
//                 access token still calls the tool: the proxy and the verifier need
//                 nothing from the authorization server per request
//   PHASE=after   the kept refresh token still refreshes (rotated), for the same client;
//                 the new access token calls the tool; a new authorization for that
//                 client goes through without the consent page being shown again
//
// Environment: MCP_URL, SIGNIN_USER, SIGNIN_PASSWORD, STATE_FILE, TOOL (default echo),
// TOOL_ARGS (JSON), EXPECT (substring of the tool result). One JSON line per step;
// exits 1 on the first failure.

import { readFile, writeFile } from 'node:fs/promises';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError, refreshAuthorization, discoverAuthorizationServerMetadata } from '@modelcontextprotocol/sdk/client/auth.js';
import { signIn, CookieJar } from './browser.mjs';
import { MemoryProvider } from './memory_provider.mjs';

const phase = process.env.PHASE;
const mcpUrl = new URL(process.env.MCP_URL);
const user = process.env.SIGNIN_USER;
const password = process.env.SIGNIN_PASSWORD;
const stateFile = process.env.STATE_FILE;
const tool = process.env.TOOL ?? 'echo';
const toolArgs = JSON.parse(process.env.TOOL_ARGS ?? '{"message":"kept across a restart"}');
const expect = process.env.EXPECT ?? 'kept across a restart';
const redirectUri = 'http://127.0.0.1:33418/callback';

function report(step, extra = {}) {
  console.log(JSON.stringify({ phase, step, ...extra }));
}
function fail(step, err) {
  console.log(JSON.stringify({ phase, step, error: String(err?.stack ?? err) }));
  process.exit(1);
}

/** A provider holding `client` and `tokens` (either may be undefined). */
const newProvider = (client, tokens) =>
  new MemoryProvider({ redirectUri, clientName: 'gateway restart check', client, tokens });

// Signs in through the server's pages; returns the steps the browser saw.
async function authorize(provider, jar) {
  const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
  const client = new Client({ name: 'gateway-restart', version: '1.0.0' });
  try {
    await client.connect(transport);
    throw new Error('connect succeeded without signing in');
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
  }
  if (!provider.authorizationUrl) throw new Error('SDK never asked to open the authorization URL');
  const pages = [];
  const back = await signIn(provider.authorizationUrl, redirectUri, { username: user, password, text: user }, {
    jar,
    log: (line) => pages.push(line),
  });
  const code = back.searchParams.get('code');
  if (!code) throw new Error(`no code: ${back.searchParams.get('error')} ${back.searchParams.get('error_description')}`);
  await transport.finishAuth(code);
  if (!provider.tokens()?.refresh_token) throw new Error('no refresh token');
  return pages;
}

// Whether the browser was shown the consent form (GET /consent answered 200).
function consentShown(pages) {
  return pages.some((line) => {
    const m = line.match(/^GET (\S+) -> 200$/);
    return m !== null && new URL(m[1]).pathname === '/consent';
  });
}

async function callTool(provider) {
  const client = new Client({ name: 'gateway-restart', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider }));
  const result = await client.callTool({ name: tool, arguments: toolArgs });
  await client.close();
  const text = JSON.stringify(result.content);
  if (!text.includes(expect)) throw new Error(`tool result lacks ${expect}: ${text}`);
}

async function serverMetadata() {
  const www = (await fetch(mcpUrl, { method: 'POST' })).headers.get('www-authenticate') ?? '';
  const prmUrl = www.match(/resource_metadata="([^"]+)"/)?.[1];
  if (!prmUrl) throw new Error(`no resource_metadata in ${www}`);
  const prm = await (await fetch(prmUrl)).json();
  const issuer = prm.authorization_servers[0];
  return { issuer, resource: prm.resource, metadata: await discoverAuthorizationServerMetadata(issuer) };
}

if (phase === 'before') {
  try {
    const provider = newProvider(undefined, undefined);
    const jar = new CookieJar();
    const pages = await authorize(provider, jar);
    if (!consentShown(pages)) throw new Error(`the first authorization showed no consent page: ${pages.join(' | ')}`);
    await callTool(provider);
    await writeFile(stateFile, JSON.stringify({ client: provider.clientInformation(), tokens: provider.tokens() }));
    await jar.save(`${stateFile}.cookies`);
    report('kept', { client_id: provider.clientInformation().client_id });
  } catch (e) { fail('before', e); }
} else if (phase === 'authz-down') {
  try {
    const state = JSON.parse(await readFile(stateFile, 'utf8'));
    // No refresh and no sign-in can happen now: a 401 would make the SDK try both and
    // fail on the stopped authorization server.
    await callTool(newProvider(state.client, state.tokens));
    report('access_token_served', { client_id: state.client.client_id });
  } catch (e) { fail('authz-down', e); }
} else if (phase === 'after') {
  let state;
  let provider;
  try {
    state = JSON.parse(await readFile(stateFile, 'utf8'));
    const { issuer, resource, metadata } = await serverMetadata();
    // The refresh token and its client survived: the refresh succeeds and rotates.
    const fresh = await refreshAuthorization(issuer, {
      metadata,
      clientInformation: state.client,
      refreshToken: state.tokens.refresh_token,
      resource: new URL(resource),
    });
    if (!fresh.access_token || fresh.refresh_token === state.tokens.refresh_token) throw new Error('refresh gave no rotated token');
    provider = newProvider(state.client, fresh);
    await callTool(provider);
    report('refresh_token_kept', { client_id: state.client.client_id });
  } catch (e) { fail('refresh', e); }
  try {
    // The consent survived: the same client, the same browser, no consent page.
    provider = newProvider(state.client, undefined);
    const jar = await CookieJar.load(`${stateFile}.cookies`);
    const pages = await authorize(provider, jar);
    if (consentShown(pages)) throw new Error(`consent asked again after the restart: ${pages.join(' | ')}`);
    if (provider.clientInformation().client_id !== state.client.client_id) throw new Error('the client registered again');
    await callTool(provider);
    report('consent_kept', { pages: pages.length });
  } catch (e) { fail('consent', e); }
} else {
  fail('phase', `PHASE must be before, authz-down or after, got ${phase}`);
}
report('done');
process.exit(0);
