// The "browser" `mcp-connect` opens in tests (MCP_CONNECT_BROWSER="node
// connect_opener.mjs"): signs in through the server's pages as SIGNIN_USER and
// follows the final redirect to connect's loopback listener, as a browser would.
// Appends one line per sign-in to OPENER_LOG so tests can count sign-ins.
import { appendFileSync } from 'node:fs';
import { signIn, CookieJar } from './browser.mjs';

const url = new URL(process.argv[2]);
const redirectUri = url.searchParams.get('redirect_uri');
try {
  const back = await signIn(url, redirectUri, {
    username: process.env.SIGNIN_USER,
    text: process.env.SIGNIN_USER,
    password: process.env.SIGNIN_PASSWORD,
  }, { jar: new CookieJar() });
  // Logged before the redirect is delivered: once connect has the code it may
  // finish and report before this process would get to write afterwards.
  if (process.env.OPENER_LOG) appendFileSync(process.env.OPENER_LOG, `signed-in ${back.searchParams.has('iss') ? 'iss' : 'no-iss'}\n`);
  const res = await fetch(back);
  if (res.status !== 200) throw new Error(`loopback listener answered ${res.status}`);
} catch (e) {
  if (process.env.OPENER_LOG) appendFileSync(process.env.OPENER_LOG, `failed ${String(e).replace(/\n/g, ' ')}\n`);
  process.stderr.write(`opener: ${e?.stack ?? e}\n`);
  process.exit(1);
}
