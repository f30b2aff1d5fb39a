#!/usr/bin/env node
/*
 * Drive xmeet's demo page (served at "/") in headless Chromium, as three
 * people in one room would, and report what each page showed.
 *
 *   node demo_browser.js http://127.0.0.1:PORT [--room ROOM] [--screenshots DIR]
 *
 * Prints one JSON object on stdout: {"ok": true|false, "error", "step",
 * "snapshots": {name: page state}, "pageErrors", "foreignRequests", ...}
 * and exits 0 only when every step passed. Every wait is bounded, and a
 * watchdog ends the process if the whole run takes too long, so a caller
 * never hangs on it.
 *
 * The run sends 60 messages in a burst to fill more than one history page:
 * the server must allow that rate (tests start it with a generous limit).
 *
 * Chromium is Debian's /usr/bin/chromium, started through playwright-core;
 * launch() gives it a new, empty, temporary profile, and each person gets
 * a separate browser context, so cookies are not shared between them.
 */
'use strict';

const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const { CHROMIUM, CHROMIUM_ARGS, STEP_TIMEOUT, driver } = require('./driver_support');
const SEEDS = 60;
const PAGE_SIZE = 50;

function parseArgs(argv) {
  const options = { url: null, room: null, screenshots: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--room') { options.room = argv[++i]; }
    else if (arg === '--screenshots') { options.screenshots = argv[++i]; }
    else if (!options.url) { options.url = arg; }
    else { throw new Error('unexpected argument ' + JSON.stringify(arg)); }
  }
  if (!options.url) { throw new Error('usage: demo_browser.js URL [--room ROOM] [--screenshots DIR]'); }
  options.url = options.url.replace(/\/+$/, '') + '/';
  // A space and non-ASCII letters check that the page encodes the room id.
  options.room = options.room || 'demo test ü ' + process.pid;
  return options;
}

const result = {
  ok: false,
  step: null,
  error: null,
  room: null,
  steps: [],
  snapshots: {},
  pageErrors: [],
  foreignRequests: [],
  screenshots: []
};

const { snapshot, until, step, main } = driver(result, readPage);

/** What a person sees on the page, read from the DOM only. */
function readPage() {
  const q = (selector) => document.querySelector(selector);
  const status = q('#rooms-status');
  const items = Array.from(document.querySelectorAll('#rooms-log > li'));
  return {
    state: status.dataset.state,
    status: status.textContent,
    closeCode: status.dataset.code || null,
    self: q('#rooms-self-id').textContent,
    selfNickname: q('#rooms-self-nick').textContent,
    roomInput: q('#rooms-room').value,
    nicknameInput: q('#rooms-nickname').value,
    count: q('#rooms-member-count').textContent,
    members: Array.from(document.querySelectorAll('#rooms-members [data-testid="member"]')).map(
      (li) => ({
        pid: li.dataset.pid,
        nickname: li.querySelector('[data-testid="member-name"]').textContent,
        self: li.dataset.self === 'true'
      })),
    log: items.map((li) => li.dataset.testid === 'message'
      ? {
          kind: 'message',
          type: li.dataset.type,
          source: li.dataset.source,
          from: li.dataset.from,
          nickname: li.querySelector('[data-testid="message-nick"]').textContent,
          text: li.querySelector('[data-testid="message-text"]').textContent,
          privateTag: li.querySelector('[data-testid="private-tag"]')
            ? li.querySelector('[data-testid="private-tag"]').textContent : null,
          elements: li.querySelector('[data-testid="message-text"]').children.length
        }
      : { kind: li.dataset.kind, text: li.textContent }),
    historyStatus: q('#rooms-history-status').textContent,
    historyDisabled: q('#rooms-history').disabled,
    privateTarget: q('#rooms-private-target').hidden ? null : q('#rooms-private-name').textContent,
    tabs: Array.from(document.querySelectorAll('#tabbar [role="tab"]')).map((t) => t.textContent)
  };
}

const messages = (state) => state.log.filter((item) => item.kind === 'message');
const texts = (state) => messages(state).map((m) => m.text);
const names = (state) => state.members.map((m) => m.nickname).sort();
const sameList = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

async function openPerson(browser, options, name, origin) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  page.on('pageerror', (error) => result.pageErrors.push(name + ': ' + String(error)));
  page.on('console', (message) => {
    if (message.type() === 'error') { result.pageErrors.push(name + ' console: ' + message.text()); }
  });
  page.on('request', (request) => {
    const url = request.url();
    if (!url.startsWith(origin) && !url.startsWith(origin.replace(/^http/, 'ws'))) {
      result.foreignRequests.push(url);
    }
  });
  await page.goto(options.url, { waitUntil: 'load' });
  return page;
}

async function connect(page, room, nickname) {
  await page.fill('#rooms-room', room);
  await page.fill('#rooms-nickname', nickname);
  await page.click('#rooms-connect');
  return until(page, 'connected with a member id',
    (s) => s.state === 'open' && s.self !== '' && s.members.some((m) => m.self));
}

async function say(page, text) {
  await page.fill('#rooms-message', text);
  await page.press('#rooms-message', 'Enter');
}

async function run(options) {
  const origin = new URL(options.url).origin;
  const room = options.room;
  result.room = room;

  step('launch chromium');
  const browser = await chromium.launch({
    executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: 30000
  });
  try {
    step('open the page twice');
    const alice = await openPerson(browser, options, 'alice', origin);
    const bob = await openPerson(browser, options, 'bob', origin);
    const first = await snapshot(alice, 'alice_loaded');
    if (first.state !== 'idle' || !sameList(first.tabs, ['Rooms', 'IM'])) {
      throw new Error('page did not load idle with the Rooms and IM tabs');
    }

    step('alice connects');
    await connect(alice, room, 'alice');
    await until(alice, 'alice alone with an empty history',
      (s) => s.count === '1' && sameList(names(s), ['alice']) &&
        s.historyStatus === 'No more history.' && s.historyDisabled);
    await snapshot(alice, 'alice_alone');

    step('bob connects');
    await connect(bob, room, 'bob');
    await until(bob, 'bob sees alice and himself',
      (s) => s.count === '2' && sameList(names(s), ['alice', 'bob']));
    await until(alice, 'alice sees bob join',
      (s) => s.count === '2' && sameList(names(s), ['alice', 'bob']) &&
        s.log.some((i) => i.kind === 'join' && i.text === 'bob joined'));

    step('alice and bob chat');
    const hello = 'Hello from alice <b>not bold</b> & <script>x()</script>';
    const hi = 'Hi alice, bob here';
    await say(alice, hello);
    await until(bob, 'bob sees alice\'s message', (s) => texts(s).includes(hello));
    await say(bob, hi);
    for (const [page, who] of [[alice, 'alice'], [bob, 'bob']]) {
      await until(page, who + ' sees both messages in order',
        (s) => sameList(texts(s), [hello, hi]));
    }

    step('alice sends bob a private message');
    await alice.click('#rooms-members [data-testid="member"]:not([data-self]) button');
    await until(alice, 'the private target is bob', (s) => s.privateTarget === 'bob');
    await say(alice, 'psst bob');
    await until(bob, 'bob sees the private message',
      (s) => messages(s).some((m) => m.type === 'private' && m.text === 'psst bob'));
    await until(alice, 'alice sees her private message',
      (s) => messages(s).some((m) => m.type === 'private' && m.text === 'psst bob'));
    await alice.click('#rooms-private-cancel');
    await until(alice, 'the private target is cleared', (s) => s.privateTarget === null);
    await snapshot(alice, 'alice_chat');
    await snapshot(bob, 'bob_chat');

    step('alice fills more than a history page');
    await alice.evaluate((n) => {
      const socket = window.xmeetDemo.tabs.get('rooms').instance.socket;
      for (let i = 1; i <= n; i++) { socket.send('seed ' + i); }
    }, SEEDS);
    await until(bob, 'bob sees every seed message', (s) => texts(s).includes('seed ' + SEEDS));

    step('a third person connects without a nickname');
    const carol = await openPerson(browser, options, 'carol', origin);
    await connect(carol, room, '');
    const carolIn = await until(carol, 'carol sees the newest history page',
      (s) => s.count === '3' && messages(s).length === PAGE_SIZE && !s.historyDisabled);
    await snapshot(carol, 'carol_joined');
    const guest = carolIn.members.filter((m) => m.self)[0].nickname;
    await until(alice, 'alice sees the guest join',
      (s) => s.count === '3' && names(s).includes(guest));

    step('live messages arrive, then carol loads older history');
    for (let i = 1; i <= 3; i++) { await say(alice, 'live ' + i); }
    await until(carol, 'carol sees the live messages', (s) => texts(s).includes('live 3'));
    await carol.click('#rooms-history');
    const everything = [hello, hi];
    for (let i = 1; i <= SEEDS; i++) { everything.push('seed ' + i); }
    everything.push('live 1', 'live 2', 'live 3');
    await until(carol, 'carol sees the whole history once, oldest at the top',
      (s) => sameList(texts(s), everything) && !s.historyDisabled);
    await carol.click('#rooms-history');
    await until(carol, 'carol is told there is no more history',
      (s) => s.historyStatus === 'No more history.' && s.historyDisabled);
    await snapshot(carol, 'carol_history');

    step('bob changes his nickname');
    await bob.fill('#rooms-newname', 'bobby');
    await bob.click('#rooms-changename');
    await until(bob, 'bob is bobby', (s) => s.selfNickname === 'bobby' &&
      sameList(names(s), ['alice', 'bobby', guest].sort()));
    await until(alice, 'alice sees bobby',
      (s) => sameList(names(s), ['alice', 'bobby', guest].sort()) &&
        s.log.some((i) => i.kind === 'changename' && i.text === 'bob is now known as bobby'));

    step('an invalid nickname is refused with a visible error');
    await bob.fill('#rooms-newname', 'x'.repeat(40));
    await bob.click('#rooms-changename');
    await until(bob, 'bob sees an error', (s) => s.log.some((i) => i.kind === 'error'));
    await snapshot(bob, 'bob_final');

    step('carol disconnects and reconnects');
    await carol.click('#rooms-disconnect');
    await until(carol, 'carol sees the close code',
      (s) => s.state === 'closed' && s.closeCode === '1000');
    await snapshot(carol, 'carol_closed');
    await until(alice, 'alice sees carol leave',
      (s) => s.count === '2' && s.log.some((i) => i.kind === 'leave' && i.text === guest + ' left'));
    await carol.click('#rooms-connect');
    await until(carol, 'carol is back with the same nickname',
      (s) => s.state === 'open' && s.count === '3' &&
        s.members.some((m) => m.self && m.nickname === guest));
    await snapshot(carol, 'carol_reconnected');

    step('carol reloads the page and is known again by her cookie');
    await carol.reload({ waitUntil: 'load' });
    await snapshot(carol, 'carol_reloaded');
    await carol.click('#rooms-connect');
    await until(carol, 'carol is back under her saved nickname',
      (s) => s.state === 'open' && s.count === '3' &&
        s.members.some((m) => m.self && m.nickname === guest));
    await until(alice, 'alice sees carol again',
      (s) => s.count === '3' && s.log.filter((i) => i.kind === 'join').length === 4);
    await snapshot(carol, 'carol_final');
    await snapshot(alice, 'alice_final');

    if (options.screenshots) {
      step('screenshots');
      fs.mkdirSync(options.screenshots, { recursive: true });
      const wide = path.join(options.screenshots, 'xmeet-demo-alice.png');
      await alice.screenshot({ path: wide });
      const other = path.join(options.screenshots, 'xmeet-demo-bob.png');
      await bob.screenshot({ path: other });
      const narrow = path.join(options.screenshots, 'xmeet-demo-carol-narrow-dark.png');
      await carol.setViewportSize({ width: 390, height: 800 });
      await carol.emulateMedia({ colorScheme: 'dark' });
      await carol.screenshot({ path: narrow, fullPage: true });
      result.screenshots.push(wide, other, narrow);
    }
    step('done');
    result.ok = true;
  } finally {
    await browser.close().catch(() => {});
  }
}

main(parseArgs, run);
