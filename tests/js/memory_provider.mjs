// The SDK's OAuthClientProvider, kept in memory: what every test client of
// ours hands to the MCP TypeScript SDK (client registration, tokens, the PKCE
// verifier, and the authorization URL it would open in a browser).

export class MemoryProvider {
  /**
   * @param {object} opts
   * @param {string} opts.redirectUri the loopback redirect URI (RFC 8252 §7.3)
   * @param {string} opts.clientName `client_name` of the registration
   * @param {object} [opts.metadata] more client metadata (RFC 7591 §2)
   * @param {string} [opts.clientMetadataUrl] a client ID metadata document the SDK uses instead of registering
   * @param {object} [opts.client] client information already registered
   * @param {object} [opts.tokens] tokens already held
   */
  constructor({ redirectUri, clientName, metadata = {}, clientMetadataUrl, client, tokens }) {
    this._redirectUri = redirectUri;
    this._metadata = {
      client_name: clientName,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      ...metadata,
    };
    this._metadataUrl = clientMetadataUrl;
    this._client = client;
    this._tokens = tokens;
    this._verifier = undefined;
    this.authorizationUrl = undefined;
  }
  get redirectUrl() { return this._redirectUri; }
  get clientMetadataUrl() { return this._metadataUrl; }
  get clientMetadata() { return this._metadata; }
  state() { return 'st-' + Math.random().toString(36).slice(2); }
  clientInformation() { return this._client; }
  saveClientInformation(info) { this._client = info; }
  tokens() { return this._tokens; }
  saveTokens(t) { this._tokens = t; }
  redirectToAuthorization(url) { this.authorizationUrl = url; }
  saveCodeVerifier(v) { this._verifier = v; }
  codeVerifier() { return this._verifier; }
}
