/*
 * nextbest browser SDK: no dependencies. This is the source of both builds in dist/ (an ES
 * module and a classic script that defines `window.Nextbest`); `make sdk` writes them.
 *
 *   const nb = Nextbest.init({ endpoint: "https://reco.shop.example", key: "nbb_..." });
 *   nb.track("view", { item_id: "sku-1", context: { placement: "product" } });
 *   nb.track("purchase", { item_id: "sku-1", value: 19.9 });
 *   const reply = await nb.recommend({ n: 8, item_id: "sku-1" });
 *   // reply.items: [{item_id, score, source, reason}], reply.recommendation_id
 *   const found = await nb.search("running shoes", { n: 12 });
 *   nb.identify("u-42", tokenFromYourServer);   // after a login: this session is u-42's
 *   nb.logout();           // the next event starts a new, anonymous session
 *
 * - `key` is a browser key: public, it acts for this session only. To act for a logged-in
 *   user the page also needs a user token that the shop's server made (Python:
 *   nextbest.user_tokens.sign_user_token); pass it to `identify`, or as `userId` and
 *   `userToken` to `init` on the pages of a logged-in user.
 * - The session id lives in a first-party cookie (default "nb_sid") that expires after 30
 *   minutes without an event, the usual session gap.
 * - Events wait in a queue and leave in batches (every `flushInterval` ms, or at
 *   `batchSize`). The queue is kept in localStorage too (at most `maxQueue` events, the
 *   oldest dropped first), so events not yet sent when the shopper goes to the next page are
 *   sent from there: every event has its own id, so one sent twice is logged once.
 * - A failed send (network, 429, 5xx) is retried with exponential backoff and jitter.
 * - When the page is hidden or left, everything queued is sent with `keepalive`, split into
 *   requests that fit the browser's 64 KB keepalive budget; what is not confirmed stays in
 *   the stored queue for the next page.
 * - `recommend`, `search`, `keywords` and `affinity` give up after `timeout` ms.
 * - Every error reaches `onError` once: a refused or dropped batch, a failed request (whose
 *   promise also rejects with the same error).
 *
 * Privacy:
 * - `consent: "pending"` (for a shop that asks first): events wait in memory, nothing is
 *   sent or stored and no cookie is set until `grantConsent()`; `revokeConsent()` (or
 *   `consent: "denied"`) drops what waits, deletes the cookie and the stored queue and sends
 *   nothing more. Lists and searches still work meanwhile, without the session.
 * - Global Privacy Control: a browser that sends it (navigator.globalPrivacyControl) is
 *   treated as denied, unless `respectGlobalPrivacyControl: false`.
 * - The cookie: `cookieDomain` (e.g. ".shop.example" to share it across subdomains; default:
 *   this host), `cookieSameSite` ("Lax"), `cookieSecure` (default: on over https).
 */

var VERSION = "0.0.0";  // written by the build from pyproject.toml
var MAX_BATCH = 500;  // events per request (the server's limit)
var KEEPALIVE_BYTES = 60000;  // under the 64 KB that browsers allow all keepalive requests

var DEFAULTS = {
  endpoint: "",
  key: "",
  writeKey: "",
  readKey: "",
  userId: "",
  userToken: "",
  cookieName: "nb_sid",
  cookieDomain: "",
  cookieSameSite: "Lax",
  cookieSecure: null,
  consent: "granted",
  respectGlobalPrivacyControl: true,
  sessionMinutes: 30,
  batchSize: 20,
  flushInterval: 1000,
  maxRetries: 6,
  retryBase: 500,
  maxQueue: 1000,
  timeout: 3000,
  persist: true,
  onError: function (error) { if (globalThis.console) globalThis.console.warn("nextbest:", error); },
};

function randomId() {
  var crypto = globalThis.crypto;
  if (crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
  var bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
}

function readCookie(name) {
  var found = document.cookie.split("; ").filter(function (c) { return c.indexOf(name + "=") === 0; })[0];
  return found ? decodeURIComponent(found.slice(name.length + 1)) : null;
}

function writeCookie(name, value, minutes, options) {
  var expires = new Date(Date.now() + minutes * 60000).toUTCString();
  var https = globalThis.location && globalThis.location.protocol === "https:";
  var secure = options.cookieSecure === null ? https : !!options.cookieSecure;
  document.cookie = name + "=" + encodeURIComponent(value) + "; expires=" + expires + "; path=/" +
    (options.cookieDomain ? "; domain=" + options.cookieDomain : "") +
    "; SameSite=" + options.cookieSameSite + (secure ? "; Secure" : "");
}

/** An Error carrying the server's error body ({error, detail}) and status, if any. */
function failure(message, body, status) {
  var error = new Error(message);
  error.error = (body && body.error) || message;
  error.detail = (body && body.detail) || [];
  if (status !== undefined) error.status = status;
  return error;
}

function Client(options) {
  options = options || {};
  this.options = {};
  for (var key in DEFAULTS) this.options[key] = key in options ? options[key] : DEFAULTS[key];
  this.options.endpoint = String(this.options.endpoint).replace(/\/$/, "");
  this.options.writeKey = this.options.writeKey || this.options.key;
  this.options.readKey = this.options.readKey || this.options.key;
  if (["granted", "pending", "denied"].indexOf(this.options.consent) < 0) {
    throw new Error("consent must be granted, pending or denied, not " + this.options.consent);
  }
  this.consent = this.options.consent;
  this.memorySession = null;  // the session id while consent is pending (no cookie yet)
  this.pendingLogin = null;  // [userId, userToken] of a login while consent is pending
  this.storageKey = "nextbest-queue:" + this.options.cookieName;
  this.queue = this.allowed() ? this.stored() : [];  // what an earlier page left unsent
  this.sending = false;
  this.attempt = 0;
  this.timer = null;
  var self = this;
  this.interval = globalThis.setInterval(function () { self.flush(); }, this.options.flushInterval);
  var onHide = function () { self.flushAll(); };
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") onHide();
  });
  globalThis.addEventListener("pagehide", onHide);
  globalThis.addEventListener("online", function () { self.attempt = 0; self.flush(); });
}

Client.prototype.version = VERSION;

/** May this client send events and keep a cookie: consent granted, and no Global Privacy
 *  Control signal (unless told to ignore it). */
Client.prototype.allowed = function () {
  var gpc = globalThis.navigator && globalThis.navigator.globalPrivacyControl === true;
  return this.consent === "granted" && !(gpc && this.options.respectGlobalPrivacyControl);
};

/** Report an error to onError (once per error). */
Client.prototype.report = function (error) {
  try {
    this.options.onError(error);
  } catch (ignored) {
    // the page's handler failed: nothing more to do
  }
  return error;
};

// ---- the stored queue --------------------------------------------------------------

Client.prototype.stored = function () {
  if (!this.options.persist) return [];
  try {
    var events = JSON.parse(globalThis.localStorage.getItem(this.storageKey) || "[]");
    return Array.isArray(events) ? events.slice(-this.options.maxQueue) : [];
  } catch (error) {
    return [];  // storage blocked or damaged
  }
};

Client.prototype.store = function () {
  if (!this.options.persist || !this.allowed()) return;
  try {
    if (this.queue.length) globalThis.localStorage.setItem(this.storageKey, JSON.stringify(this.queue));
    else globalThis.localStorage.removeItem(this.storageKey);
  } catch (error) {
    // storage blocked or full: the queue lives as long as the page
  }
};

/** Take these events out of the queue (sent, or refused for good). */
Client.prototype.settle = function (batch) {
  var ids = {};
  batch.forEach(function (event) { ids[event.event_id] = true; });
  this.queue = this.queue.filter(function (event) { return !ids[event.event_id]; });
  this.store();
};

// ---- consent and session -----------------------------------------------------------

/** Consent given: the events that waited leave, and the session gets its cookie. */
Client.prototype.grantConsent = function () {
  var self = this;
  var login = this.pendingLogin;
  this.consent = "granted";
  this.pendingLogin = null;
  if (!this.allowed()) return Promise.resolve();  // Global Privacy Control still says no
  if (this.memorySession) this.sessionId();
  this.store();
  return this.drain().then(function () {
    if (login) return self.identify(login[0], login[1]);
  });
};

/** Consent withdrawn: what waits is dropped, the cookie and stored queue deleted. */
Client.prototype.revokeConsent = function () {
  this.queue = [];
  this.pendingLogin = null;
  try {
    globalThis.localStorage.removeItem(this.storageKey);
  } catch (error) {
    // storage blocked: nothing was stored
  }
  this.consent = "denied";
  this.resetSession();
};

/** The session id: the cookie's, or a new one; each call keeps the session alive. Before
 *  consent, it lives in memory only. */
Client.prototype.sessionId = function () {
  var id = readCookie(this.options.cookieName) || this.memorySession || randomId();
  if (!this.allowed()) {
    this.memorySession = id;
    return id;
  }
  this.memorySession = null;
  writeCookie(this.options.cookieName, id, this.options.sessionMinutes, this.options);
  return id;
};

/** Forget the session (the next event starts a new one). */
Client.prototype.resetSession = function () {
  this.memorySession = null;
  writeCookie(this.options.cookieName, "", -1, this.options);
};

/** The request headers: the key, the user token when there is one, and JSON. */
Client.prototype.headers = function (key, json, userToken) {
  var headers = { "Authorization": "Bearer " + key };
  var token = userToken === undefined ? this.options.userToken : userToken;
  if (token) headers["X-User-Token"] = token;
  if (json) headers["Content-Type"] = "application/json";
  return headers;
};

// ---- logins ------------------------------------------------------------------------

/** A login: the session (its earlier events too) belongs to `userId` from now on.
 *  `userToken`: the shop's server's token for the user (a browser key needs it).
 *  Resolves with the server's reply ({session_id, user_id, events}). */
Client.prototype.identify = function (userId, userToken) {
  var self = this;
  if (!this.allowed()) {  // sent once consent is granted (nothing at all if denied)
    if (this.consent === "pending") this.pendingLogin = [userId, userToken];
    return Promise.resolve(null);
  }
  var token = userToken === undefined ? this.options.userToken : userToken || "";
  var body = JSON.stringify({ session_id: this.sessionId(), user_id: String(userId) });
  var attempt = 0;
  var send = function () {
    return globalThis.fetch(self.options.endpoint + "/v1/identify", {
      method: "POST",
      headers: self.headers(self.options.writeKey, true, token),
      body: body,
    }).then(function (reply) {
      if (reply.status === 429 || reply.status >= 500) throw failure("server busy: " + reply.status);
      return reply.json().then(function (answer) {
        if (!reply.ok) throw failure(answer.error || "HTTP " + reply.status, answer, reply.status);
        return answer;
      });
    }).catch(function (error) {
      attempt += 1;
      if (error.status || attempt > self.options.maxRetries) throw self.report(error);  // refused, or gave up
      var wait = self.options.retryBase * Math.pow(2, attempt - 1) * (0.5 + Math.random());
      return new Promise(function (resolve) { globalThis.setTimeout(resolve, wait); }).then(send);
    });
  };
  // Events sent before the login stay in this session and leave without the user; the
  // user and token are kept only once the server took them (a refused login leaves the
  // client anonymous, so its later events are not refused for an unproven user).
  return this.drain().then(send).then(function (answer) {
    self.options.userId = String(userId);
    self.options.userToken = token;
    return answer;
  });
};

/** A logout: forget the user, and start a new anonymous session with the next event. */
Client.prototype.logout = function () {
  var self = this;
  return this.drain().then(function () {
    self.options.userId = "";
    self.options.userToken = "";
    self.resetSession();
  });
};

// ---- events ------------------------------------------------------------------------

/** Queue one event: type is view, click, cart, remove-from-cart, purchase, search, ...
 *  Returns its event id (null when consent is denied: nothing is kept). */
Client.prototype.track = function (type, fields) {
  if (!this.allowed() && this.consent !== "pending") return null;
  var event = { event_id: randomId(), type: type, session_id: this.sessionId(), timestamp: Date.now() / 1000 };
  if (this.options.userId) event.user_id = this.options.userId;
  for (var key in fields || {}) if (fields[key] !== undefined && fields[key] !== null) event[key] = fields[key];
  if (this.queue.length >= this.options.maxQueue) this.queue.shift();  // the oldest goes first
  this.queue.push(event);
  this.store();
  if (this.queue.length >= this.options.batchSize) this.flush();
  return event.event_id;
};

/** The queue's first events that fit one request: at most 500, and at most `bytes` of body. */
Client.prototype.nextBatch = function (from, bytes) {
  var batch = [];
  var size = 12;  // {"events":[]}
  for (var k = from; k < this.queue.length && batch.length < MAX_BATCH; k++) {
    var length = JSON.stringify(this.queue[k]).length + 1;
    if (batch.length && size + length > bytes) break;
    batch.push(this.queue[k]);
    size += length;
  }
  return batch;
};

/** POST a batch; resolves when it is settled (sent, or refused for good), rejects on a
 *  network error, 429 or 5xx (to be retried). */
Client.prototype.post = function (batch, keepalive) {
  var self = this;
  return globalThis.fetch(this.options.endpoint + "/v1/events", {
    method: "POST",
    keepalive: !!keepalive,
    headers: this.headers(this.options.writeKey, true),
    body: JSON.stringify({ events: batch }),
  }).then(function (reply) {
    if (reply.status === 429 || reply.status >= 500) throw failure("server busy: " + reply.status);
    self.settle(batch);  // accepted, duplicate, or refused for good
    // The body is read in full either way: until it is, the browser counts a keepalive
    // request's bytes against its budget, and the next one would not fit.
    return reply.json().then(function (body) {
      if (!reply.ok) self.report(failure(body.error || "HTTP " + reply.status, body, reply.status));
    }, function () {
      if (!reply.ok) self.report(failure("HTTP " + reply.status, null, reply.status));
    });
  });
};

/** Send what is queued, one batch at a time; resolves when the server has it (or it is
 *  given up, reported once). */
Client.prototype.flush = function () {
  var self = this;
  if (!this.allowed()) {  // pending: the events wait; denied: they go
    if (this.consent !== "pending") this.queue = [];
    return Promise.resolve();
  }
  if (this.sending || !this.queue.length || this.timer) return this.pending || Promise.resolve();
  var batch = this.nextBatch(0, 1 << 20);
  this.sending = true;
  this.pending = this.post(batch, false).then(function () {
    self.attempt = 0;
  }, function (error) {
    self.attempt += 1;
    if (self.attempt > self.options.maxRetries) {
      self.settle(batch);
      self.attempt = 0;
      self.report(failure("events dropped after retries: " + error.message));
      return;
    }
    var wait = self.options.retryBase * Math.pow(2, self.attempt - 1) * (0.5 + Math.random());
    self.timer = globalThis.setTimeout(function () { self.timer = null; self.flush(); }, wait);
  }).then(function () {
    self.sending = false;
    self.pending = null;
    if (self.queue.length >= self.options.batchSize) return self.flush();
  });
  return this.pending;
};

/** The page is hidden or left: send what is queued now, with keepalive, in requests that
 *  fit its budget. Browsers allow 64 KB of keepalive requests in flight in all, so they go
 *  one after another: a page that is only hidden sends them all; one that is closed sends
 *  the first, and the rest stays stored for the next page (sent twice at worst, logged
 *  once). */
Client.prototype.flushAll = function () {
  var self = this;
  if (!this.allowed() || !this.queue.length || this.flushingAll) return Promise.resolve();
  this.flushingAll = true;
  var next = function () {
    var batch = self.nextBatch(0, KEEPALIVE_BYTES);
    if (!batch.length || !self.allowed()) return Promise.resolve();
    return self.post(batch, true).then(next);  // a failed one stays queued, and stops this
  };
  return next().catch(function () { /* stays queued for the next flush or page */ }).then(function () {
    self.flushingAll = false;
  });
};

/** Send everything queued (unless the server is failing and a retry is scheduled). */
Client.prototype.drain = function () {
  var self = this;
  return this.flush().then(function () {
    if (self.allowed() && self.queue.length && !self.timer) return self.drain();
  });
};

// ---- reads -------------------------------------------------------------------------

/** GET path; the reply's JSON, or an Error with the server's {error, detail} (reported to
 *  onError once) after `timeout` ms at most. */
Client.prototype.get = function (path) {
  var self = this;
  var abort = typeof AbortController === "function" ? new AbortController() : null;
  var timer = globalThis.setTimeout(function () { if (abort) abort.abort(); }, this.options.timeout);
  return globalThis.fetch(this.options.endpoint + path, {
    headers: this.headers(this.options.readKey, false),
    signal: abort ? abort.signal : undefined,
  }).then(function (reply) {
    return reply.json().then(function (body) {
      if (!reply.ok) throw failure(body.error || "HTTP " + reply.status, body, reply.status);
      return body;
    });
  }, function (error) {
    throw failure(error && error.name === "AbortError"
      ? "no answer in " + self.options.timeout + " ms" : "network error: " + error.message);
  }).then(function (body) {
    globalThis.clearTimeout(timer);
    return body;
  }, function (error) {
    globalThis.clearTimeout(timer);
    throw self.report(error);
  });
};

/** GET path with this session (and user) and params, after the events queued are sent. */
Client.prototype.read = function (path, params) {
  var self = this;
  var query = { n: 10 };
  if (this.allowed()) {  // without consent the server hears of no session nor user
    query.session_id = this.sessionId();
    if (this.options.userId) query.user_id = this.options.userId;
  }
  for (var key in params || {}) if (params[key] !== undefined && params[key] !== null) query[key] = params[key];
  var search = Object.keys(query).map(function (k) {
    return encodeURIComponent(k) + "=" + encodeURIComponent(query[k]);
  }).join("&");
  return this.drain().then(function () { return self.get(path + "?" + search); });
};

/** Recommendations for this session now: {recommendation_id, model_version, placement,
 *  items: [{item_id, score, source, reason}]}. Send recommendation_id back with the events
 *  of a click on one of them. */
Client.prototype.recommend = function (params) {
  return this.read("/v1/recommendations", params);
};

/** A product search ordered for this session: the same answer as recommend(), from the
 *  items matching q. Send the search itself with track("search", {query}). */
Client.prototype.search = function (q, params) {
  return this.read("/v1/search", Object.assign({ q: q }, params || {}));
};

/** The keyword card for this session: {show, reason, title, keywords: [{query, score,
 *  path}], recommendation_id}. On a click, send track("keyword-click", {query,
 *  recommendation_id}) and run the search. */
Client.prototype.keywords = function (params) {
  return this.read("/v1/keywords", Object.assign({ n: 4 }, params || {}));
};

/** What this session (or, with a userId, this user) leans to, after the events sent so
 *  far: {affinity: {brand: [{value, score}], category, price_band, ..., discount_sensitivity}}.
 *  A browser key reads a user's profile only with their token. */
Client.prototype.affinity = function (params) {
  var self = this;
  if (!this.allowed()) return Promise.resolve({ events: 0, affinity: {} });  // nothing known
  var n = (params && params.n) || 3;
  var path = this.options.userId
    ? "/v1/users/" + encodeURIComponent(this.options.userId)
    : "/v1/sessions/" + encodeURIComponent(this.sessionId());
  return this.drain().then(function () { return self.get(path + "/affinity?n=" + n); });
};

function init(options) {
  return new Client(options || {});
}
