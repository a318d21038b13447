// The SDK's own Client ID Metadata Document path (`clientMetadataUrl`
// provider property, SEP-991), as far as it goes on loopback:
//
// 1. with an http URL the SDK refuses before any request (it insists on
//    https), which is why e2e_client.mjs hands an http document URL to the SDK
//    as stored client information instead;
// 2. with an https URL it skips registration, uses the URL as client_id in the
//    authorization request, and the authorization server then fetches the
//    document itself. The test serves it with a self-signed certificate, so
//    the server must refuse it (certificates are checked against public
//    roots; there is no test-only trust anchor).
//
// Environment: MCP_URL, CLIENT_METADATA_URL (https), HTTP_METADATA_URL.
// Prints one JSON line; exits 1 on an unexpected outcome.

import { auth } from '@modelcontextprotocol/sdk/client/auth.js';
import { InvalidClientMetadataError } from '@modelcontextprotocol/sdk/server/auth/errors.js';

const mcpUrl = new URL(process.env.MCP_URL);
const redirectUri = 'http://127.0.0.1:33418/callback';

class Provider {
  constructor(metadataUrl) {
    this.metadataUrl = metadataUrl;
    this.authorizationUrl = undefined;
    this._client = undefined;
  }
  get redirectUrl() { return redirectUri; }
  get clientMetadataUrl() { return this.metadataUrl; }
  get clientMetadata() {
    return { client_name: 'gateway e2e probe', redirect_uris: [redirectUri], token_endpoint_auth_method: 'none' };
  }
  clientInformation() { return this._client; }
  saveClientInformation(info) { this._client = info; }
  tokens() { return undefined; }
  saveTokens() {}
  redirectToAuthorization(url) { this.authorizationUrl = url; }
  saveCodeVerifier(v) { this._verifier = v; }
  codeVerifier() { return this._verifier; }
}

const out = {};
try {
  let registrations = 0;
  const fetchFn = (url, init) => {
    if ((init?.method ?? 'GET') === 'POST' && new URL(url).pathname.endsWith('/register')) registrations++;
    return fetch(url, init);
  };

  // 1. http: refused by the SDK itself.
  try {
    await auth(new Provider(process.env.HTTP_METADATA_URL), { serverUrl: mcpUrl, fetchFn });
    out.sdk_refuses_http = false;
  } catch (e) {
    out.sdk_refuses_http = e instanceof InvalidClientMetadataError;
    if (!out.sdk_refuses_http) throw e;
  }

  // 2. https: the URL is the client_id, no registration.
  const p = new Provider(process.env.CLIENT_METADATA_URL);
  out.result = await auth(p, { serverUrl: mcpUrl, fetchFn });
  out.registrations = registrations;
  const authUrl = new URL(p.authorizationUrl);
  out.client_id = authUrl.searchParams.get('client_id');
  const res = await fetch(authUrl, { redirect: 'manual' });
  out.authorize_status = res.status;
  out.authorize_location = res.headers.get('location');
  out.authorize_body = (await res.text()).slice(0, 2000);
  console.log(JSON.stringify(out));
  process.exit(0);
} catch (e) {
  out.error = String(e?.stack ?? e);
  console.log(JSON.stringify(out));
  process.exit(1);
}
