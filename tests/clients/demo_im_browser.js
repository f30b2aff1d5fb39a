#!/usr/bin/env node
/*
 * Drive the "IM" tab of xmeet's demo page (served at "/") in headless
 * Chromium, as two users would, and report what each page showed.
 *
 *   node demo_im_browser.js http://127.0.0.1:PORT [--screenshots DIR]
 *
 * Prints one JSON object on stdout: {"ok": true|false, "error", "step",
 * "snapshots": {name: page state}, "pageErrors", "foreignRequests",
 * "tokens", "tokenLeaks", "heartbeat", ...} and exits 0 only when every step passed.
 * Every wait is bounded, and a watchdog ends the process if the whole run
 * takes too long, so a caller never hangs on it.
 *
 * The run sends 60 messages in a burst to fill more than one history page:
 * the server must allow that rate (tests start it with a generous limit).
 *
 * Chromium is Debian's /usr/bin/chromium, started through playwright-core;
 * launch() gives it a new, empty, temporary profile, and each user gets a
 * separate browser context. The driver also reads the WebSocket frames the
 * pages receive, to learn each sessionToken and check that the page keeps
 * it out of storage, cookies and the DOM.
 */
'use strict';

const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const { CHROMIUM, CHROMIUM_ARGS, STEP_TIMEOUT, driver } = require('./driver_support');
const SEEDS = 60;

const ALICE = 'alice';
const BOB = 'bob ü';
const DM = 'Hi bob <b>not bold</b> & <script>x()</script>';
const DM_BACK = 'Hello alice, bob here';
const TEAM = 'Team <i>x</i>';
const FIRST = 'first, before bob opened it';
const REPLY = 'reply from bob';
const THIRD = 'alice again';

function parseArgs(argv) {
  const options = { url: null, screenshots: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--screenshots') { options.screenshots = argv[++i]; }
    else if (!options.url) { options.url = arg; }
    else { throw new Error('unexpected argument ' + JSON.stringify(arg)); }
  }
  if (!options.url) { throw new Error('usage: demo_im_browser.js URL [--screenshots DIR]'); }
  options.url = options.url.replace(/\/+$/, '') + '/';
  return options;
}

const result = {
  ok: false,
  step: null,
  error: null,
  users: { alice: ALICE, bob: BOB },
  steps: [],
  snapshots: {},
  pageErrors: [],
  foreignRequests: [],
  tokens: {},
  tokenLeaks: [],
  heartbeat: {},
  screenshots: []
};

const { snapshot, until, step, main } = driver(result, readPage);

/** What a person sees in the IM tab, read from the DOM only. */
function readPage() {
  const q = (selector) => document.querySelector(selector);
  const all = (selector) => Array.from(document.querySelectorAll(selector));
  const item = (li) => li.dataset.testid === 'im-message'
    ? {
        kind: 'message',
        id: li.dataset.id,
        from: li.dataset.from,
        source: li.dataset.source,
        fromText: li.querySelector('[data-testid="im-message-from"]').textContent,
        to: li.querySelector('[data-testid="im-message-to"]')
          ? li.querySelector('[data-testid="im-message-to"]').textContent : null,
        text: li.querySelector('[data-testid="im-message-text"]').textContent,
        delivery: li.querySelector('[data-testid="im-message-delivery"]')
          ? li.querySelector('[data-testid="im-message-delivery"]').textContent : null,
        elements: li.querySelector('[data-testid="im-message-text"]').children.length
      }
    : { kind: li.dataset.kind || 'other', text: li.textContent };
  const panel = q('#panel-im');
  const status = q('#im-status');
  return {
    tabs: all('#tabbar [role="tab"]').map((t) => t.textContent),
    imSelected: q('#tab-im').getAttribute('aria-selected') === 'true',
    panelHidden: panel.hidden,
    state: status.dataset.state,
    status: status.textContent,
    socketId: panel.dataset.socketId || '',
    loggedIn: panel.dataset.loggedIn === 'true',
    errors: all('#im-errors [data-testid="im-error"]').map((li) => ({
      call: li.dataset.call, status: li.dataset.status, code: li.dataset.code || null,
      text: li.textContent
    })),
    errorsVisible: !q('#im-errors-box').hidden,
    conversations: all('#im-conversations [data-testid="im-conversation-item"]').map((li) => ({
      id: li.dataset.id,
      name: li.querySelector('[data-testid="im-conversation-item-name"]').textContent,
      unread: li.querySelector('[data-testid="im-unread"]')
        ? li.querySelector('[data-testid="im-unread"]').textContent : null,
      current: li.querySelector('button').getAttribute('aria-current') === 'true'
    })),
    direct: all('#im-direct-log > li').map(item),
    convName: q('#im-conversation-name').textContent,
    convId: q('#im-conversation-id').textContent,
    convMembers: q('#im-conversation-members').textContent,
    historyStatus: q('#im-history-status').textContent,
    historyDisabled: q('#im-history').disabled,
    composerDisabled: q('#im-conversation-text').disabled,
    conversation: all('#im-conversation-log > li').map(item),
    roomsState: q('#rooms-status').dataset.state
  };
}

const messages = (items) => items.filter((i) => i.kind === 'message');
const texts = (items) => messages(items).map((m) => m.text);
const sameList = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Watch the page's WebSocket frames: record the sessionToken of every
 * logIn ack (frames like 430[{"userId", "socketId", "sessionToken"}]) and
 * count the server's pings ("2") and the page's pongs ("3").
 */
function watchFrames(page, name) {
  result.tokens[name] = [];
  const heartbeat = result.heartbeat[name] = { pings: 0, pongs: 0 };
  page.on('websocket', (ws) => {
    ws.on('framereceived', (frame) => {
      const text = typeof frame.payload === 'string' ? frame.payload : '';
      const match = /"sessionToken":"([0-9a-f]{32})"/.exec(text);
      if (match && text.startsWith('43')) { result.tokens[name].push(match[1]); }
      if (text === '2') { heartbeat.pings += 1; }
    });
    ws.on('framesent', (frame) => {
      if (frame.payload === '3') { heartbeat.pongs += 1; }
    });
  });
}

async function openPerson(browser, options, name, origin) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
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
  watchFrames(page, name);
  await page.goto(options.url, { waitUntil: 'load' });
  return page;
}

async function logIn(page, userId) {
  await page.fill('#im-user', userId);
  await page.click('#im-login');
  return until(page, 'logged in as ' + userId,
    (s) => s.loggedIn && s.state === 'open' && s.status.includes('Logged in as ' + userId));
}

/** Whether the page keeps token anywhere a script or a person could find it later. */
async function checkTokenKept(page, name, token) {
  const places = await page.evaluate(() => ({
    localStorage: JSON.stringify(Object.assign({}, localStorage)),
    sessionStorage: JSON.stringify(Object.assign({}, sessionStorage)),
    cookie: document.cookie,
    dom: document.documentElement.outerHTML,
    url: location.href
  }));
  Object.keys(places).forEach((place) => {
    if (places[place].includes(token)) { result.tokenLeaks.push(name + ': ' + place); }
  });
}

/**
 * Exercise sio.js on its own, in the page: packet decoding, CONNECT_ERROR
 * of an unknown namespace, the maxPayload guard, a bare logIn ack, and
 * what a client-side disconnection does to pending acks.
 */
async function clientChecks() {
  const { Client, decode } = window.XmeetSio;
  const out = {};
  out.decoded = ['2["a",1]', '2/chat,["a"]', '312[{"x":1}]', '3/chat,7[]', '0{"sid":"s"}',
    '4{"message":"m"}', '51-["b",{"_placeholder":true,"num":0}]', '1', 'x', '2[oops'].map(decode);
  out.connectError = await new Promise((resolve) => {
    const other = new Client({ namespace: '/no-such-namespace' });
    const timer = setTimeout(() => resolve('no answer'), 5000);
    other.on('connect', () => { clearTimeout(timer); other.disconnect(); resolve('connected'); });
    other.on('connect_error', (error) => { clearTimeout(timer); resolve(error.message); });
    other.connect();
  });
  const client = new Client();
  await new Promise((resolve, reject) => {
    client.on('connect', resolve);
    client.on('connect_error', reject);
    client.connect();
  });
  out.connected = [client.state, typeof client.id];
  out.tooLarge = await client.emitWithAck('logIn', { userId: 'x'.repeat(client.engine.maxPayload) })
    .then(() => 'answered', (error) => error.message);
  const ack = await client.emitWithAck('logIn', { userId: 'probe', socketId: client.id });
  out.logIn = [ack.userId, ack.socketId === client.id, /^[0-9a-f]{32}$/.test(ack.sessionToken)];
  const reasons = [];
  client.on('disconnect', (reason) => reasons.push(reason));
  const pending = client.emitWithAck('conversation/list', { sessionToken: ack.sessionToken });
  client.disconnect();
  out.pending = await pending.then(() => 'answered', (error) => error.message);
  out.reasons = reasons;
  out.emitWhenDisconnected = client.emit('logOut', {});
  out.ackWhenDisconnected = await client.emitWithAck('logOut', {})
    .then(() => 'answered', (error) => error.message);
  return out;
}

async function run(options) {
  const origin = new URL(options.url).origin;

  step('launch chromium');
  const browser = await chromium.launch({
    executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: 30000
  });
  try {
    step('open the page twice and show the IM tab');
    const alice = await openPerson(browser, options, 'alice', origin);
    const bob = await openPerson(browser, options, 'bob', origin);
    await snapshot(alice, 'alice_loaded');
    for (const page of [alice, bob]) {
      await page.click('#tab-im');
      await until(page, 'the IM tab is connected',
        (s) => s.imSelected && !s.panelHidden && s.state === 'connected' && s.socketId !== '');
    }
    await snapshot(alice, 'alice_connected');

    step('the Socket.IO client on its own');
    result.clientChecks = await alice.evaluate(clientChecks);

    step('a bad user id gets a visible error ack');
    await alice.fill('#im-user', 'x'.repeat(129));
    await alice.click('#im-login');
    await until(alice, 'alice sees the logIn error',
      (s) => s.errors.some((e) => e.call === 'logIn' && e.status === '400'));
    await snapshot(alice, 'alice_bad_login');

    step('both log in');
    await logIn(alice, ALICE);
    await logIn(bob, BOB);
    await snapshot(alice, 'alice_in');
    await snapshot(bob, 'bob_in');

    step('alice sends bob a direct message, and bob answers');
    await alice.fill('#im-direct-to', BOB);
    await alice.fill('#im-direct-text', DM);
    await alice.press('#im-direct-text', 'Enter');
    await until(bob, 'bob sees alice\'s direct message', (s) => texts(s.direct).includes(DM));
    await until(alice, 'alice sees her sent message, delivered',
      (s) => messages(s.direct).some((m) => m.text === DM && m.source === 'sent' && m.delivery));
    await bob.fill('#im-direct-to', ALICE);
    await bob.fill('#im-direct-text', DM_BACK);
    await bob.click('#im-direct-send');
    await until(alice, 'alice sees bob\'s answer', (s) => sameList(texts(s.direct), [DM, DM_BACK]));
    await until(bob, 'bob sees both messages', (s) => sameList(texts(s.direct), [DM, DM_BACK]));

    step('an event without an ack gets a visible error event');
    await alice.evaluate(() => {
      window.xmeetDemo.tabs.get('im').instance.client.emit('conversation/get', { sessionToken: 'nope' });
    });
    await until(alice, 'alice sees the error event',
      (s) => s.errors.some((e) => e.call === 'error event' && e.status === '401'));
    await snapshot(alice, 'alice_direct');
    await snapshot(bob, 'bob_direct');

    step('alice creates a conversation with bob');
    await alice.fill('#im-create-name', TEAM);
    await alice.fill('#im-create-members', BOB);
    await alice.click('#im-create');
    const created = await until(alice, 'alice has the conversation open',
      (s) => s.conversations.length === 1 && s.convName === TEAM && s.conversations[0].current &&
        s.historyStatus === 'No more history.' && !s.composerDisabled);
    const conversationId = created.convId;
    await until(bob, 'bob sees the new conversation in his list',
      (s) => s.conversations.length === 1 && s.conversations[0].id === conversationId);

    step('alice writes before bob opens it');
    await alice.fill('#im-conversation-text', FIRST);
    await alice.press('#im-conversation-text', 'Enter');
    await until(alice, 'alice sees her message', (s) => sameList(texts(s.conversation), [FIRST]));
    await until(bob, 'bob sees one unread message', (s) => s.conversations[0].unread === '1');
    await snapshot(bob, 'bob_unread');

    step('bob opens the conversation and they chat');
    await bob.click('#im-conversations [data-testid="im-conversation-item"] button');
    await until(bob, 'bob sees the history',
      (s) => s.convId === conversationId && sameList(texts(s.conversation), [FIRST]) &&
        s.historyStatus === 'No more history.' && !s.composerDisabled);
    await bob.fill('#im-conversation-text', REPLY);
    await bob.click('#im-conversation-send');
    await until(alice, 'alice sees bob\'s reply', (s) => sameList(texts(s.conversation), [FIRST, REPLY]));
    await alice.fill('#im-conversation-text', THIRD);
    await alice.press('#im-conversation-text', 'Enter');
    for (const [page, who] of [[alice, 'alice'], [bob, 'bob']]) {
      await until(page, who + ' sees the three messages in order',
        (s) => sameList(texts(s.conversation), [FIRST, REPLY, THIRD]));
    }
    await snapshot(alice, 'alice_chat');
    await snapshot(bob, 'bob_chat');

    step('alice fills more than a history page');
    await alice.evaluate(async (n) => {
      const tab = window.xmeetDemo.tabs.get('im').instance;
      for (let i = 1; i <= n; i++) { await tab.sendToConversation('seed ' + i); }
    }, SEEDS);
    await until(bob, 'bob sees every seed message', (s) => texts(s.conversation).includes('seed ' + SEEDS));

    step('bob opens the conversation again and loads older history');
    await bob.click('#im-conversations [data-testid="im-conversation-item"] button');
    const seeds = [];
    for (let i = 1; i <= SEEDS; i++) { seeds.push('seed ' + i); }
    const everything = [FIRST, REPLY, THIRD].concat(seeds);
    await until(bob, 'bob sees the newest page',
      (s) => sameList(texts(s.conversation), everything.slice(-50)) && !s.historyDisabled);
    await snapshot(bob, 'bob_newest_page');
    await bob.click('#im-history');
    await until(bob, 'bob sees the whole history once, oldest at the top',
      (s) => sameList(texts(s.conversation), everything) && s.historyDisabled &&
        s.historyStatus.includes('No more history.'));
    await snapshot(bob, 'bob_history');

    step('bob reconnects and is logged in again');
    const before = await snapshot(bob);
    await bob.click('#im-reconnect');
    await until(bob, 'bob is logged in on a new socket',
      (s) => s.loggedIn && s.socketId !== '' && s.socketId !== before.socketId &&
        s.status.includes('Logged in as ' + BOB));
    await alice.fill('#im-direct-to', BOB);
    await alice.fill('#im-direct-text', 'after the reconnection');
    await alice.press('#im-direct-text', 'Enter');
    await until(bob, 'bob gets a direct message on the new socket',
      (s) => texts(s.direct).includes('after the reconnection'));
    await snapshot(bob, 'bob_reconnected');

    step('bob logs out, alice writes, bob logs in and gets it');
    await bob.click('#im-logout');
    await until(bob, 'bob is logged out',
      (s) => !s.loggedIn && s.state === 'connected' && s.direct.length === 0 &&
        s.conversations.length === 0);
    await snapshot(bob, 'bob_logged_out');
    await alice.fill('#im-direct-to', BOB);
    await alice.fill('#im-direct-text', 'while you were out');
    await alice.press('#im-direct-text', 'Enter');
    await until(alice, 'alice sees it queued',
      (s) => messages(s.direct).some((m) => m.text === 'while you were out' && m.delivery));
    await logIn(bob, BOB);
    await until(bob, 'bob gets the queued message',
      (s) => sameList(texts(s.direct), ['while you were out']) && s.conversations.length === 1);
    await snapshot(alice, 'alice_queued');

    step('bob leaves the conversation');
    await bob.click('#im-conversations [data-testid="im-conversation-item"] button');
    await until(bob, 'bob has it open', (s) => s.convId === conversationId && !s.composerDisabled);
    await bob.click('#im-leave');
    await until(bob, 'bob\'s list is empty', (s) => s.conversations.length === 0 && s.convId === '');
    await until(alice, 'alice sees bob leave',
      (s) => s.conversation.some((i) => i.kind === 'updated' && i.text === BOB + ' left') &&
        s.convMembers === 'Members: ' + ALICE + ' (admin)');
    await snapshot(alice, 'alice_after_leave');
    await snapshot(bob, 'bob_after_leave');

    step('bob joins again by id');
    await bob.fill('#im-join-id', conversationId);
    await bob.press('#im-join-id', 'Enter');
    await until(bob, 'bob has it open again with its newest page',
      (s) => s.convId === conversationId && s.conversations.length === 1 &&
        sameList(texts(s.conversation), everything.slice(-50)));
    await until(alice, 'alice sees bob join',
      (s) => s.conversation.some((i) => i.kind === 'updated' && i.text === BOB + ' joined') &&
        s.convMembers === 'Members: ' + ALICE + ' (admin), ' + BOB);
    await snapshot(alice, 'alice_final');
    await snapshot(bob, 'bob_final');

    step('the tokens stayed in memory');
    for (const token of result.tokens.alice) { await checkTokenKept(alice, 'alice', token); }
    for (const token of result.tokens.bob) { await checkTokenKept(bob, 'bob', token); }

    if (options.screenshots) {
      step('screenshots');
      fs.mkdirSync(options.screenshots, { recursive: true });
      const wide = path.join(options.screenshots, 'xmeet-im-alice.png');
      await alice.screenshot({ path: wide });
      const other = path.join(options.screenshots, 'xmeet-im-bob.png');
      await bob.screenshot({ path: other });
      const narrow = path.join(options.screenshots, 'xmeet-im-alice-narrow-dark.png');
      await alice.setViewportSize({ width: 390, height: 800 });
      await alice.emulateMedia({ colorScheme: 'dark' });
      await alice.screenshot({ path: narrow, fullPage: true });
      result.screenshots.push(wide, other, narrow);
    }
    step('done');
    result.ok = true;
  } finally {
    await browser.close().catch(() => {});
  }
}

main(parseArgs, run);
