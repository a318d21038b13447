// A minimal scripted "browser" for sign-in flows in tests: follows redirects by
// hand, keeps cookies per host, fills and submits the server-rendered forms
// (hidden inputs kept, credentials typed in, the approving button pressed).
// It stops when a redirect leaves for the client's redirect URI.

export class CookieJar {
  constructor() {
    this.jar = new Map(); // host -> Map(name -> value)
  }
  store(url, res) {
    const host = new URL(url).host;
    const cookies = res.headers.getSetCookie ? res.headers.getSetCookie() : [];
    for (const c of cookies) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      if (i < 0) continue;
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      if (!this.jar.has(host)) this.jar.set(host, new Map());
      if (/max-age=0/i.test(c) || value === '') this.jar.get(host).delete(name);
      else this.jar.get(host).set(name, value);
    }
  }
  // A browser that keeps its cookies between runs (COOKIE_JAR_FILE in e2e_client.mjs).
  static async load(file) {
    const jar = new CookieJar();
    try {
      const { readFile } = await import('node:fs/promises');
      for (const [host, pairs] of JSON.parse(await readFile(file, 'utf8'))) jar.jar.set(host, new Map(pairs));
    } catch (e) {
      if (e.code !== 'ENOENT') throw e;
    }
    return jar;
  }
  async save(file) {
    const { writeFile } = await import('node:fs/promises');
    await writeFile(file, JSON.stringify([...this.jar.entries()].map(([h, m]) => [h, [...m.entries()]])));
  }
  header(url) {
    const m = this.jar.get(new URL(url).host);
    if (!m || m.size === 0) return undefined;
    return [...m.entries()].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

function decodeEntities(s) {
  return s
    .replace(/&quot;/g, '"')
    .replace(/&#x27;|&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&#x2F;|&#47;/g, '/')
    .replace(/&amp;/g, '&');
}

function attr(tag, name) {
  const m = tag.match(new RegExp(`\\b${name}\\s*=\\s*("([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i'));
  if (!m) return undefined;
  return decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
}

/** Parses the first <form> of a page: action, method, fields, buttons. */
export function parseForm(html, baseUrl) {
  const formMatch = html.match(/<form\b[^>]*>([\s\S]*?)<\/form>/i);
  if (!formMatch) return undefined;
  const formTag = formMatch[0].match(/<form\b[^>]*>/i)[0];
  const action = new URL(attr(formTag, 'action') ?? baseUrl, baseUrl);
  const method = (attr(formTag, 'method') ?? 'get').toLowerCase();
  const fields = [];
  for (const tag of formMatch[1].match(/<input\b[^>]*>/gi) ?? []) {
    fields.push({
      name: attr(tag, 'name'),
      type: (attr(tag, 'type') ?? 'text').toLowerCase(),
      value: attr(tag, 'value') ?? '',
    });
  }
  const buttons = [];
  for (const m of formMatch[1].matchAll(/<button\b[^>]*>([\s\S]*?)<\/button>/gi)) {
    const tag = m[0].match(/<button\b[^>]*>/i)[0];
    buttons.push({ name: attr(tag, 'name'), value: attr(tag, 'value') ?? '', text: m[1] });
  }
  return { action, method, fields, buttons };
}

/**
 * Drives a sign-in from `authorizationUrl` until the server redirects to a URL
 * starting with `redirectUri`; returns that URL. `credentials` maps input names
 * (or types: 'text', 'password', 'email') to values.
 */
export async function signIn(authorizationUrl, redirectUri, credentials, { jar = new CookieJar(), maxSteps = 20, log = () => {} } = {}) {
  let url = String(authorizationUrl);
  let init = { method: 'GET' };
  for (let step = 0; step < maxSteps; step++) {
    if (url.startsWith(redirectUri)) return new URL(url);
    const headers = new Headers(init.headers ?? {});
    const cookie = jar.header(url);
    if (cookie) headers.set('cookie', cookie);
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    jar.store(url, res);
    log(`${init.method} ${url} -> ${res.status}`);
    if (res.status >= 300 && res.status < 400) {
      const loc = res.headers.get('location');
      if (!loc) throw new Error(`redirect without Location from ${url}`);
      url = new URL(loc, url).toString();
      init = { method: 'GET' };
      continue;
    }
    const body = await res.text();
    if (res.status !== 200) throw new Error(`sign-in step ${url} answered ${res.status}: ${body.slice(0, 300)}`);
    const form = parseForm(body, url);
    if (!form) throw new Error(`no form on ${url}: ${body.slice(0, 300)}`);
    const params = new URLSearchParams();
    for (const f of form.fields) {
      if (!f.name || f.type === 'submit') continue;
      const v = credentials[f.name] ?? credentials[f.type] ?? f.value;
      params.append(f.name, v);
    }
    const approve = form.buttons.find((b) => b.name && /approve|allow|accept|sign|continue|yes/i.test(`${b.value} ${b.text}`));
    if (approve) params.append(approve.name, approve.value);
    if (form.method === 'post') {
      url = form.action.toString();
      init = { method: 'POST', body: params.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } };
    } else {
      const u = new URL(form.action);
      for (const [k, v] of params) u.searchParams.append(k, v);
      url = u.toString();
      init = { method: 'GET' };
    }
  }
  throw new Error('sign-in did not finish');
}
