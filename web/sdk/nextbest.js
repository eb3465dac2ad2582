/*
 * nextbest browser SDK: no dependencies, one file.
 *
 *   const nb = Nextbest.init({ endpoint: "https://reco.shop.example", key: "nbb_..." });
 *   nb.track("view", { item_id: "sku-1", context: { placement: "product" } });
 *   nb.track("purchase", { item_id: "sku-1", value: 19.9 });
 *   const reply = await nb.recommend({ n: 8, item_id: "sku-1" });
 *   const found = await nb.search("running shoes", { n: 12 });
 *   nb.identify("u-42", tokenFromYourServer);   // after a login: this session is u-42's
 *   nb.logout();           // the next event starts a new, anonymous session
 *
 * - `key` is a browser key: public, it acts for this session only. To act for a logged-in
 *   user the page also needs a user token that the shop's server made (Python:
 *   nextbest.user_tokens.sign_user_token); pass it to `identify`, or as `userId` and
 *   `userToken` to `init` on the pages of a logged-in user. (`writeKey` and `readKey` are
 *   still read, for pages of a shop that keeps server keys in them.)
 *
 * - The session id lives in a first-party cookie (default "nb_sid") that expires after 30
 *   minutes without an event, the usual session gap.
 * - Events wait in a queue and leave in batches (every `flushInterval` ms, or at `batchSize`).
 * - A failed send (network, 429, 5xx) is retried with exponential backoff and jitter; every
 *   event has its own id, so a retry is never logged twice.
 * - When the page is hidden or left, the queue is flushed with `keepalive`, so it survives.
 * - A batch the server partly rejects (422) keeps its good events; the bad ones are dropped
 *   and reported through `onError`.
 * - `identify(userId, userToken)` stitches the session to the user (POST /v1/identify,
 *   retried like events); from then on events and requests carry `user_id` and the token
 *   (the X-User-Token header). `logout()` forgets the user, the token and the session.
 *
 * Privacy:
 * - `consent: "pending"` (for a shop that asks first): events wait in memory, nothing is
 *   sent and no cookie is set until `grantConsent()`; `revokeConsent()` (or `consent:
 *   "denied"`) drops what waits, deletes the cookie and sends nothing more. Lists and
 *   searches still work meanwhile, without the session (the popular ones).
 * - Global Privacy Control: a browser that sends it (navigator.globalPrivacyControl) is
 *   treated as denied, unless `respectGlobalPrivacyControl: false`.
 * - The cookie: `cookieDomain` (e.g. ".shop.example" to share it across subdomains; default:
 *   this host), `cookieSameSite` ("Lax"), `cookieSecure` (default: on over https).
 */
(function (root) {
  "use strict";

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
    onError: function (error) { if (root.console) root.console.warn("nextbest:", error); },
  };
  var MAX_BATCH = 500;

  function randomId() {
    if (root.crypto && root.crypto.randomUUID) return root.crypto.randomUUID().replace(/-/g, "");
    var bytes = new Uint8Array(16);
    root.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }

  function readCookie(name) {
    var found = document.cookie.split("; ").filter(function (c) { return c.indexOf(name + "=") === 0; })[0];
    return found ? decodeURIComponent(found.slice(name.length + 1)) : null;
  }

  function writeCookie(name, value, minutes, options) {
    var expires = new Date(Date.now() + minutes * 60000).toUTCString();
    var https = root.location && root.location.protocol === "https:";
    var secure = options.cookieSecure === null ? https : !!options.cookieSecure;
    document.cookie = name + "=" + encodeURIComponent(value) + "; expires=" + expires + "; path=/" +
      (options.cookieDomain ? "; domain=" + options.cookieDomain : "") +
      "; SameSite=" + options.cookieSameSite + (secure ? "; Secure" : "");
  }

  function Client(options) {
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
    this.queue = [];
    this.sending = false;
    this.attempt = 0;
    this.timer = null;
    var self = this;
    this.interval = root.setInterval(function () { self.flush(); }, this.options.flushInterval);
    var onHide = function () { self.flush({ keepalive: true }); };
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "hidden") onHide();
    });
    root.addEventListener("pagehide", onHide);
  }

  /** May this client send events and keep a cookie: consent granted, and no Global
   *  Privacy Control signal (unless told to ignore it). */
  Client.prototype.allowed = function () {
    var gpc = root.navigator && root.navigator.globalPrivacyControl === true;
    return this.consent === "granted" && !(gpc && this.options.respectGlobalPrivacyControl);
  };

  /** Consent given: the events that waited leave, and the session gets its cookie. */
  Client.prototype.grantConsent = function () {
    var self = this;
    var login = this.pendingLogin;
    this.consent = "granted";
    this.pendingLogin = null;
    if (!this.allowed()) return Promise.resolve();  // Global Privacy Control still says no
    if (this.memorySession) this.sessionId();
    return this.drain().then(function () {
      if (login) return self.identify(login[0], login[1]);
    });
  };

  /** Consent withdrawn: what waits is dropped, the cookie deleted, nothing more is sent. */
  Client.prototype.revokeConsent = function () {
    this.consent = "denied";
    this.queue = [];
    this.pendingLogin = null;
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
      return root.fetch(self.options.endpoint + "/v1/identify", {
        method: "POST",
        headers: self.headers(self.options.writeKey, true, token),
        body: body,
      }).then(function (reply) {
        if (reply.status === 429 || reply.status >= 500) throw new Error("server busy: " + reply.status);
        return reply.json().then(function (answer) {
          if (!reply.ok) { self.options.onError(answer); throw Object.assign(new Error(answer.error), answer); }
          return answer;
        });
      }, function (error) { throw error; }).catch(function (error) {
        attempt += 1;
        if (error.detail || attempt > self.options.maxRetries) throw error;  // refused, or gave up
        var wait = self.options.retryBase * Math.pow(2, attempt - 1) * (0.5 + Math.random());
        return new Promise(function (resolve) { root.setTimeout(resolve, wait); }).then(send);
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

  /** Queue one event: type is view, click, cart, remove-from-cart, purchase, search, ... */
  Client.prototype.track = function (type, fields) {
    if (!this.allowed() && this.consent !== "pending") return null;  // denied: nothing kept
    var event = { event_id: randomId(), type: type, session_id: this.sessionId(), timestamp: Date.now() / 1000 };
    if (this.options.userId) event.user_id = this.options.userId;
    for (var key in fields || {}) if (fields[key] !== undefined && fields[key] !== null) event[key] = fields[key];
    if (this.queue.length >= this.options.maxQueue) this.queue.shift();  // the oldest goes first
    this.queue.push(event);
    if (this.queue.length >= this.options.batchSize) this.flush();
    return event.event_id;
  };

  /** Send what is queued; resolves when the server has it (or it is given up). */
  Client.prototype.flush = function (how) {
    var self = this;
    if (!this.allowed()) {  // pending: the events wait; denied: they go
      if (this.consent !== "pending") this.queue = [];
      return Promise.resolve();
    }
    if (this.sending || !this.queue.length || this.timer) return this.pending || Promise.resolve();
    var batch = this.queue.slice(0, MAX_BATCH);
    this.sending = true;
    this.pending = root.fetch(this.options.endpoint + "/v1/events", {
      method: "POST",
      keepalive: !!(how && how.keepalive) && JSON.stringify(batch).length < 60000,
      headers: this.headers(this.options.writeKey, true),
      body: JSON.stringify({ events: batch }),
    }).then(function (reply) {
      if (reply.status === 429 || reply.status >= 500) throw new Error("server busy: " + reply.status);
      self.queue.splice(0, batch.length);  // sent: accepted, duplicate, or refused for good
      self.attempt = 0;
      if (!reply.ok) {
        return reply.json().then(function (body) { self.options.onError(body); }, function () {
          self.options.onError({ error: "HTTP " + reply.status });
        });
      }
    }).catch(function (error) {
      self.attempt += 1;
      if (self.attempt > self.options.maxRetries) {
        self.queue.splice(0, batch.length);
        self.attempt = 0;
        self.options.onError({ error: "events dropped after retries: " + error.message });
        return;
      }
      var wait = self.options.retryBase * Math.pow(2, self.attempt - 1) * (0.5 + Math.random());
      self.timer = root.setTimeout(function () { self.timer = null; self.flush(); }, wait);
    }).then(function () {
      self.sending = false;
      self.pending = null;
      if (self.queue.length >= self.options.batchSize) return self.flush();
    });
    return this.pending;
  };

  /** Send everything queued (unless the server is failing and a retry is scheduled). */
  Client.prototype.drain = function () {
    var self = this;
    return this.flush().then(function () {
      if (self.allowed() && self.queue.length && !self.timer) return self.drain();
    });
  };

  /** Recommendations for this session now: {recommendation_id, items: [{item_id, score, source}]}. */
  Client.prototype.recommend = function (params) {
    return this.read("/v1/recommendations", params);
  };

  /** A product search ordered for this session: the same answer as recommend(), from the
   *  items matching q. Send the search itself with track("search", {query}). */
  Client.prototype.search = function (q, params) {
    return this.read("/v1/search", Object.assign({ q: q }, params || {}));
  };

  /** The keyword card for this session: {show, reason, title, keywords: [{query, score,
   *  path}], recommendation_id}. On a click, send track("keyword-click",
   *  {query, recommendation_id}) and run the search. */
  Client.prototype.keywords = function (params) {
    return this.read("/v1/keywords", Object.assign({ n: 4 }, params || {}));
  };

  /** GET path with this session (and user) and params; the reply's JSON, or an Error
   *  carrying the server's error body. */
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
    return this.drain().then(function () {
      return root.fetch(self.options.endpoint + path + "?" + search, {
        headers: self.headers(self.options.readKey, false),
      });
    }).then(function (reply) {
      return reply.json().then(function (body) {
        if (!reply.ok) throw Object.assign(new Error(body.error || "HTTP " + reply.status), body);
        return body;
      });
    });
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
    return this.drain().then(function () {
      return root.fetch(self.options.endpoint + path + "/affinity?n=" + n, {
        headers: self.headers(self.options.readKey, false),
      });
    }).then(function (reply) {
      return reply.json().then(function (body) {
        if (!reply.ok) throw Object.assign(new Error(body.error || "HTTP " + reply.status), body);
        return body;
      });
    });
  };

  root.Nextbest = { init: function (options) { return new Client(options || {}); }, Client: Client };
})(typeof window !== "undefined" ? window : this);
