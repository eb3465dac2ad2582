/* The demo shop: a home page, product pages and a cart, each with the engine's list for its
 * placement (home, product, cart). Every click goes through the SDK exactly as a shop's
 * would, and the "Your session" panel lists what was sent, so a visitor sees cause and effect.
 *
 * Routes live in the hash (#/, #/category/PATH, #/product/ID, #/search/QUERY, #/cart), so
 * the back button works without a server route per page. */
(async function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const LIST_SIZE = 6;
  const GRID_SIZE = 24;
  const HISTORY_SIZE = 50;
  const PAGES = ["home", "product", "search", "cart"];
  // how the session panel says where an event not from a recommendation list happened
  const WHERE = {
    home: "from the home page", category: "from a category", product: "on its page",
    cart: "in the cart", direct: "opened directly", search: "from the search box",
    keywords: "on the keyword card",
  };
  // The demo catalog carries no currency; euros make it read like a shop.
  const money = new Intl.NumberFormat("en-IE", { style: "currency", currency: "EUR" });

  const config = await getJson("/demo/config.json");
  const catalog = await getJson("/demo/catalog.json");
  const byId = new Map(catalog.map((item) => [item.item_id, item]));
  // The signed-in shopper ({userId, token, expires}), kept across pages until the token's
  // expiry, as a shop keeps its login; the page holds only the public browser key.
  const DEMO_USER = "demo-shopper";
  const USER_KEY = "nextbest-demo:user";
  let signedIn = savedUser();
  const nb = Nextbest.init({
    endpoint: "", key: config.key, flushInterval: 300,
    userId: signedIn ? signedIn.userId : "", userToken: signedIn ? signedIn.token : "",
  });

  // Where the next product page is opened from ({itemId, placement, recommendationId}), set by
  // the click and read by the view the route change sends.
  let pendingOrigin = null;
  // The recommendation list ({placement, recommendationId}) that led to the product on
  // screen, if any: its cart and purchase events carry the same recommendation_id, so the
  // engine can credit the list that led to them.
  let productList = null;
  let productId = null;
  // Each page shows one list: only the newest request's reply is shown, so a late reply
  // for a page already left neither lands on screen nor counts as an update.
  let listTicket = 0;
  // The product whose keyword card started the search on its way, if one did.
  let searchTrigger = null;
  let state = loadState();

  function savedUser() {
    try {
      const saved = JSON.parse(localStorage.getItem(USER_KEY) || "null");
      if (saved && saved.expires > Date.now() / 1000 + 60) return saved;
    } catch (error) {
      // storage blocked or damaged: signed out
    }
    return null;
  }

  async function getJson(url) {
    const reply = await fetch(url);
    if (!reply.ok) throw new Error(`${url}: HTTP ${reply.status}`);
    return reply.json();
  }

  // ---- the visitor's cart and event history, kept per session ----------------------------

  // Keyed by session id: a new (or expired) session starts with an empty cart, as the
  // server's cart, derived from the session's events, does.
  function storageKey(sessionId) {
    return `nextbest-demo:${sessionId}`;
  }

  function loadState() {
    const sessionId = nb.sessionId();
    try {
      const saved = JSON.parse(localStorage.getItem(storageKey(sessionId)) || "null");
      if (saved && Array.isArray(saved.cart) && Array.isArray(saved.history)) {
        return { ...saved, sessionId };
      }
    } catch (error) {
      // storage blocked or damaged: start empty
    }
    return { sessionId, cart: [], history: [] };
  }

  function saveState() {
    try {
      localStorage.setItem(storageKey(state.sessionId), JSON.stringify(state));
    } catch (error) {
      // storage blocked: the cart lasts as long as the page
    }
  }

  /** After 30 idle minutes the SDK starts a new session; follow it. */
  function syncSession() {
    if (nb.sessionId() !== state.sessionId) state = loadState();
    showSessionBar();
  }

  const inCart = (id) => state.cart.some((entry) => entry.itemId === id);

  // ---- formatting ------------------------------------------------------------------------

  const itemOf = (id) => byId.get(id) || { item_id: id, title: id, category_path: [] };
  const pathOf = (item) => item.category_path || [];

  /** The price paid: the list price less the discount. */
  function salePrice(item) {
    if (item.price == null) return null;
    const off = item.discount > 0 ? item.discount : 0;
    return Math.round(item.price * (1 - off) * 100) / 100;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function priceLine(item) {
    const line = element("span", "price");
    if (item.price == null) return line;
    line.append(element("strong", "now", money.format(salePrice(item))));
    if (item.discount > 0) {
      line.append(" ", element("s", "was", money.format(item.price)));
      line.append(" ", element("span", "off", `−${Math.round(item.discount * 100)}%`));
    }
    return line;
  }

  /** A coloured block with the category's initial: the demo has no images. The hue follows
   *  the top category, so a row shows at a glance where its items come from. */
  function thumb(item, className = "thumb") {
    const path = pathOf(item);
    const block = element("div", className, (path[path.length - 1] || item.title || "?")[0]);
    let hash = 0;
    for (const char of path[0] || "") hash = (hash * 31 + char.charCodeAt(0)) % 360;
    block.style.setProperty("--hue", String(hash));
    block.setAttribute("aria-hidden", "true");
    return block;
  }

  const productHash = (id) => `#/product/${encodeURIComponent(id)}`;

  /** A product tile; `origin` is where a click on it comes from ({placement, recommendationId}). */
  function tile(id, origin, entry) {
    const item = itemOf(id);
    const line = element("li", "tile");
    line.dataset.itemId = id;
    const link = element("a");
    link.href = productHash(id);
    link.addEventListener("click", (event) => {
      if (location.hash === link.hash) return event.preventDefault();  // already on screen
      pendingOrigin = { itemId: id, ...origin };
    });
    const body = element("div", "tile-body");
    body.append(element("span", "brand", item.brand || ""), element("span", "title", item.title));
    body.append(priceLine(item));
    if (entry) body.append(explanation(line, entry));
    link.append(thumb(item), body);
    line.append(link);
    return line;
  }

  /** Why the engine placed an item: its reason when the server gives one, else its source. */
  function explanation(line, entry) {
    line.dataset.reason = entry.reason || "";
    line.dataset.source = entry.source || "";
    if (entry.because) return whyLearned(line, entry);
    if (entry.reason) return element("span", "reason", entry.reason);
    return element("span", "reason source", entry.source ? `source: ${entry.source}` : "");
  }

  /** The learned ranker's answer to "why here": the features that moved the item most. */
  function whyLearned(line, entry) {
    const parts = Object.entries(entry.because).map(
      ([name, value]) => `${name} ${value >= 0 ? "+" : "−"}${Math.abs(value).toFixed(2)}`);
    line.dataset.because = parts.join(", ");
    const block = element("span", "reason");
    block.append(element("span", "", entry.reason), element("span", "because", parts.join(" · ")));
    return block;
  }

  function bumpUpdates() {
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  }

  // ---- events ----------------------------------------------------------------------------

  /** Send one event: `placement` is where it happened, `list` the recommendation list that
   *  led to it ({placement, recommendationId}), if one did. */
  function send(type, id, placement, list) {
    const paid = type === "cart" || type === "purchase" ? salePrice(itemOf(id)) : null;
    nb.track(type, {
      item_id: id,
      value: paid,
      recommendation_id: list ? list.recommendationId : undefined,
      // a click on a search result names its query: what the query graph learns from
      query: list && list.query ? list.query : undefined,
      context: { placement },
    });
    state.history.unshift({ type, itemId: id, placement, via: list ? list.placement : null });
    state.history.length = Math.min(state.history.length, HISTORY_SIZE);
    saveState();
    showHistory();
    showSessionBar();
  }

  function showHistory() {
    $("history").replaceChildren(...state.history.map((entry) => {
      const line = element("li");
      line.dataset.type = entry.type;
      line.append(element("span", `event ${entry.type}`, entry.type));
      const what = entry.query ? `“${entry.query}”` : itemOf(entry.itemId).title;
      line.append(element("span", "what", what));
      line.append(element("small", "muted", whereText(entry)));
      return line;
    }));
  }

  function whereText({ type, placement, via }) {
    if (type === "view" && via) return `from the ${via} list`;
    return (WHERE[placement] || placement) + (via ? ` · via the ${via} list` : "");
  }

  function showSessionBar() {
    $("session").textContent = state.sessionId;
    $("cart-count").textContent = String(state.cart.length);
    $("user").hidden = !signedIn;
    $("user-id").textContent = signedIn ? signedIn.userId : "";
    $("sign-in").textContent = signedIn ? "Sign out" : "Sign in";
  }

  function notice(text) {
    $("notice-text").textContent = text;
    $("notice").hidden = !text;
  }

  function noticeBought(ids) {
    const titles = ids.map((id) => itemOf(id).title);
    const named = titles.length > 2 ? `${titles.length} items` : titles.join(" and ");
    const [its, it] = ids.length === 1 ? ["its category", "it"] : ["their categories", "them"];
    notice(`Bought ${named}: recommendations now leave ${its} out and show what goes with ${it}.`);
  }

  // ---- recommendation lists --------------------------------------------------------------

  /** What the page asks for `placement`, and what it must never show there: the item on
   *  screen, or what is already in the cart. */
  function listRequest(placement) {
    if (placement === "product") return { params: { item_id: productId }, never: [productId] };
    // the two-stage pipeline's list, with the features that moved each item
    if (placement === "next") {
      return { params: { item_id: productId, explain: true }, never: [productId] };
    }
    if (placement === "cart") return { params: {}, never: state.cart.map((line) => line.itemId) };
    return { params: {}, never: [] };
  }

  /** Ask for `placement`'s list and show it. Counts a render in body[data-updates] whatever
   *  the outcome, so a page (or a test) can wait for it. */
  async function showList(placement) {
    const ticket = ++listTicket;
    // the product page shows the two-stage pipeline's list beside its own, in one render
    const placements = placement === "product" ? ["product", "next"] : [placement];
    const answers = await Promise.all(placements.map(fetchList));
    if (ticket !== listTicket) return;  // a newer request is under way
    placements.forEach((name, k) => {
      const { reply, failure, never } = answers[k];
      const list = $(`recommendations-${name}`);
      if (reply) showReply(list, name, reply, new Set(never));
      else list.replaceChildren(emptyLine(`Recommendations unavailable: ${failure.message}`));
    });
    if (placement === "product") await showKeywords(ticket);
    await showAffinity(ticket);
    bumpUpdates();
  }

  /** The keyword card under the product: keywords other shoppers searched, or nothing when
   *  the engine says the card is not worth showing now (its reason in data-reason). */
  const PATH_NAMES = {
    i2q: "an item you saw", c2q: "its category", scene: "a scenario",
    campaign: "the shop's campaign",
  };

  async function showKeywords(ticket) {
    const card = $("keyword-card");
    let reply = null;
    try {
      reply = await nb.keywords({ item_id: productId, n: 4 });
    } catch (error) {
      reply = { show: false, reason: error.message, keywords: [] };
    }
    if (ticket !== listTicket) return;
    card.dataset.reason = reply.reason || "";
    card.hidden = !reply.show;
    if (!reply.show) return $("keywords").replaceChildren();
    card.dataset.recommendationId = reply.recommendation_id;
    $("keyword-title").textContent = reply.title;
    // for the shop's operator: what ordered the card, and each keyword's path on hover
    $("keyword-why").textContent = reply.ranker === "recall"
      ? "Ordered by the meta-path recall (the version has no keyword ranker)."
      : `Ordered by the learned ${reply.ranker} keyword ranker.`;
    $("keywords").replaceChildren(...reply.keywords.map((keyword) => {
      const button = element("button", "keyword secondary", keyword.query);
      button.type = "button";
      button.title = `found via ${PATH_NAMES[keyword.path] || keyword.path}`;
      button.dataset.query = keyword.query;
      button.dataset.path = keyword.path;
      button.addEventListener("click", () => clickKeyword(keyword.query, reply.recommendation_id));
      return button;
    }));
  }

  /** A keyword click: an explicit answer, sent with the card's recommendation id, then a
   *  search for it, ordered for this session. */
  function clickKeyword(query, recommendationId) {
    searchTrigger = productId;  // the search counts the product on screen, and leaves it out
    nb.track("keyword-click", {
      query, recommendation_id: recommendationId, context: { placement: "keywords" },
    });
    state.history.unshift({ type: "keyword-click", query, placement: "keywords", via: null });
    state.history.length = Math.min(state.history.length, HISTORY_SIZE);
    saveState();
    location.hash = `#/search/${encodeURIComponent(query)}`;
  }

  async function fetchList(placement) {
    const { params, never } = listRequest(placement);
    try {
      // a few more than shown, so that the row stays full when the page drops some
      const reply = await nb.recommend({ n: LIST_SIZE + never.length, placement, ...params });
      return { reply, failure: null, never };
    } catch (error) {
      return { reply: null, failure: error, never };
    }
  }

  // How the affinity panel names each attribute, in the order it shows them.
  const AFFINITY_NAMES = { brand: "Brands", category: "Categories", price_band: "Price bands" };

  /** The session's affinity profile in the side panel (after the list: the same events). */
  async function showAffinity(ticket) {
    const panel = $("affinity");
    let reply = null;
    try {
      reply = await nb.affinity({ n: 3 });
    } catch (error) {
      panel.replaceChildren(element("dd", "muted", `Affinity unavailable: ${error.message}`));
      return;
    }
    if (ticket !== listTicket) return;
    const rows = [];
    for (const [key, name] of Object.entries(AFFINITY_NAMES)) {
      const values = reply.affinity[key] || [];
      if (!values.length) continue;
      rows.push(element("dt", null, name));
      for (const { value, score } of values) {
        const line = element("dd");
        line.dataset.attribute = key;
        line.dataset.value = value;
        const label = element("span", null, value.split(" > ").pop());
        const bar = element("span", "bar");
        bar.append(element("span"));
        bar.firstChild.style.width = `${Math.round(score * 100)}%`;
        label.append(bar);
        line.append(label, element("small", "muted", `${Math.round(score * 100)}%`));
        rows.push(line);
      }
    }
    if (!rows.length) {
      rows.push(element("dd", "muted", "Nothing yet: open a product."));
    } else {
      const sensitivity = reply.affinity.discount_sensitivity;
      const word = sensitivity > 0.6 ? "drawn to" : sensitivity < 0.4 ? "not swayed by" : "neutral to";
      rows.push(element("dt", null, "Discounts"));
      const line = element("dd", "discounts", `${word} discounts (${sensitivity.toFixed(2)})`);
      line.dataset.sensitivity = String(sensitivity);
      rows.push(line);
    }
    panel.replaceChildren(...rows);
  }

  const emptyLine = (text) => element("li", "empty", text);

  function showReply(list, placement, reply, never) {
    // The engine leaves these out itself; an engine without placements does not, so the
    // page makes sure, and says in data-dropped what it had to drop.
    const kept = reply.items.filter((entry) => !never.has(entry.item_id)).slice(0, LIST_SIZE);
    const dropped = reply.items.filter((entry) => never.has(entry.item_id));
    list.dataset.recommendationId = reply.recommendation_id;
    list.dataset.dropped = dropped.map((entry) => entry.item_id).join(" ");
    const origin = { placement, recommendationId: reply.recommendation_id };
    list.replaceChildren(...kept.map((entry) => tile(entry.item_id, origin, entry)));
    if (!kept.length) list.replaceChildren(emptyLine("Nothing to show yet."));
    $("rec-version").textContent = (reply.model_version || "none yet") +
      (reply.variant ? ` (experiment ${reply.experiment}: variant ${reply.variant})` : "");
    list.dataset.variant = reply.variant || "";
  }

  // ---- pages -----------------------------------------------------------------------------

  function parseRoute(hash) {
    const [page, ...rest] = hash.replace(/^#\/?/, "").split("/");
    let parts;
    try {
      parts = rest.map(decodeURIComponent);
    } catch (error) {
      return { page: "home", path: [] };  // a mangled address: start at home
    }
    if (page === "product" && parts.length === 1 && parts[0]) {
      return { page: "product", itemId: parts[0] };
    }
    if (page === "cart") return { page: "cart" };
    if (page === "search" && parts.length === 1 && parts[0].trim()) {
      return { page: "search", query: parts[0] };
    }
    return { page: "home", path: page === "category" ? parts.filter(Boolean) : [] };
  }

  // one segment per level, each encoded: a name may hold any character
  const categoryHash = (path) => `#/category/${path.map(encodeURIComponent).join("/")}`;
  const startsWith = (path, prefix) => prefix.every((name, k) => path[k] === name);

  async function route() {
    syncSession();
    const where = parseRoute(location.hash);
    for (const page of PAGES) $(`page-${page}`).hidden = page !== where.page;
    if (where.page !== "product") productId = productList = null;
    window.scrollTo(0, 0);
    if (where.page === "product") await showProduct(where.itemId);
    else if (where.page === "search") await showSearch(where.query);
    else if (where.page === "cart") await showCart();
    else await showHome(where.path);
  }

  function showCategories(chosen) {
    const tops = [...new Set(catalog.map((item) => pathOf(item)[0]).filter(Boolean))].sort();
    const links = [["All", "#/", !chosen.length]].concat(
      tops.map((name) => [name, categoryHash([name]), chosen[0] === name]));
    $("categories").replaceChildren(...links.map(([name, href, current]) => {
      const link = element("a", current ? "current" : "", name);
      link.href = href;
      return link;
    }));
  }

  function showHome(path) {
    showCategories(path);
    const items = catalog.filter((item) => startsWith(pathOf(item), path));
    $("category-title").textContent = path.length ? path.join(" › ") : "All products";
    $("category-count").textContent = items.length > GRID_SIZE
      ? `${GRID_SIZE} of ${items.length} items` : `${items.length} items`;
    // a view from the grid came from browsing: the home page's, or a category's
    const origin = { placement: path.length ? "category" : "home" };
    const tiles = items.slice(0, GRID_SIZE).map((item) => tile(item.item_id, origin));
    $("products").replaceChildren(...tiles);
    return showList("home");
  }

  async function showProduct(id) {
    const clicked = pendingOrigin && pendingOrigin.itemId === id;
    // else back, forward or a typed address: the view came from no link on this page
    const origin = clicked ? pendingOrigin : { placement: "direct" };
    pendingOrigin = null;
    productId = id;
    notice("");  // a purchase notice is about the page it was bought on and what followed
    productList = origin.recommendationId ? origin : null;
    renderProduct(id);
    if (!byId.has(id)) {
      listTicket += 1;  // drops a reply still on its way for the page before
      $("recommendations-product").replaceChildren(emptyLine("This item is not in the catalog."));
      return bumpUpdates();
    }
    send("view", id, origin.placement, productList);
    await showList("product");
  }

  function renderProduct(id) {
    const item = itemOf(id);
    const path = pathOf(item);
    $("product-path").replaceChildren(...path.map((name, k) => {
      const link = element("a", "", name);
      link.href = categoryHash(path.slice(0, k + 1));
      return link;
    }));
    const image = thumb(item, "thumb large");
    image.id = "product-image";
    $("product-image").replaceWith(image);
    $("product-title").textContent = item.title;
    $("product-brand").textContent = item.brand || "";
    $("product-price").replaceChildren(priceLine(item));
    const known = byId.has(id);
    const stocked = known && item.in_stock !== false;
    const stock = !known ? "Not in the catalog" : stocked ? "In stock" : "Out of stock";
    $("product-stock").textContent = stock;
    $("product-stock").className = `stock ${stocked ? "yes" : "no"}`;
    $("add-to-cart").disabled = !stocked || inCart(id);
    $("add-to-cart").textContent = inCart(id) ? "In your cart" : "Add to cart";
    $("buy-now").disabled = !stocked;
  }

  // ---- search ----------------------------------------------------------------------------

  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const query = $("search-input").value.trim();
    if (query) location.hash = `#/search/${encodeURIComponent(query)}`;
  });

  /** Send the search, then show its results, ordered for this session. */
  async function showSearch(query) {
    const ticket = ++listTicket;
    const trigger = searchTrigger;
    searchTrigger = null;
    $("search-input").value = query;
    $("search-query").textContent = query;
    nb.track("search", { query, context: { placement: "search" } });
    state.history.unshift({ type: "search", query, placement: "search", via: null });
    state.history.length = Math.min(state.history.length, HISTORY_SIZE);
    saveState();
    showHistory();
    const list = $("recommendations-search");
    let reply = null;
    try {
      reply = await nb.search(query, { n: GRID_SIZE, item_id: trigger || undefined });
    } catch (error) {
      if (ticket !== listTicket) return;
      list.replaceChildren(emptyLine(`Search unavailable: ${error.message}`));
      return bumpUpdates();
    }
    if (ticket !== listTicket) return;
    list.dataset.recommendationId = reply.recommendation_id;
    const origin = { placement: "search", recommendationId: reply.recommendation_id, query };
    list.replaceChildren(...reply.items.map((entry) => tile(entry.item_id, origin, entry)));
    if (!reply.items.length) list.replaceChildren(emptyLine(`No product matches “${query}”.`));
    await showAffinity(ticket);
    bumpUpdates();
  }

  function showCart() {
    renderCart();
    return showList("cart");
  }

  function renderCart() {
    $("cart-items").replaceChildren(...state.cart.map(({ itemId }) => {
      const item = itemOf(itemId);
      const line = element("li", "cart-line");
      line.dataset.itemId = itemId;
      const link = element("a", "title", item.title);
      link.href = productHash(itemId);
      const remove = element("button", "ghost remove", "Remove");
      remove.type = "button";
      remove.addEventListener("click", () => removeFromCart(itemId));
      const about = element("div", "cart-about");
      about.append(element("span", "brand", item.brand || ""), link);
      line.append(thumb(item), about, priceLine(item), remove);
      return line;
    }));
    const total = state.cart.reduce((sum, { itemId }) => sum + (salePrice(itemOf(itemId)) || 0), 0);
    $("cart-total").textContent = money.format(total);
    $("cart-items").hidden = !state.cart.length;
    $("cart-empty").hidden = state.cart.length > 0;
    $("cart-summary").hidden = !state.cart.length;
  }

  // ---- actions ---------------------------------------------------------------------------

  async function addToCart() {
    const id = productId;
    if (!id || inCart(id)) return;
    state.cart.push({ itemId: id, list: productList });
    send("cart", id, "product", productList);
    renderProduct(id);
    await showList("product");
  }

  async function buyNow() {
    const id = productId;
    if (!id) return;
    const entry = state.cart.find((line) => line.itemId === id);
    state.cart = state.cart.filter((line) => line !== entry);  // bought: no longer in the cart
    send("purchase", id, "product", productList || (entry && entry.list));
    noticeBought([id]);
    renderProduct(id);
    await showList("product");
  }

  async function removeFromCart(id) {
    state.cart = state.cart.filter((line) => line.itemId !== id);
    send("remove-from-cart", id, "cart");
    renderCart();
    await showList("cart");
  }

  /** One purchase event per item in the cart, as a shop's order confirmation would send. */
  async function buyCart() {
    const bought = state.cart;
    if (!bought.length) return;
    state.cart = [];
    for (const { itemId, list } of bought) send("purchase", itemId, "cart", list);
    noticeBought(bought.map((line) => line.itemId));
    renderCart();
    await showList("cart");
  }

  async function newSession() {
    try {
      localStorage.removeItem(storageKey(state.sessionId));
    } catch (error) {
      // storage blocked: nothing was kept
    }
    nb.resetSession();  // events still queued keep the old session id they were made with
    state = loadState();
    notice("");
    showHistory();
    if (["", "#", "#/"].includes(location.hash)) await route();
    else location.hash = "#/";  // the hashchange routes
  }

  $("add-to-cart").addEventListener("click", addToCart);
  $("buy-now").addEventListener("click", buyNow);
  $("buy-cart").addEventListener("click", buyCart);
  /** A login as a shop does it: its server (here the demo's /demo/login) signs a user token,
   *  and the page hands it to the SDK, which links this session to the user. */
  async function signIn() {
    const reply = await fetch(`/demo/login?user_id=${encodeURIComponent(DEMO_USER)}`, { method: "POST" });
    if (!reply.ok) return notice(`Sign-in failed: HTTP ${reply.status}`);
    const { user_id: userId, token } = await reply.json();
    await nb.identify(userId, token);
    signedIn = { userId, token, expires: Number(token.split(".")[2]) };
    try {
      localStorage.setItem(USER_KEY, JSON.stringify(signedIn));
    } catch (error) {
      // storage blocked: signed in for this page only
    }
    notice(`Signed in as ${userId}: this session, and what it did before, is theirs now.`);
    showSessionBar();
    await route();
  }

  async function signOut() {
    await nb.logout();  // the user and the session are forgotten
    signedIn = null;
    try {
      localStorage.removeItem(USER_KEY);
    } catch (error) {
      // storage blocked: nothing was kept
    }
    await newSession();
  }

  $("sign-in").addEventListener("click", () => (signedIn ? signOut() : signIn()));
  $("new-session").addEventListener("click", newSession);
  $("notice-close").addEventListener("click", () => notice(""));
  window.addEventListener("hashchange", route);

  showHistory();
  await route();
})();
