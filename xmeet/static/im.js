/*
 * xmeet demo page, "IM" tab: the instant-messaging protocol of
 * PROTOCOL.md section 3 over Socket.IO, through the page's own client
 * (sio.js, WebSocket transport only). Plain JavaScript, no dependencies.
 *
 * The tab connects when first shown. "Log in" sends logIn with the user
 * id (and a signature, for servers with an auth secret); the
 * sessionToken of the ack lives in this closure only, never in storage.
 * After a reconnection the page logs in again as the same user.
 *
 * Only the open conversation's messages are kept: opening one loads its
 * newest history page, "Load older messages" the pages before it, and
 * live message/conversation events are appended; messages are shown once
 * each, by id. Every failed call and every `error` event is shown in the
 * error list with its statusCode, code and message.
 *
 * All text from the network or from users goes in with textContent.
 */
(function () {
  'use strict';

  var HISTORY_LIMIT = 50;
  var MAX_ERRORS = 8;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  /** "alice, bob ,, carol" -> ["alice", "bob", "carol"] */
  function idList(text) {
    return text.split(',').map(function (id) { return id.trim(); })
      .filter(function (id) { return id !== ''; });
  }

  function clock(ms) {
    var date = new Date(typeof ms === 'number' ? ms : Date.now());
    return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  /** A conversation message's content as text: strings as they are. */
  function contentText(content) {
    if (typeof content === 'string') { return content; }
    if (content && typeof content.text === 'string') { return content.text; }
    return JSON.stringify(content);
  }

  /** Whether an ack is the error object {statusCode, error: {code, message}}. */
  function isError(ack) {
    return !ack || typeof ack !== 'object' || (ack.error && typeof ack.error === 'object');
  }

  function imTab(panel) {
    function $(id) { return document.getElementById('im-' + id); }

    var ui = {
      loginForm: $('login-form'),
      user: $('user'),
      signature: $('signature'),
      login: $('login'),
      logout: $('logout'),
      reconnect: $('reconnect'),
      status: $('status'),
      errorsBox: $('errors-box'),
      errors: $('errors'),
      errorsClear: $('errors-clear'),
      refresh: $('refresh'),
      conversations: $('conversations'),
      createForm: $('create-form'),
      createName: $('create-name'),
      createMembers: $('create-members'),
      create: $('create'),
      joinForm: $('join-form'),
      joinId: $('join-id'),
      join: $('join'),
      directLog: $('direct-log'),
      directForm: $('direct-form'),
      directTo: $('direct-to'),
      directText: $('direct-text'),
      directSend: $('direct-send'),
      convName: $('conversation-name'),
      convId: $('conversation-id'),
      convMembers: $('conversation-members'),
      history: $('history'),
      historyStatus: $('history-status'),
      leave: $('leave'),
      convLog: $('conversation-log'),
      convForm: $('conversation-form'),
      convText: $('conversation-text'),
      convSend: $('conversation-send')
    };

    var client = new window.XmeetSio.Client({
      onIgnored: function (what) { showError('socket.io', null, 'ignored ' + what + ': this page does not support binary'); }
    });

    var token = null;          // the sessionToken: memory only
    var me = null;             // the logged-in user id
    var wanted = null;         // {userId, signature} of the last successful logIn, for reconnections
    var pendingLogin = null;   // {userId, signature} to log in with once connected
    var loggingIn = false;
    var conversations = new Map();   // id -> {conversation, unread}
    var directIds = new Set();
    var open = null;           // the open conversation, see openConversation

    // -- status, errors, controls

    function setStatus(state, text) {
      ui.status.dataset.state = state;
      ui.status.textContent = text;
      panel.dataset.state = state;
    }

    function connectionStatus() {
      if (client.connected && token !== null) {
        setStatus('open', 'Logged in as ' + me + ' (socket ' + client.id + ').');
      } else if (client.connected) {
        setStatus('connected', 'Connected (socket ' + client.id + '). Not logged in.');
      }
    }

    /**
     * Show a failure of call: an error object (statusCode and error), or a
     * local problem (no answer, not connected) as text.
     */
    function showError(call, errorObject, localText) {
      var li = el('li', 'im-error');
      li.dataset.testid = 'im-error';
      li.setAttribute('role', 'alert');
      li.dataset.call = call;
      var text;
      if (errorObject) {
        var error = errorObject.error && typeof errorObject.error === 'object' ? errorObject.error : {};
        li.dataset.status = String(errorObject.statusCode);
        li.dataset.code = String(error.code);
        text = errorObject.statusCode + ' ' + error.code + ': ' + error.message;
      } else {
        li.dataset.status = '';
        text = localText;
      }
      li.appendChild(el('strong', 'im-error-call', call));
      li.appendChild(el('span', 'im-error-text', text));
      li.appendChild(el('time', 'time', clock()));
      ui.errors.appendChild(li);
      while (ui.errors.children.length > MAX_ERRORS) { ui.errors.removeChild(ui.errors.firstChild); }
      ui.errorsBox.hidden = false;
    }

    function updateControls() {
      var connected = client.connected;
      var inside = connected && token !== null;
      var conv = inside && open !== null;
      ui.login.disabled = loggingIn;
      ui.logout.disabled = !inside;
      ui.refresh.disabled = !inside;
      [ui.createName, ui.createMembers, ui.create, ui.joinId, ui.join,
        ui.directTo, ui.directText, ui.directSend].forEach(function (control) {
        control.disabled = !inside;
      });
      ui.convText.disabled = !conv;
      ui.convSend.disabled = !conv;
      ui.leave.disabled = !conv;
      ui.history.disabled = !conv || !open.loaded || open.exhausted || open.pending !== null;
      panel.dataset.loggedIn = String(inside);
    }

    // -- calls

    /**
     * Emit event with payload (plus the sessionToken) asking for an ack;
     * a Promise of the success body, or of null after the failure was
     * shown.
     */
    function call(event, payload) {
      var withToken = Object.assign({ sessionToken: token }, payload);
      return client.emitWithAck(event, withToken).then(function (ack) {
        if (isError(ack)) {
          showError(event, ack && typeof ack === 'object' ? ack : null, 'unexpected answer ' + JSON.stringify(ack));
          return null;
        }
        return ack.body || {};
      }, function (error) {
        showError(event, null, error.message);
        return null;
      });
    }

    // -- message items

    function nearBottom(log) {
      return log.scrollHeight - log.scrollTop - log.clientHeight < 48;
    }

    function append(log, item, forceScroll) {
      var stick = forceScroll || nearBottom(log);
      log.appendChild(item);
      if (stick) { log.scrollTop = log.scrollHeight; }
    }

    function messageItem(m) {
      var li = el('li', 'msg msg-' + m.kind);
      li.dataset.testid = 'im-message';
      li.dataset.id = m.id;
      li.dataset.from = m.from;
      li.dataset.source = m.source;
      if (m.from === me) { li.classList.add('mine'); }
      li.style.setProperty('--nick-hue', String(hue(m.from)));
      var meta = el('div', 'meta');
      var nick = el('span', 'nick', m.from === me ? m.from + ' (you)' : m.from);
      nick.dataset.testid = 'im-message-from';
      meta.appendChild(nick);
      if (m.to) {
        var to = el('span', 'to', '→ ' + m.to.join(', '));
        to.dataset.testid = 'im-message-to';
        meta.appendChild(to);
      }
      if (m.type && m.type !== 'text') { meta.appendChild(el('span', 'tag tag-type', m.type)); }
      var time = el('time', 'time', clock(m.createdAt));
      if (typeof m.createdAt === 'number') { time.dateTime = new Date(m.createdAt).toISOString(); }
      meta.appendChild(time);
      li.appendChild(meta);
      var body = el('div', 'text', m.text);
      body.dataset.testid = 'im-message-text';
      li.appendChild(body);
      if (m.delivery) {
        var delivery = el('div', 'delivery', m.delivery);
        delivery.dataset.testid = 'im-message-delivery';
        li.appendChild(delivery);
      }
      return li;
    }

    function eventItem(kind, text) {
      var li = el('li', 'event event-' + kind, text);
      li.dataset.testid = 'im-event';
      li.dataset.kind = kind;
      return li;
    }

    /** The same stable hue per user id as the Rooms tab's names. */
    function hue(text) {
      var h = 2166136261;
      for (var i = 0; i < text.length; i++) {
        h = Math.imul(h ^ text.charCodeAt(i), 16777619);
      }
      h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
      h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
      return ((h ^ (h >>> 16)) >>> 0) % 360;
    }

    function delivery(online, offline) {
      var parts = [];
      if (online.length) { parts.push('delivered to ' + online.join(', ')); }
      if (offline.length) { parts.push('queued for ' + offline.join(', ') + ' (offline)'); }
      return parts.join('; ') || 'no recipient';
    }

    // -- direct messages

    function showDirect(m, source, deliveryText) {
      if (directIds.has(m.id)) { return; }
      directIds.add(m.id);
      append(ui.directLog, messageItem({
        kind: 'direct', id: String(m.id), from: String(m.from), to: (m.targetIds || []).map(String),
        type: m.type, text: String(m.textContent), createdAt: m.createdAt, source: source,
        delivery: deliveryText
      }), source === 'sent');
    }

    function sendDirect() {
      var targets = idList(ui.directTo.value);
      var text = ui.directText.value;
      if (!targets.length) {
        showError('message/direct', null, 'Name at least one user id to send to.');
        return;
      }
      if (!text.trim()) { return; }
      ui.directText.value = '';
      call('message/direct', { targetIds: targets, type: 'text', textContent: text }).then(function (body) {
        if (!body) {
          if (!ui.directText.value) { ui.directText.value = text; }
          return;
        }
        showDirect({ id: body.id, from: me, targetIds: body.sent, type: 'text', textContent: text },
          'sent', delivery(body.online || [], body.offline || []));
      });
    }

    // -- conversations list

    function describeMembers(conversation) {
      var admins = conversation.admin || [];
      return (conversation.members || []).map(function (id) {
        return admins.indexOf(id) >= 0 ? id + ' (admin)' : id;
      }).join(', ');
    }

    function nameOf(conversation) {
      return conversation.name ? String(conversation.name) : '(no name)';
    }

    function renderConversations() {
      ui.conversations.textContent = '';
      conversations.forEach(function (entry, id) {
        var li = el('li', 'conversation');
        li.dataset.testid = 'im-conversation-item';
        li.dataset.id = id;
        var button = el('button', 'conversation-button');
        button.type = 'button';
        button.setAttribute('aria-current', String(open !== null && open.id === id));
        button.title = 'Open this conversation (' + id + ')';
        var name = el('span', 'conversation-name', nameOf(entry.conversation));
        name.dataset.testid = 'im-conversation-item-name';
        button.appendChild(name);
        var members = el('span', 'conversation-sub', describeMembers(entry.conversation));
        button.appendChild(members);
        if (entry.unread) {
          var badge = el('span', 'badge unread', entry.unread);
          badge.dataset.testid = 'im-unread';
          badge.setAttribute('aria-label', entry.unread + ' unread');
          button.appendChild(badge);
        }
        button.addEventListener('click', function () { openConversation(id); });
        li.appendChild(button);
        ui.conversations.appendChild(li);
      });
      if (!conversations.size) {
        ui.conversations.appendChild(el('li', 'muted empty', token ? 'None yet.' : 'Log in to see them.'));
      }
    }

    function remember(conversation) {
      var entry = conversations.get(conversation.id);
      if (entry) {
        entry.conversation = conversation;
      } else {
        conversations.set(conversation.id, { conversation: conversation, unread: 0 });
      }
    }

    function refreshList() {
      return call('conversation/list', {}).then(function (body) {
        if (!body) { return; }
        var before = conversations;
        conversations = new Map();
        (body.conversations || []).forEach(function (conversation) {
          var old = before.get(conversation.id);
          conversations.set(conversation.id, { conversation: conversation, unread: old ? old.unread : 0 });
        });
        renderConversations();
      });
    }

    function createConversation() {
      var members = idList(ui.createMembers.value);
      call('conversation/add', { name: ui.createName.value.trim(), members: members }).then(function (body) {
        if (!body) { return; }
        ui.createName.value = '';
        ui.createMembers.value = '';
        remember(body.conversation);
        openConversation(body.conversation.id);
      });
    }

    function joinConversation() {
      var id = ui.joinId.value.trim();
      if (!id) { return; }
      call('conversation/join', { conversationId: id }).then(function (body) {
        if (!body) { return; }
        ui.joinId.value = '';
        remember(body.conversation);
        openConversation(id);
      });
    }

    // -- the open conversation

    function renderHeader() {
      var conversation = open && conversations.has(open.id) ? conversations.get(open.id).conversation : null;
      ui.convName.textContent = open ? (conversation ? nameOf(conversation) : open.id) : 'No conversation open';
      ui.convId.textContent = open ? open.id : '';
      ui.convMembers.textContent = conversation ? 'Members: ' + describeMembers(conversation) : '';
    }

    function conversationItem(m, source) {
      return messageItem({
        kind: 'conversation', id: String(m.id), from: String(m.from), type: m.type,
        text: contentText(m.content), createdAt: m.createdAt, source: source
      });
    }

    /** Append m unless it is shown already; while the first page loads, keep it for later. */
    function showConversationMessage(m, source) {
      if (open.pending === 'first') {
        open.early.push({ message: m, source: source });
      } else if (!open.ids.has(m.id)) {
        open.ids.add(m.id);
        if (open.oldest === null) { open.oldest = m.id; }
        append(ui.convLog, conversationItem(m, source), source === 'sent');
      }
    }

    function openConversation(id) {
      var entry = conversations.get(id);
      if (entry) { entry.unread = 0; }
      open = {
        id: id, ids: new Set(), oldest: null, loaded: false, exhausted: false,
        pending: 'first', early: []
      };
      var mine = open;
      ui.convLog.textContent = '';
      ui.historyStatus.textContent = 'Loading…';
      renderHeader();
      renderConversations();
      updateControls();
      call('conversation/history', { conversationId: id, limit: HISTORY_LIMIT }).then(function (body) {
        if (open !== mine) { return; }
        open.pending = null;
        open.loaded = body !== null;
        var page = body ? body.messages || [] : [];
        page.slice().reverse().forEach(function (m) { showConversationMessage(m, 'history'); });
        open.exhausted = page.length < HISTORY_LIMIT;
        ui.historyStatus.textContent = !body ? '' : open.exhausted ? 'No more history.' : '';
        ui.convLog.scrollTop = ui.convLog.scrollHeight;
        mine.early.forEach(function (late) { showConversationMessage(late.message, late.source); });
        mine.early = [];
        updateControls();
      });
      ui.convText.focus();
    }

    function loadOlder() {
      if (!open || open.pending !== null || open.exhausted) { return; }
      var mine = open;
      mine.pending = 'older';
      ui.historyStatus.textContent = 'Loading…';
      updateControls();
      var payload = { conversationId: mine.id, limit: HISTORY_LIMIT };
      if (mine.oldest !== null) { payload.before = mine.oldest; }
      call('conversation/history', payload).then(function (body) {
        if (open !== mine) { return; }
        mine.pending = null;
        var fresh = (body ? body.messages || [] : []).filter(function (m) { return !mine.ids.has(m.id); });
        if (body && !fresh.length) {
          mine.exhausted = true;
          ui.historyStatus.textContent = 'No more history.';
        } else if (body) {
          mine.exhausted = body.messages.length < HISTORY_LIMIT;
          var items = fresh.slice().reverse().map(function (m) {
            mine.ids.add(m.id);
            return conversationItem(m, 'history');
          });
          mine.oldest = fresh[fresh.length - 1].id;
          var height = ui.convLog.scrollHeight;
          var top = ui.convLog.scrollTop;
          var fragment = document.createDocumentFragment();
          items.forEach(function (item) { fragment.appendChild(item); });
          ui.convLog.insertBefore(fragment, ui.convLog.firstChild);
          ui.convLog.scrollTop = top + (ui.convLog.scrollHeight - height);
          ui.historyStatus.textContent = 'Loaded ' + fresh.length + ' older message' +
            (fresh.length === 1 ? '' : 's') + (mine.exhausted ? '. No more history.' : '.');
        } else {
          ui.historyStatus.textContent = '';
        }
        updateControls();
      });
    }

    function sendToConversation(text) {
      if (!open || !text.trim()) { return Promise.resolve(null); }
      var mine = open;
      return call('message/conversation', { conversationId: mine.id, type: 'text', content: text }).then(function (body) {
        if (body && open === mine) {
          showConversationMessage({
            id: body.id, conversationId: mine.id, from: me, type: 'text', content: text, createdAt: Date.now()
          }, 'sent');
        }
        return body;
      });
    }

    function leaveConversation() {
      if (!open) { return; }
      var id = open.id;
      call('conversation/leave', { conversationId: id }).then(function (body) {
        if (!body) { return; }
        conversations.delete(id);
        if (open && open.id === id) { closeConversation('You left ' + nameOf(body.conversation) + '.'); }
        renderConversations();
      });
    }

    function closeConversation(why) {
      open = null;
      ui.convLog.textContent = '';
      ui.historyStatus.textContent = '';
      renderHeader();
      if (why) { append(ui.convLog, eventItem('info', why), true); }
      updateControls();
    }

    /** What changed between two states of a conversation, for the log. */
    function changes(before, after) {
      var lines = [];
      var was = before ? before.members || [] : [];
      var now = after.members || [];
      now.filter(function (id) { return was.indexOf(id) < 0; }).forEach(function (id) {
        if (before) { lines.push(id + ' joined'); }
      });
      was.filter(function (id) { return now.indexOf(id) < 0; }).forEach(function (id) { lines.push(id + ' left'); });
      if (before && before.name !== after.name) { lines.push('renamed to ' + nameOf(after)); }
      return lines.length ? lines.join('; ') : 'conversation updated';
    }

    // -- server events

    client.on('connected', function (data) {
      panel.dataset.socketId = data && data.socketId ? String(data.socketId) : '';
    });

    client.on('error', function (data) {
      showError('error event', data && typeof data === 'object' ? data : null, JSON.stringify(data));
    });

    client.on('message/direct', function (data) {
      if (data && typeof data === 'object') { showDirect(data, 'live'); }
    });

    client.on('message/conversation', function (data) {
      if (!data || typeof data !== 'object') { return; }
      if (open && open.id === data.conversationId) {
        showConversationMessage(data, 'live');
        return;
      }
      var entry = conversations.get(data.conversationId);
      if (entry) {
        entry.unread += 1;
        renderConversations();
      } else {
        refreshList();
      }
    });

    client.on('conversation/updated', function (data) {
      var conversation = data && data.conversation;
      if (!conversation || typeof conversation !== 'object') { return; }
      var entry = conversations.get(conversation.id);
      var before = entry ? entry.conversation : null;
      var member = (conversation.members || []).indexOf(me) >= 0;
      if (member) {
        remember(conversation);
      } else {
        conversations.delete(conversation.id);
      }
      if (open && open.id === conversation.id) {
        append(ui.convLog, eventItem('updated', changes(before, conversation)));
        if (!member) { closeConversation('You are no longer a member of ' + nameOf(conversation) + '.'); }
        renderHeader();
      } else if (member && !before) {
        append(ui.directLog, eventItem('info', 'You are now a member of the conversation ' + nameOf(conversation) + '.'));
      }
      renderConversations();
    });

    // -- connection and session

    function logIn(userId, signature) {
      var payload = { userId: userId, socketId: client.id };
      if (signature) { payload.signature = signature; }
      loggingIn = true;
      updateControls();
      client.emitWithAck('logIn', payload).then(function (ack) {
        loggingIn = false;
        if (isError(ack) || typeof ack.sessionToken !== 'string') {
          showError('logIn', ack && typeof ack === 'object' ? ack : null, 'unexpected answer ' + JSON.stringify(ack));
          connectionStatus();
          updateControls();
          return;
        }
        var sameUser = ack.userId === me;
        token = ack.sessionToken;
        me = ack.userId;
        wanted = { userId: userId, signature: signature };
        if (!sameUser) {
          conversations = new Map();
          directIds = new Set();
          ui.directLog.textContent = '';
          closeConversation(null);
        }
        connectionStatus();
        updateControls();
        refreshList().then(function () {
          if (open) { openConversation(open.id); } else { renderConversations(); }
        });
      }, function (error) {
        loggingIn = false;
        showError('logIn', null, error.message);
        updateControls();
      });
    }

    function logOut() {
      call('logOut', {}).then(function (body) {
        if (!body) { return; }
        token = null;
        wanted = null;
        me = null;
        conversations = new Map();
        directIds = new Set();
        ui.directLog.textContent = '';
        closeConversation('Logged out.');
        renderConversations();
        connectionStatus();
        updateControls();
      });
    }

    client.on('connect', function () {
      connectionStatus();
      var target = pendingLogin || wanted;
      pendingLogin = null;
      if (target) { logIn(target.userId, target.signature); }
      updateControls();
    });

    client.on('connect_error', function (error) {
      token = null;
      setStatus('closed', 'Could not connect: ' + error.message + '.');
      updateControls();
    });

    client.on('disconnect', function (reason) {
      token = null;
      setStatus('closed', 'Disconnected (' + reason + '). Your session ended; Reconnect logs you in again.');
      updateControls();
    });

    function connect() {
      client.connect();
      token = null;
      if (client.state === 'connecting') { setStatus('connecting', 'Connecting…'); }
      updateControls();
    }

    // -- wiring

    ui.loginForm.addEventListener('submit', function (event) {
      event.preventDefault();
      var userId = ui.user.value;
      var signature = ui.signature.value.trim();
      if (!userId) {
        showError('logIn', null, 'Enter a user id.');
        return;
      }
      if (client.connected) {
        logIn(userId, signature);
      } else {
        pendingLogin = { userId: userId, signature: signature };
        connect();
      }
    });
    ui.logout.addEventListener('click', logOut);
    ui.reconnect.addEventListener('click', connect);
    ui.errorsClear.addEventListener('click', function () {
      ui.errors.textContent = '';
      ui.errorsBox.hidden = true;
    });
    ui.refresh.addEventListener('click', refreshList);
    ui.createForm.addEventListener('submit', function (event) {
      event.preventDefault();
      createConversation();
    });
    ui.joinForm.addEventListener('submit', function (event) {
      event.preventDefault();
      joinConversation();
    });
    ui.directForm.addEventListener('submit', function (event) {
      event.preventDefault();
      sendDirect();
    });
    ui.convForm.addEventListener('submit', function (event) {
      event.preventDefault();
      var text = ui.convText.value;
      ui.convText.value = '';
      sendToConversation(text).then(function (body) {
        if (!body && !ui.convText.value) { ui.convText.value = text; }
      });
    });
    ui.history.addEventListener('click', loadOlder);
    ui.leave.addEventListener('click', leaveConversation);

    renderConversations();
    connect();

    return {
      client: client,
      sendToConversation: sendToConversation,
      get loggedIn() { return token !== null; },
      get userId() { return me; }
    };
  }

  window.xmeetDemo.registerTab('im', imTab);
})();
