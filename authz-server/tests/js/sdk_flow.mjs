// The official MCP TypeScript SDK client's OAuth functions against a running
// mcp-authz: discovery → registration → authorization → token → refresh.
// The browser step (sign-in and consent pages) is done here with fetch and a
// cookie jar, the way a user's browser would post the forms.
//
// env: MCP_URL (the protected resource URL), SDK_AUTH_MODULE (absolute path of
// @modelcontextprotocol/sdk/dist/esm/client/auth.js), USERNAME, PASSWORD.
import { pathToFileURL } from 'node:url';
import assert from 'node:assert/strict';

const sdk = await import(pathToFileURL(process.env.SDK_AUTH_MODULE).href);
const {
  discoverOAuthProtectedResourceMetadata,
  discoverAuthorizationServerMetadata,
  registerClient,
  startAuthorization,
  exchangeAuthorization,
  refreshAuthorization,
} = sdk;

const mcpUrl = process.env.MCP_URL;
const redirectUrl = 'http://127.0.0.1:53682/callback';

// 1. Discovery (RFC 9728, then RFC 8414).
const prm = await discoverOAuthProtectedResourceMetadata(mcpUrl);
assert.equal(prm.resource, mcpUrl);
const asUrl = prm.authorization_servers[0];
const metadata = await discoverAuthorizationServerMetadata(asUrl);
assert.ok(metadata, 'authorization server metadata found');
assert.equal(metadata.issuer, asUrl);
assert.deepEqual(metadata.code_challenge_methods_supported, ['S256']);

// 2. Dynamic client registration (RFC 7591).
const clientInformation = await registerClient(asUrl, {
  metadata,
  clientMetadata: {
    client_name: 'SDK flow test',
    redirect_uris: [redirectUrl],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  },
});
assert.ok(clientInformation.client_id);
assert.equal(clientInformation.token_endpoint_auth_method, 'none');

// 3. Authorization request with PKCE and resource.
const resource = new URL(prm.resource);
const { authorizationUrl, codeVerifier } = await startAuthorization(asUrl, {
  metadata,
  clientInformation,
  redirectUrl,
  scope: 'mcp',
  state: 'sdk-state-1',
  resource,
});

// The browser: follows our pages, posts the forms, keeps cookies.
const jar = new Map();
async function browse(url, init = {}) {
  const headers = new Headers(init.headers || {});
  if (jar.size) headers.set('cookie', [...jar].map(([k, v]) => `${k}=${v}`).join('; '));
  const res = await fetch(url, { ...init, headers, redirect: 'manual' });
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const i = pair.indexOf('=');
    jar.set(pair.slice(0, i), pair.slice(i + 1));
  }
  return res;
}
const hidden = (html, name) => {
  const m = html.match(new RegExp(`name="${name}" value="([^"]*)"`));
  assert.ok(m, `hidden field ${name}`);
  return m[1];
};
const post = (path, fields) =>
  browse(new URL(path, asUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });

let res = await browse(authorizationUrl);
assert.equal(res.status, 302);
res = await browse(new URL(res.headers.get('location'), asUrl));
assert.equal(res.status, 200);
let html = await res.text();
res = await post('/signin', {
  req: hidden(html, 'req'),
  csrf: hidden(html, 'csrf'),
  idp: 'local',
  username: process.env.USERNAME,
  password: process.env.PASSWORD,
});
assert.equal(res.status, 303, 'signed in');
res = await browse(new URL(res.headers.get('location'), asUrl));
assert.equal(res.status, 200);
html = await res.text();
res = await post('/consent', { req: hidden(html, 'req'), csrf: hidden(html, 'csrf'), decision: 'allow' });
assert.equal(res.status, 303, 'consented');
const back = new URL(res.headers.get('location'));
assert.equal(`${back.origin}${back.pathname}`, redirectUrl);
assert.equal(back.searchParams.get('state'), 'sdk-state-1');
assert.equal(back.searchParams.get('iss'), metadata.issuer, 'RFC 9207 iss');
const code = back.searchParams.get('code');
assert.ok(code);

// 4. Token.
const tokens = await exchangeAuthorization(asUrl, {
  metadata,
  clientInformation,
  authorizationCode: code,
  codeVerifier,
  redirectUri: redirectUrl,
  resource,
});
assert.equal(tokens.token_type.toLowerCase(), 'bearer');
assert.ok(tokens.expires_in > 0);
assert.ok(tokens.refresh_token);
const claims = JSON.parse(Buffer.from(tokens.access_token.split('.')[1], 'base64url').toString());
assert.equal(claims.aud, mcpUrl);

// 5. Refresh (rotated).
const refreshed = await refreshAuthorization(asUrl, {
  metadata,
  clientInformation,
  refreshToken: tokens.refresh_token,
  resource,
});
assert.ok(refreshed.access_token);
assert.notEqual(refreshed.refresh_token, tokens.refresh_token);

console.log(JSON.stringify({ ok: true, client_id: clientInformation.client_id, aud: claims.aud }));
