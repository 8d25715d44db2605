// The built-in pages in headless Chromium: a visitor on /demo and an admin on
// /console through the whole live-chat journey, network drops both ways,
// escaping, bad form input, 360 px screens, and the streaming playground.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  ADMIN_EMAIL, ADMIN_PASSWORD, SERVER_URL, goOffline, goOnline, launch, screenshot, startProxy,
  withScreenshots,
} from './browser.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

const SHORT = 5_000;
const LONG = 15_000;

/** Waits for an element matching `selector` that contains `text`. */
function seen(page, selector, text, timeout = LONG) {
  return page.locator(selector, { hasText: text }).first().waitFor({ timeout });
}

/** Fails when an element matching `selector` with `text` shows up within `ms`. */
async function notSeen(page, selector, text, ms) {
  await page.waitForTimeout(ms);
  assert.equal(await page.locator(selector, { hasText: text }).count(), 0, `${text} appeared`);
}

async function signIn(page) {
  await page.fill('#email', ADMIN_EMAIL);
  await page.fill('#password', ADMIN_PASSWORD);
  await page.click('#login button[type=submit]');
  await page.locator('#app').waitFor({ state: 'visible', timeout: SHORT });
}

async function openWidget(page, url) {
  await page.goto(`${url}/demo`);
  await page.click('.launcher');
  await page.locator('#switchboard-input').waitFor({ timeout: SHORT });
  return page.evaluate(() => window.SwitchboardWidget.sessionId);
}

async function say(page, text) {
  await page.fill('#switchboard-input', text);
  await page.press('#switchboard-input', 'Enter');
}

function alertsFail(page) {
  page.on('dialog', (dialog) => {
    dialog.dismiss();
    throw new Error(`a dialog opened: ${dialog.message()}`);
  });
}

test('a visitor and an admin go through the whole live-chat journey', async () => {
  const visitorProxy = await startProxy();
  const adminProxy = await startProxy();
  const visitorContext = await browser.newContext();
  const adminContext = await browser.newContext();
  const widget = await visitorContext.newPage();
  const consolePage = await adminContext.newPage();
  alertsFail(widget);
  alertsFail(consolePage);
  try {
    await withScreenshots('journey', { widget, console: consolePage }, async () => {
      // Bad input on the sign-in form, then a real sign-in.
      await consolePage.goto(`${adminProxy.url}/console`);
      await consolePage.click('#login button[type=submit]');
      await seen(consolePage, '#login-error', 'Enter your email and password', SHORT);
      await consolePage.fill('#email', ADMIN_EMAIL);
      await consolePage.fill('#password', 'not the password');
      await consolePage.click('#login button[type=submit]');
      await seen(consolePage, '#login-error', 'Invalid email or password', SHORT);
      await signIn(consolePage);

      // The visitor writes; the AI answers; the console shows it live with an unread badge.
      const sessionId = await openWidget(widget, visitorProxy.url);
      assert.ok(sessionId.length >= 32, sessionId);
      await widget.click('form button[type=submit]');
      await seen(widget, '.error', 'Type a message first', SHORT);
      await say(widget, 'Where is my order?');
      await seen(widget, '.msg.ai', 'Mock reply: Where is my order?');
      const item = consolePage.locator(`#sessions li[data-session="${sessionId}"]`);
      await item.waitFor({ timeout: LONG });

      await seen(consolePage, `#sessions li[data-session="${sessionId}"] .badge`, 'AI answers');
      await seen(consolePage, `#sessions li[data-session="${sessionId}"] .badge.unread`, 'unread');

      // The visitor asks for a human: the notice, and the console's badge.
      await widget.click('.human');
      await seen(widget, '.notice', 'A person from our team will answer here');
      await seen(widget, '.msg.ai', 'Connecting you to our support team');
      await seen(consolePage, `#sessions li[data-session="${sessionId}"] .badge.human`, 'needs a human');

      // The admin opens it: every message, read; the AI stays silent now.
      await item.click();
      await seen(consolePage, '#messages .msg.user', 'Where is my order?');
      await seen(consolePage, '#messages .msg.ai', 'Mock reply: Where is my order?');
      await consolePage.locator(`#sessions li[data-session="${sessionId}"] .badge.unread`)
        .waitFor({ state: 'detached', timeout: LONG });
      await say(widget, 'Hello? Anyone there?');
      await seen(consolePage, '#messages .msg.user', 'Hello? Anyone there?');
      await notSeen(widget, '.msg.ai', 'Mock reply: Hello?', 1_500);

      // Typing both ways, then the admin's reply reaches the widget.
      await widget.fill('#switchboard-input', 'typing');
      await seen(consolePage, '#typing', 'The visitor is typing', SHORT);
      await widget.fill('#switchboard-input', '');
      await consolePage.fill('#reply', 'Hi, I am Sam from support');
      await seen(widget, '.note', 'Support is typing', SHORT);
      await consolePage.press('#reply', 'Enter');
      await seen(widget, '.msg.admin', 'Hi, I am Sam from support');
      await seen(consolePage, '#messages .msg.admin', 'Hi, I am Sam from support');
      await seen(consolePage, `#sessions li[data-session="${sessionId}"] .badge`, 'human answers');
      await consolePage.press('#reply', 'Enter');
      await seen(consolePage, '#reply-error', 'Type a reply first', SHORT);

      // A message that looks like HTML stays text on both sides.
      const attack = '<img src=x onerror=alert(1)>';
      await say(widget, attack);
      await seen(consolePage, '#messages .msg.user', attack);
      await seen(widget, '.msg.user', attack);
      assert.equal(await consolePage.locator('#messages img').count(), 0);
      assert.equal(await widget.locator('#switchboard-widget img').count(), 0);

      // A right-to-left override cannot disguise what follows it.
      await say(widget, 'invoice \u202Egnp.exe');
      await seen(consolePage, '#messages .msg.user', 'invoice \uFFFDgnp.exe');
      await seen(widget, '.msg.user', 'invoice \uFFFDgnp.exe');
      assert.ok(!(await consolePage.locator('#messages').innerText()).includes('\u202E'));
      assert.ok(!(await consolePage.locator('#sessions').innerText()).includes('\u202E'));

      // Network drop on the visitor's side: the admin's reply meanwhile and the
      // visitor's message typed offline both arrive once it is back.
      await goOffline(visitorContext, visitorProxy);
      await seen(widget, '.error', 'Connection lost', LONG);
      await consolePage.fill('#reply', 'Sent while you were offline');
      await consolePage.press('#reply', 'Enter');
      await seen(consolePage, '#messages .msg.admin', 'Sent while you were offline');
      await say(widget, 'Typed while offline');
      await goOnline(visitorContext, visitorProxy);
      await seen(widget, '.msg.admin', 'Sent while you were offline', 20_000);
      await seen(consolePage, '#messages .msg.user', 'Typed while offline', 20_000);
      await widget.locator('.msg.pending').waitFor({ state: 'detached', timeout: LONG });

      // Network drop on the admin's side: the visitor's message meanwhile shows after it.
      await goOffline(adminContext, adminProxy);
      await seen(consolePage, '#connection', 'Reconnecting', LONG);
      await say(widget, 'Written while the admin was offline');
      await widget.locator('.msg.pending').waitFor({ state: 'detached', timeout: LONG });
      await goOnline(adminContext, adminProxy);
      await seen(consolePage, '#connection', 'Connected', 20_000);
      await seen(consolePage, '#messages .msg.user', 'Written while the admin was offline', LONG);

      // Hand back to the AI: it answers again.
      await consolePage.click('#release');
      await seen(consolePage, `#sessions li[data-session="${sessionId}"] .badge`, 'AI answers');
      // A slow answer: the widget and the open conversation show the AI thinking.
      await say(widget, 'Thanks, one more question [[mock:first-byte-delay=1500]]');
      await seen(widget, '.note', 'The assistant is thinking', SHORT);
      await seen(consolePage, '#conversation-state', 'The AI is thinking', SHORT);
      await seen(widget, '.msg.ai', 'Mock reply: Thanks, one more question');
      await seen(consolePage, '#messages .msg.ai', 'Mock reply: Thanks, one more question');
      await consolePage.waitForFunction(
        () => !document.getElementById('conversation-state').textContent.includes('thinking'),
        null, { timeout: SHORT });

      // Taking over without a reply silences the AI too.
      await consolePage.click('#takeover');
      await seen(consolePage, `#sessions li[data-session="${sessionId}"] .badge`, 'human answers');
      await say(widget, 'Is a person reading this?');
      await seen(consolePage, '#messages .msg.user', 'Is a person reading this?');
      await notSeen(widget, '.msg.ai', 'Mock reply: Is a person', 1_500);

      // Each message once, on both sides.
      const widgetTexts = await widget.locator('.msg').allTextContents();
      const consoleTexts = await consolePage.locator('#messages .msg').allTextContents();
      for (const texts of [widgetTexts, consoleTexts]) {
        const offline = texts.filter((t) => t.includes('Typed while offline'));
        assert.equal(offline.length, 1, JSON.stringify(texts));
      }

      // A reload keeps the widget's session and history.
      await widget.reload();
      await widget.click('.launcher');
      await seen(widget, '.msg.admin', 'Hi, I am Sam from support');
      assert.equal(await widget.evaluate(() => window.SwitchboardWidget.sessionId), sessionId);

      await consolePage.setViewportSize({ width: 1200, height: 760 });
      await screenshot(consolePage, 'console');
      await widget.setViewportSize({ width: 900, height: 700 });
      await screenshot(widget, 'widget');
    });
  } finally {
    await visitorContext.close();
    await adminContext.close();
    visitorProxy.close();
    adminProxy.close();
  }
});

test('the AI settings are read and saved from the console, with clear refusals', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await withScreenshots('settings', { page }, async () => {
      await page.goto(`${SERVER_URL}/console`);
      await signIn(page);
      await page.click('#settings-toggle');
      await page.locator('#ai-model').waitFor({ state: 'visible', timeout: SHORT });
      await page.waitForFunction(() => document.getElementById('ai-prompt').value !== '', null, { timeout: SHORT });
      await page.fill('#ai-temperature', '7');
      await page.click('#settings button[type=submit]');
      await seen(page, '#settings-error', 'Temperature is a number from 0 to 2', SHORT);
      await page.fill('#ai-temperature', '0.3');
      await page.fill('#ai-prompt', 'You are the console test.');
      await page.click('#settings button[type=submit]');
      await seen(page, '#connection', 'Settings saved', SHORT);
      const saved = await page.evaluate(async () => {
        const token = sessionStorage.getItem('switchboard.console.token');
        const response = await fetch('/api/ai/config', { headers: { authorization: `Bearer ${token}` } });
        return response.json();
      });
      assert.equal(saved.systemPrompt, 'You are the console test.');
      assert.equal(saved.temperature, 0.3);
      // The checkbox switches the AI at once (and back on: later tests need it).
      for (const enabled of [false, true]) {
        await page.setChecked('#ai-enabled', enabled);
        await page.waitForFunction(async (expected) => {
          const token = sessionStorage.getItem('switchboard.console.token');
          const response = await fetch('/api/ai/config', { headers: { authorization: `Bearer ${token}` } });
          return (await response.json()).isEnabled === expected;
        }, enabled, { timeout: SHORT, polling: 100 });
      }
    });
  } finally {
    await context.close();
  }
});

test('the pages fit a 360 px screen and work from the keyboard', async () => {
  const context = await browser.newContext({ viewport: { width: 360, height: 740 } });
  const page = await context.newPage();
  try {
    await withScreenshots('narrow', { page }, async () => {
      for (const path of ['/', '/console', '/demo', '/playground']) {
        await page.goto(`${SERVER_URL}${path}`);
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(width <= 360, `${path} is ${width} px wide`);
      }
      // The root page links to the pages and the health route.
      await page.goto(`${SERVER_URL}/`);
      for (const href of ['/console', '/demo', '/playground', '/api/health']) {
        assert.equal(await page.locator(`a[href="${href}"]`).count(), 1, href);
      }
      // The widget opens, sends and closes from the keyboard.
      await page.goto(`${SERVER_URL}/demo`);
      await page.locator('.launcher').focus();
      await page.keyboard.press('Enter');
      await page.locator('#switchboard-input').waitFor({ timeout: SHORT });
      await page.keyboard.type('Sent from the keyboard');
      await page.keyboard.press('Enter');
      await seen(page, '.msg.ai', 'Mock reply: Sent from the keyboard');
      // A message the server refuses comes back to the input with the reason.
      const tooLong = 'x'.repeat(5001);
      await page.locator('#switchboard-input').evaluate((input, text) => { input.maxLength = 10000; input.value = text; }, tooLong);
      await page.keyboard.press('Enter');
      await seen(page, '.error', 'longer than 5000 characters', SHORT);
      assert.equal(await page.inputValue('#switchboard-input'), tooLong);
      assert.equal(await page.locator('.msg.pending').count(), 0);
      await page.fill('#switchboard-input', '');
      const panelWidth = await page.locator('.panel').evaluate((panel) => panel.getBoundingClientRect().width);
      assert.ok(panelWidth <= 360, `the widget is ${panelWidth} px wide`);
      await page.keyboard.press('Escape');
      await page.locator('.launcher').waitFor({ state: 'visible', timeout: SHORT });
      // Form fields have labels.
      await page.goto(`${SERVER_URL}/console`);
      for (const id of ['email', 'password']) {
        assert.equal(await page.locator(`label[for="${id}"]`).count(), 1, id);
      }
    });
  } finally {
    await context.close();
  }
});

test('the playground streams an answer, stops it, and shows it all after a reload', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  try {
    await withScreenshots('playground', { page }, async () => {
      await page.goto(`${SERVER_URL}/playground`);
      await page.click('#send');
      await seen(page, '#error', 'Type a message first', SHORT);

      // A complete answer.
      await page.fill('#prompt', 'Say hello [[mock:reply]]Hello from the mock[[/mock:reply]]');
      await page.press('#prompt', 'Enter');
      await seen(page, '.msg.ai', 'Hello from the mock');
      await page.locator('#conversations li').first().waitFor({ timeout: SHORT });

      // A slow answer: it grows before it completes, then Stop ends it.
      await page.fill('#prompt', 'Count slowly [[mock:words=400]] [[mock:delay=40]]');
      await page.press('#prompt', 'Enter');
      const answer = page.locator('.msg.ai .text').last();
      await page.waitForFunction(() => {
        const texts = document.querySelectorAll('.msg.ai .text');
        return texts.length === 2 && texts[1].textContent.split(' ').length >= 3;
      }, null, { timeout: LONG });
      const early = (await answer.textContent()).split(' ').length;
      await page.waitForFunction((n) => {
        const texts = document.querySelectorAll('.msg.ai .text');
        return texts[1].textContent.split(' ').length > n;
      }, early, { timeout: LONG });
      assert.equal(await page.locator('#stop').isDisabled(), false);
      await page.click('#stop');
      await page.waitForFunction(() => document.getElementById('stop').disabled, null, { timeout: LONG });
      const stoppedAt = (await answer.textContent()).split(' ').length;
      assert.ok(stoppedAt < 400, `the answer ran to ${stoppedAt} words`);

      // A reload shows the whole conversation, the stopped answer included.
      await page.reload();
      await seen(page, '.msg.ai', 'Hello from the mock');
      await seen(page, '.msg.admin', 'Count slowly');
      const kept = (await page.locator('.msg.ai .text').last().textContent()).split(' ').length;
      assert.ok(kept >= early && kept <= stoppedAt + 5, `kept ${kept}, stopped at ${stoppedAt}`);

      // New chat starts empty; a message there starts a second conversation.
      await page.click('#new-chat');
      assert.equal(await page.locator('.msg').count(), 0);
      await page.fill('#prompt', 'Another topic');
      await page.press('#prompt', 'Enter');
      await seen(page, '.msg.ai', 'Mock reply: Another topic');
      await page.waitForFunction(() => document.querySelectorAll('#conversations li').length === 2, null, { timeout: SHORT });
    });
  } finally {
    await context.close();
  }
});
