/*
 * xmeet demo page: plain JavaScript, no build step, no dependencies.
 *
 * The page is a tab bar over independent tabs. Each tab registers a
 * factory with xmeetDemo.registerTab(name, factory); the factory gets the
 * tab's panel element the first time the tab is shown and owns everything
 * inside it. Only the "Rooms" tab exists today (Xmeet rooms over the
 * WebSocket protocol of PROTOCOL.md section 1); another tab needs a button
 * in #tabbar, a panel in <main> and one registerTab call.
 *
 * All text that comes from the network or from users is put in the page
 * with textContent, never parsed as HTML.
 */
(function () {
  'use strict';

  // ---------------------------------------------------------------- tabs

  var tabs = new Map();

  function tabButtons() {
    return Array.prototype.slice.call(document.querySelectorAll('#tabbar [role="tab"]'));
  }

  function registerTab(name, factory) {
    tabs.set(name, { factory: factory, instance: null });
  }

  function showTab(name) {
    tabButtons().forEach(function (button) {
      var selected = button.dataset.tab === name;
      var panel = document.getElementById(button.getAttribute('aria-controls'));
      button.setAttribute('aria-selected', String(selected));
      button.tabIndex = selected ? 0 : -1;
      if (panel) {
        panel.hidden = !selected;
        var entry = tabs.get(button.dataset.tab);
        if (selected && entry && !entry.instance) {
          entry.instance = entry.factory(panel) || {};
        }
      }
    });
  }

  function initTabs() {
    var buttons = tabButtons();
    buttons.forEach(function (button, index) {
      button.addEventListener('click', function () { showTab(button.dataset.tab); });
      button.addEventListener('keydown', function (event) {
        var step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
        if (!step) { return; }
        var next = buttons[(index + step + buttons.length) % buttons.length];
        showTab(next.dataset.tab);
        next.focus();
        event.preventDefault();
      });
    });
    var first = buttons.filter(function (b) { return b.getAttribute('aria-selected') === 'true'; })[0] ||
      buttons[0];
    if (first) { showTab(first.dataset.tab); }
  }

  // ------------------------------------------------------------- helpers

  var CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

  var CLOSE_MEANINGS = {
    1000: 'normal closure',
    1001: 'going away',
    1002: 'protocol error',
    1003: 'unsupported data (binary message)',
    1005: 'no status code',
    1006: 'connection lost or refused',
    1007: 'invalid UTF-8 in a message',
    1008: 'policy violation (sending too fast)',
    1009: 'message too big',
    1011: 'server error',
    1012: 'service restart',
    1013: 'try again later'
  };

  function codePoints(text) {
    return Array.from(text).length;
  }

  function readCookie(name) {
    var parts = document.cookie ? document.cookie.split(';') : [];
    for (var i = 0; i < parts.length; i++) {
      var part = parts[i].trim();
      var eq = part.indexOf('=');
      if (eq > 0 && part.slice(0, eq) === name) {
        try {
          return decodeURIComponent(part.slice(eq + 1));
        } catch (e) {
          return '';
        }
      }
    }
    return '';
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  /** "2015-4-8 14:2:6" -> "14:02"; anything else is shown as it is. */
  function shortTime(sendTime) {
    var match = /^\d+-\d+-\d+ (\d+):(\d+):(\d+)$/.exec(String(sendTime || ''));
    if (!match) { return String(sendTime || ''); }
    function pad(n) { return n.length < 2 ? '0' + n : n; }
    return pad(match[1]) + ':' + pad(match[2]);
  }

  /** A stable hue per member id, so a name keeps its colour. */
  function hue(text) {
    var h = 2166136261;  // FNV-1a: ids that differ in one character get far-apart hues
    for (var i = 0; i < text.length; i++) {
      h = Math.imul(h ^ text.charCodeAt(i), 16777619);
    }
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    return ((h ^ (h >>> 16)) >>> 0) % 360;
  }

  function asInteger(value) {
    var n = typeof value === 'number' ? value : parseInt(String(value), 10);
    return isFinite(n) ? n : null;
  }

  function asArray(value) {
    if (Array.isArray(value)) { return value; }
    if (typeof value === 'string') {
      try {
        var parsed = JSON.parse(value);
        return Array.isArray(parsed) ? parsed : [];
      } catch (e) {
        return [];
      }
    }
    return [];
  }

  // ------------------------------------------------------------ rooms tab

  var PAGE_SIZE = 50;

  function roomsTab(panel) {
    function $(id) { return document.getElementById('rooms-' + id); }

    var ui = {
      connectForm: $('connect-form'),
      room: $('room'),
      nickname: $('nickname'),
      connect: $('connect'),
      disconnect: $('disconnect'),
      status: $('status'),
      view: $('room-view'),
      count: $('member-count'),
      selfNick: $('self-nick'),
      selfId: $('self-id'),
      members: $('members'),
      renameForm: $('changename-form'),
      newname: $('newname'),
      rename: $('changename'),
      history: $('history'),
      historyStatus: $('history-status'),
      log: $('log'),
      sendForm: $('send-form'),
      message: $('message'),
      send: $('send'),
      privateBox: $('private-target'),
      privateName: $('private-name'),
      privateCancel: $('private-cancel')
    };

    var socket = null;
    var session = null;

    function newSession(room) {
      return {
        room: room,
        self: null,
        members: new Map(),   // pid -> nickname, members now
        names: new Map(),     // pid -> last known nickname, including those who left
        count: 0,
        initialHistory: false,
        historyLoaded: 0,     // history entries shown, counted from page 0 at join time
        liveStored: 0,        // chat messages received live since then (they shift the pages)
        pending: null,        // {cursor, skip} of the history page asked for
        exhausted: false,
        privateTo: null,
        opened: false
      };
    }

    // -- status and controls

    function setStatus(state, text) {
      ui.status.dataset.state = state;
      ui.status.textContent = text;
      panel.dataset.state = state;
    }

    function updateControls() {
      var state = ui.status.dataset.state;
      var open = state === 'open';
      var busy = state === 'connecting' || state === 'open' || state === 'closing';
      ui.room.disabled = busy;
      ui.nickname.disabled = busy;
      ui.connect.disabled = busy;
      ui.connect.textContent = session && !busy ? 'Reconnect' : 'Connect';
      ui.disconnect.disabled = !(state === 'connecting' || open);
      ui.message.disabled = !open;
      ui.send.disabled = !open;
      ui.newname.disabled = !open;
      ui.rename.disabled = !open;
      ui.history.disabled = !open || !session || !session.initialHistory ||
        session.exhausted || session.pending !== null;
      ui.view.classList.toggle('offline', !open);
    }

    // -- the message log

    function nearBottom() {
      return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 48;
    }

    function append(item, forceScroll) {
      var stick = forceScroll || nearBottom();
      ui.log.appendChild(item);
      if (stick) { ui.log.scrollTop = ui.log.scrollHeight; }
    }

    /** Put older items above everything shown, keeping the view where it was. */
    function prepend(items) {
      if (!items.length) { return; }
      var fragment = document.createDocumentFragment();
      items.forEach(function (item) { fragment.appendChild(item); });
      var before = ui.log.scrollHeight;
      var top = ui.log.scrollTop;
      ui.log.insertBefore(fragment, ui.log.firstChild);
      ui.log.scrollTop = top + (ui.log.scrollHeight - before);
    }

    function nickOf(pid) {
      if (session && session.names.has(pid)) { return session.names.get(pid); }
      return String(pid);
    }

    function messageItem(m) {
      var li = el('li', 'msg msg-' + m.type);
      li.dataset.testid = 'message';
      li.dataset.type = m.type;
      li.dataset.from = m.from;
      li.dataset.source = m.source;
      if (session && m.from === session.self) { li.classList.add('mine'); }
      li.style.setProperty('--nick-hue', String(hue(String(m.from))));

      var meta = el('div', 'meta');
      var time = el('time', 'time', shortTime(m.sendTime));
      time.title = String(m.sendTime || '');
      var nick = el('span', 'nick', m.nickname);
      nick.dataset.testid = 'message-nick';
      nick.title = String(m.from);
      meta.appendChild(nick);
      if (m.type === 'private') {
        var tag = el('span', 'tag tag-private',
          m.to === (session && session.self) && m.from !== m.to
            ? 'private to you' : 'private to ' + nickOf(m.to));
        tag.dataset.testid = 'private-tag';
        meta.appendChild(tag);
      }
      meta.appendChild(time);
      li.appendChild(meta);

      var body = el('div', 'text', m.text);
      body.dataset.testid = 'message-text';
      li.appendChild(body);
      return li;
    }

    function eventItem(kind, text) {
      var li = el('li', 'event event-' + kind);
      li.dataset.testid = kind === 'error' ? 'error' : 'event';
      li.dataset.kind = kind;
      if (kind === 'error') { li.setAttribute('role', 'alert'); }
      li.appendChild(el('span', 'event-text', text));
      return li;
    }

    function historyItem(entry) {
      var type = String(entry.type || 'normal');
      if (type === 'normal' || type === 'private') {
        return messageItem({
          type: type, from: String(entry.from), nickname: String(entry.nickname || entry.from),
          text: String(entry.payload), sendTime: entry.send_time, source: 'history'
        });
      }
      return eventItem('history', (entry.nickname || entry.from) + ' · ' + type + ': ' +
        (typeof entry.payload === 'string' ? entry.payload : JSON.stringify(entry.payload)));
    }

    // -- members

    function renderMembers() {
      var s = session;
      ui.count.textContent = String(s ? s.count : 0);
      ui.members.textContent = '';
      if (!s) { return; }
      var entries = Array.from(s.members.entries());
      entries.sort(function (a, b) {
        if (a[0] === s.self) { return -1; }
        if (b[0] === s.self) { return 1; }
        return a[1].localeCompare(b[1]) || (a[0] < b[0] ? -1 : 1);
      });
      entries.forEach(function (pair) {
        var pid = pair[0];
        var li = el('li', 'member');
        li.dataset.testid = 'member';
        li.dataset.pid = pid;
        li.style.setProperty('--nick-hue', String(hue(pid)));
        if (pid === s.self) {
          li.classList.add('self');
          li.dataset.self = 'true';
          var me = el('span', 'member-name', pair[1]);
          me.dataset.testid = 'member-name';
          li.appendChild(me);
          li.appendChild(el('span', 'you', '(you)'));
        } else {
          var button = el('button', 'member-button');
          button.type = 'button';
          button.title = 'Send a private message to ' + pair[1];
          button.setAttribute('aria-pressed', String(s.privateTo === pid));
          var name = el('span', 'member-name', pair[1]);
          name.dataset.testid = 'member-name';
          button.appendChild(name);
          button.addEventListener('click', function () { setPrivateTarget(pid); });
          li.appendChild(button);
        }
        ui.members.appendChild(li);
      });
    }

    function renderSelf() {
      var s = session;
      ui.selfId.textContent = s && s.self ? s.self : '';
      ui.selfNick.textContent = s && s.self && s.names.has(s.self) ? s.names.get(s.self) : '—';
    }

    function setPrivateTarget(pid) {
      if (!session) { return; }
      session.privateTo = pid;
      ui.privateBox.hidden = pid === null;
      ui.privateName.textContent = pid === null ? '' : nickOf(pid);
      ui.message.placeholder = pid === null ? 'Write a message' : 'Private message to ' + nickOf(pid);
      renderMembers();
      if (pid !== null) { ui.message.focus(); }
    }

    // -- history

    function setHistoryStatus(text) {
      ui.historyStatus.textContent = text;
    }

    function requestHistory() {
      var s = session;
      if (!s || !socket || s.pending || s.exhausted) { return; }
      // Messages sent since we joined pushed older entries to later pages:
      // ask for the page holding the first entry not shown yet, and skip
      // what we already have.
      var shown = s.liveStored + s.historyLoaded;
      s.pending = { cursor: Math.floor(shown / PAGE_SIZE), skip: shown % PAGE_SIZE };
      socket.send('@history:' + s.pending.cursor);
      setHistoryStatus('Loading…');
      updateControls();
    }

    function onHistory(frame) {
      var s = session;
      var entries = asArray(frame.payload);
      if (!s.initialHistory) {
        s.initialHistory = true;
        s.historyLoaded = entries.length;
        if (entries.length) {
          var items = entries.slice().reverse().map(historyItem);
          items.push(eventItem('divider', 'You joined: earlier messages are above'));
          prepend(items);
          setHistoryStatus('');
        } else {
          s.exhausted = true;
          setHistoryStatus('No more history.');
        }
        ui.log.scrollTop = ui.log.scrollHeight;
      } else if (s.pending) {
        var skip = s.pending.skip;
        s.pending = null;
        var fresh = entries.slice(skip);
        if (!fresh.length) {
          s.exhausted = true;
          setHistoryStatus('No more history.');
        } else {
          s.historyLoaded += fresh.length;
          prepend(fresh.slice().reverse().map(historyItem));
          setHistoryStatus('Loaded ' + fresh.length + ' older message' + (fresh.length === 1 ? '' : 's') + '.');
        }
      } else {
        // A page nobody asked for through the button (e.g. "@history:N"
        // typed in the message box): show it where it arrived.
        append(eventItem('history', 'History page (' + entries.length + ' entries):'));
        entries.slice().reverse().forEach(function (entry) { append(historyItem(entry)); });
      }
      updateControls();
    }

    // -- frames

    function onFrame(frame) {
      var s = session;
      var type = String(frame.type);
      var from = String(frame.from);
      switch (type) {
        case 'self':
          s.self = String(frame.payload);
          renderSelf();
          break;
        case 'member_count':
          var n = asInteger(frame.payload);
          if (n !== null) { s.count = n; }
          renderMembers();
          break;
        case 'members':
          s.members.clear();
          asArray(frame.payload).forEach(function (m) {
            if (m && m.pid !== undefined) {
              s.members.set(String(m.pid), String(m.nickname));
              s.names.set(String(m.pid), String(m.nickname));
            }
          });
          s.count = s.members.size;
          if (s.self && s.members.has(s.self)) { ui.nickname.value = s.members.get(s.self); }
          renderSelf();
          renderMembers();
          break;
        case 'history':
          onHistory(frame);
          break;
        case 'join':
          if (!s.members.has(from)) { s.count += 1; }
          s.members.set(from, String(frame.payload));
          s.names.set(from, String(frame.payload));
          renderMembers();
          append(eventItem('join', String(frame.payload) + ' joined'));
          break;
        case 'leave':
          var who = nickOf(from);
          if (s.members.delete(from)) { s.count = Math.max(0, s.count - 1); }
          if (s.privateTo === from) {
            setPrivateTarget(null);
          }
          renderMembers();
          append(eventItem('leave', who + ' left'));
          break;
        case 'changename':
          var before = nickOf(from);
          var after = String(frame.payload);
          s.names.set(from, after);
          if (s.members.has(from)) { s.members.set(from, after); }
          if (from === s.self) {
            ui.nickname.value = after;
            ui.newname.value = '';
            renderSelf();
          }
          if (s.privateTo === from) { ui.privateName.textContent = after; }
          renderMembers();
          append(eventItem('changename', before + ' is now known as ' + after));
          break;
        case 'normal':
          if (s.initialHistory) { s.liveStored += 1; }
          append(messageItem({
            type: 'normal', from: from, nickname: nickOf(from), text: String(frame.payload),
            sendTime: frame.send_time, source: 'live'
          }), from === s.self);
          break;
        case 'private':
          append(messageItem({
            type: 'private', from: from, to: String(frame.to), nickname: nickOf(from),
            text: String(frame.payload), sendTime: frame.send_time, source: 'live'
          }), from === s.self);
          break;
        case 'error':
          if (s.pending) {
            // The history request was refused (or dropped by the rate limit).
            s.pending = null;
            setHistoryStatus('');
            updateControls();
          }
          append(eventItem('error', 'Error: ' + (typeof frame.payload === 'string'
            ? frame.payload : JSON.stringify(frame.payload))), true);
          break;
        default:
          append(eventItem('other', type + ': ' + JSON.stringify(frame.payload)));
      }
    }

    // -- connection

    function validate(room, nickname) {
      if (!room) { return 'Choose a room.'; }
      if (codePoints(room) > 64) { return 'The room id is longer than 64 characters.'; }
      if (room.indexOf('/') >= 0) { return 'The room id may not contain "/".'; }
      if (CONTROL.test(room)) { return 'The room id may not contain control characters.'; }
      if (codePoints(nickname) > 32) { return 'The nickname is longer than 32 characters.'; }
      if (CONTROL.test(nickname)) { return 'The nickname may not contain control characters.'; }
      return null;
    }

    function connect() {
      var room = ui.room.value;
      var nickname = ui.nickname.value.trim();
      var problem = validate(room, nickname);
      if (problem) {
        setStatus('invalid', problem);
        updateControls();
        return;
      }
      if (socket) { socket.close(1000, 'switching rooms'); }

      // The previous session stays on screen until the new one opens, so a
      // failed attempt does not wipe what was said.
      session = newSession(room);
      ui.privateBox.hidden = true;
      try {
        history.replaceState(null, '', '#' + encodeURIComponent(room));
      } catch (e) { /* not essential */ }

      var scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
      var url = scheme + '//' + location.host + '/xgate/websocket/' + encodeURIComponent(room) +
        (nickname ? '?nickname=' + encodeURIComponent(nickname) : '');
      var mine = session;
      var ws;
      try {
        ws = new WebSocket(url);
      } catch (e) {
        setStatus('closed', 'Could not connect: ' + e.message);
        updateControls();
        return;
      }
      socket = ws;
      setStatus('connecting', 'Connecting to ' + room + '…');
      updateControls();

      ws.onopen = function () {
        if (socket !== ws) { return; }
        mine.opened = true;
        ui.log.textContent = '';
        setHistoryStatus('');
        setPrivateTarget(null);
        renderSelf();
        renderMembers();
        setStatus('open', 'Connected to room ' + room + '.');
        updateControls();
        ui.message.focus();
      };
      ws.onmessage = function (event) {
        if (socket !== ws) { return; }
        var frame;
        try {
          frame = JSON.parse(event.data);
        } catch (e) {
          append(eventItem('error', 'Unreadable frame from the server.'));
          return;
        }
        if (frame && typeof frame === 'object') { onFrame(frame); }
      };
      ws.onclose = function (event) {
        if (socket !== ws) { return; }
        socket = null;
        var meaning = CLOSE_MEANINGS[event.code] || 'unknown code';
        var text = (mine.opened ? 'Disconnected' : 'Could not connect') +
          ' (code ' + event.code + ': ' + meaning + ')' +
          (event.reason ? ' — ' + event.reason : '') + '.';
        if (!mine.opened && event.code === 1006) {
          text += ' The server refused the room or nickname, or is unreachable.';
        }
        ui.status.dataset.code = String(event.code);
        ui.status.dataset.reason = event.reason || '';
        setStatus('closed', text);
        append(eventItem('closed', text), true);
        if (mine.pending) { mine.pending = null; setHistoryStatus(''); }
        updateControls();
      };
    }

    function disconnect() {
      if (socket) {
        setStatus('closing', 'Disconnecting…');
        updateControls();
        socket.close(1000, 'bye');
      }
    }

    function send(text) {
      if (socket && socket.readyState === WebSocket.OPEN) {
        socket.send(text);
        return true;
      }
      return false;
    }

    // -- wiring

    ui.connectForm.addEventListener('submit', function (event) {
      event.preventDefault();
      connect();
    });
    ui.disconnect.addEventListener('click', disconnect);
    ui.sendForm.addEventListener('submit', function (event) {
      event.preventDefault();
      var text = ui.message.value;
      if (!text.trim()) { return; }
      var to = session && session.privateTo;
      if (send(to ? '@to:' + to + '|' + text : text)) {
        ui.message.value = '';
      }
      ui.message.focus();
    });
    ui.privateCancel.addEventListener('click', function () {
      setPrivateTarget(null);
      ui.message.focus();
    });
    ui.renameForm.addEventListener('submit', function (event) {
      event.preventDefault();
      // The server is the judge of a valid name: it answers with an error.
      if (ui.newname.value.trim()) { send('@changename:' + ui.newname.value); }
    });
    ui.history.addEventListener('click', requestHistory);
    ui.message.addEventListener('keydown', function (event) {
      if (event.key === 'Escape' && session && session.privateTo) { setPrivateTarget(null); }
    });

    var fromHash = '';
    try {
      fromHash = decodeURIComponent(location.hash.replace(/^#/, ''));
    } catch (e) { /* ignore a malformed hash */ }
    ui.room.value = fromHash || 'lobby';
    ui.nickname.value = readCookie('nickname');
    updateControls();

    return {
      connect: connect,
      disconnect: disconnect,
      get socket() { return socket; },
      get session() { return session; }
    };
  }

  // ---------------------------------------------------------------- start

  registerTab('rooms', roomsTab);

  window.xmeetDemo = { registerTab: registerTab, showTab: showTab, tabs: tabs };

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', initTabs);
  } else {
    initTabs();
  }
})();
