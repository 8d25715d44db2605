// Helpers of the browser tests: Debian's Chromium driven by playwright-core
// (no browser is downloaded), a TCP proxy that can cut a page's connections
// the way a network drop does, and screenshots of failures.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startFlappingProxy } from '../proxy.mjs';

export const SERVER_URL = process.env.SWITCHBOARD_URL;
export const ADMIN_EMAIL = process.env.ADMIN_EMAIL;
export const ADMIN_PASSWORD = process.env.ADMIN_PASSWORD;
export const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || path.resolve('../../target/screenshots');

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * A TCP proxy to the server. `cut()` closes every connection through it and
 * refuses new ones until `restore()`: with `context.setOffline(true)` (which
 * fails new requests but leaves open WebSockets alone) it is a network drop.
 */
export function startProxy(target = SERVER_URL) {
  return startFlappingProxy([target]);
}

/** A network drop of `context` behind `proxy`, and its end. The connections
 * are cut before the browser is set offline: the page must see them close,
 * and the proxy refuses new ones either way. */
export async function goOffline(context, proxy) {
  proxy.cut();
  await context.setOffline(true);
}

export async function goOnline(context, proxy) {
  proxy.restore();
  await context.setOffline(false);
}

/** Runs `body`; when it throws, saves a screenshot of each page first. */
export async function withScreenshots(name, pages, body) {
  try {
    await body();
  } catch (err) {
    fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
    for (const [label, page] of Object.entries(pages)) {
      const file = path.join(SCREENSHOT_DIR, `failure-${name}-${label}.png`);
      await page.screenshot({ path: file, fullPage: true }).catch(() => {});
      console.error(`screenshot of the failure: ${file}`);
    }
    throw err;
  }
}

export async function screenshot(page, name) {
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`) });
}
