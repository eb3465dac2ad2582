/* The demo shop page: browse, open a product, add to cart, buy, and watch the
 * recommendations follow every click. Uses the SDK exactly as a shop would. */
(async function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const config = await (await fetch("/demo/config.json")).json();
  const catalog = await (await fetch("/demo/catalog.json")).json();
  const byId = new Map(catalog.map((item) => [item.item_id, item]));
  const nb = Nextbest.init({ endpoint: "", writeKey: config.writeKey, readKey: config.readKey, flushInterval: 300 });
  let current = null;
  let lastRecommendation = null;

  const title = (id) => (byId.get(id) || { title: id }).title;

  function showSession() {
    $("session").textContent = nb.sessionId();
  }

  function fillCategories() {
    const categories = [...new Set(catalog.map((item) => item.category.split(" > ")[0]).filter(Boolean))].sort();
    $("category").replaceChildren(...["all", ...categories].map((name) => new Option(name, name)));
    $("category").addEventListener("change", showProducts);
  }

  function showProducts() {
    const chosen = $("category").value;
    const items = catalog.filter((item) => chosen === "all" || item.category.startsWith(chosen)).slice(0, 24);
    $("products").replaceChildren(...items.map((item) => productTile(item.item_id)));
  }

  function productTile(id) {
    const tile = document.createElement("li");
    tile.dataset.itemId = id;
    tile.textContent = title(id);
    tile.addEventListener("click", () => open(id, null));
    return tile;
  }

  function log(type, id) {
    const entry = document.createElement("li");
    entry.textContent = `${type} ${title(id)}`;
    $("history").prepend(entry);
  }

  async function act(type, id, recommendationId) {
    nb.track(type, { item_id: id, recommendation_id: recommendationId || undefined, context: { placement: "demo" } });
    log(type, id);
    await refresh();
  }

  async function open(id, recommendationId) {
    current = id;
    const item = byId.get(id) || { title: id, category: "", price: null };
    $("product").hidden = false;
    $("product-title").textContent = item.title;
    $("product-meta").textContent = `${item.category}${item.price != null ? ` · ${item.price}` : ""} · ${id}`;
    await act("view", id, recommendationId);
  }

  async function refresh() {
    const reply = await nb.recommend({ n: 8, placement: "demo" });
    lastRecommendation = reply.recommendation_id;
    $("rec-version").textContent = reply.model_version || "no model yet";
    $("recommendations").replaceChildren(...reply.items.map((entry) => {
      const line = document.createElement("li");
      line.dataset.itemId = entry.item_id;
      line.textContent = title(entry.item_id);
      const source = document.createElement("span");
      source.className = "source";
      source.textContent = entry.source;
      line.append(source);
      line.addEventListener("click", () => open(entry.item_id, lastRecommendation));
      return line;
    }));
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  }

  $("add-to-cart").addEventListener("click", () => current && act("cart", current));
  $("buy").addEventListener("click", () => current && act("purchase", current));
  $("new-session").addEventListener("click", async () => {
    nb.resetSession();
    $("history").replaceChildren();
    showSession();
    await refresh();
  });

  fillCategories();
  showProducts();
  showSession();
  await refresh();
})();
