// A machine client (MCP SEP-1046: client credentials, no user) built on the
// official MCP TypeScript SDK's own providers: ClientCredentialsProvider
// (client_secret_basic) or PrivateKeyJwtProvider (RFC 7523 private_key_jwt).
// It starts from the MCP URL alone: 401 → protected resource metadata →
// authorization server metadata → token (client_credentials) → tools.
// Env: MCP_URL, ISSUER, CLIENT_ID, and CLIENT_SECRET or CLIENT_KEY_PEM (ES256).
// Prints JSON lines: {"step":"tools",...}, {"step":"call",...}, {"step":"done"}.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  ClientCredentialsProvider,
  PrivateKeyJwtProvider,
} from "@modelcontextprotocol/sdk/client/auth-extensions.js";

const env = process.env;
const out = (o) => console.log(JSON.stringify(o));
const provider = env.CLIENT_KEY_PEM
  ? new PrivateKeyJwtProvider({
      clientId: env.CLIENT_ID,
      privateKey: env.CLIENT_KEY_PEM,
      algorithm: "ES256",
      expectedIssuer: env.ISSUER,
    })
  : new ClientCredentialsProvider({
      clientId: env.CLIENT_ID,
      clientSecret: env.CLIENT_SECRET,
      expectedIssuer: env.ISSUER,
    });

// Every token request the SDK makes, seen from the outside.
const tokenRequests = [];
const recordingFetch = async (url, init) => {
  const resp = await fetch(url, init);
  if (String(url).endsWith("/token")) {
    tokenRequests.push({ status: resp.status, auth: new Headers(init?.headers).has("authorization") });
  }
  return resp;
};

try {
  const client = new Client({ name: "machine-client-test", version: "1.0.0" }, { capabilities: {} });
  const transport = new StreamableHTTPClientTransport(new URL(env.MCP_URL), {
    authProvider: provider,
    fetch: recordingFetch,
  });
  await client.connect(transport);
  const tools = (await client.listTools()).tools.map((t) => t.name).sort();
  out({ step: "tools", tools, token_requests: tokenRequests, token_type: provider.tokens()?.token_type });
  const r = await client.callTool({ name: "whoami", arguments: {} });
  out({ step: "call", text: r.content?.map((c) => c.text).join("") ?? "" });
  await transport.close();
  out({ step: "done" });
} catch (e) {
  out({ step: "error", message: String(e?.stack || e), token_requests: tokenRequests });
  process.exit(1);
}
