// A real OpenID Provider for the tests: the `oidc-provider` npm package
// (pinned in tests/js), with one confidential client and a few test users.
// Its development interaction pages (devInteractions) take any password for
// a known login; the test drives them over HTTP like a browser.
//
// It listens on a port of its own choosing (port 0) and prints its issuer,
// with the port, as its first line: {"ready":true,"issuer":"http://127.0.0.1:PORT"}.
//
// env: CALLBACK (our /callback/oidc), CLIENT_ID, CLIENT_SECRET,
//      OIDC_PROVIDER_MODULE (absolute path of oidc-provider/lib/index.js),
//      USERS_FILE (optional: JSON login → claims read at every lookup, over the
//      defaults below, so a test can change a user's groups while it runs)
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { pathToFileURL } from 'node:url';

const { default: Provider } = await import(pathToFileURL(process.env.OIDC_PROVIDER_MODULE).href);

// Bound before the provider exists: its issuer names the port.
const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = server.address().port;
const issuer = `http://127.0.0.1:${port}`;

// Test users: login → claims.
const users = {
  alice: { email: 'alice@corp.example', email_verified: true, groups: ['engineering'], preferred_username: 'alice' },
  mallory: { email: 'mallory@evil.example', email_verified: true, groups: ['outsiders'], preferred_username: 'mallory' },
  hostile: { email: 'h@corp.example', email_verified: true, groups: [], preferred_username: '<img src=x onerror=alert(1)>"\'' },
  unverified: { email: 'eve@corp.example', email_verified: false, groups: [], preferred_username: 'eve' },
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID,
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: [process.env.CALLBACK],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  // Put the scope's claims into the id_token itself (the gateway reads only the id_token).
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  // A refresh token for our client without offline_access (the gateway uses it to re-check groups).
  async issueRefreshToken(ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  async findAccount(ctx, sub) {
    const current = process.env.USERS_FILE
      ? { ...users, ...JSON.parse(readFileSync(process.env.USERS_FILE, 'utf8')) }
      : users;
    const claims = current[sub];
    if (!claims) return undefined;
    return { accountId: sub, async claims() { return { sub, ...claims }; } };
  },
});
provider.proxy = false;

server.on('request', provider.callback());
console.log(JSON.stringify({ ready: true, issuer }));
