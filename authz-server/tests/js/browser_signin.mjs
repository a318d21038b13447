// A real headless Chromium (Debian /usr/bin/chromium, driven by playwright-core)
// goes through local sign-in and consent, using the keyboard only, and lands on
// the client's loopback redirect. Leaves a screenshot of every page, phone- and
// desktop-sized, in $ARTIFACTS.
//
// env: PLAYWRIGHT_MODULE, AUTHORIZE_URL, REDIRECT_PREFIX, BASE, USERNAME, PASSWORD, ARTIFACTS
import { pathToFileURL } from 'node:url';
import { mkdirSync } from 'node:fs';

const { chromium } = await import(pathToFileURL(process.env.PLAYWRIGHT_MODULE).href);
const out = process.env.ARTIFACTS;
mkdirSync(out, { recursive: true });

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const phone = { width: 390, height: 844 };
const desktop = { width: 1280, height: 800 };
const context = await browser.newContext({ viewport: phone, deviceScaleFactor: 2, hasTouch: true });
const page = await context.newPage();
const cspViolations = [];
page.on('console', (m) => { if (/Content.Security.Policy/i.test(m.text())) cspViolations.push(m.text()); });

async function shoot(name) {
  await page.screenshot({ path: `${out}/${name}-phone.png`, fullPage: true });
  await page.setViewportSize(desktop);
  await page.screenshot({ path: `${out}/${name}-desktop.png`, fullPage: true });
  await page.setViewportSize(phone);
}

// No horizontal scrolling on a phone: every page fits its width.
async function fitsPhone(name) {
  const w = await page.evaluate(() => document.documentElement.scrollWidth);
  if (w > phone.width) throw new Error(`${name} is ${w}px wide on a ${phone.width}px phone`);
}

const steps = [];

// 0. Two providers are on: the chooser. Keyboard only: Tab to "Local account", Enter.
await page.goto(process.env.AUTHORIZE_URL);
await page.waitForSelector('ul.choices');
steps.push({ page: 'chooser', url: page.url(), title: await page.title() });
await fitsPhone('chooser');
await shoot('0-chooser');
for (let i = 0; i < 6; i++) {
  await page.keyboard.press('Tab');
  if (await page.evaluate(() => document.activeElement?.textContent) === 'Local account') break;
}
await page.keyboard.press('Enter');

// 1. Sign-in page.
await page.waitForSelector('#username');
steps.push({ page: 'signin', url: page.url(), title: await page.title() });
await fitsPhone('signin');
await shoot('1-signin');

// Keyboard only: the username field has focus; type, Tab, type, Enter.
if (await page.evaluate(() => document.activeElement?.id) !== 'username') throw new Error('username is not focused');
await page.keyboard.type(process.env.USERNAME);
await page.keyboard.press('Tab');
await page.keyboard.type(process.env.PASSWORD);
await page.keyboard.press('Enter');

// 2. Consent page.
await page.waitForSelector('button[value=allow]');
steps.push({ page: 'consent', url: page.url(), title: await page.title() });
await fitsPhone('consent');
await shoot('2-consent');
if (await page.evaluate(() => document.activeElement?.value) !== 'allow') throw new Error('Allow is not focused');
await Promise.all([
  page.waitForURL((u) => u.href.startsWith(process.env.REDIRECT_PREFIX)),
  page.keyboard.press('Enter'),
]);

// 3. Landed on the client's redirect.
const landed = page.url();
steps.push({ page: 'redirect', url: landed });
await shoot('3-redirect');

// 4. The other pages a person may meet.
await page.goto(`${process.env.BASE}/authorize?client_id=unknown-client&response_type=code`);
await fitsPhone('error');
await shoot('4-error');
await page.goto(`${process.env.BASE}/device`);
await fitsPhone('device');
await shoot('5-device');

await browser.close();
console.log(JSON.stringify({ ok: true, landed, steps, cspViolations }));
