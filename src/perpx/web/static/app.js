// perpx web page: public Bybit V5 REST + WebSocket only; private requests signed here (WebCrypto).
const $ = (id) => document.getElementById(id);
const WS_BASE = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;
const INTERVALS = ["1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M"];
const RECV_WINDOW = "5000";
const state = { symbol: "BTCUSDT", interval: "1", instruments: {}, ticker: {}, asks: new Map(),
  bids: new Map(), group: 0, trades: [], lastBar: null, ws: null, priv: null, creds: null };

// ---- REST ----
async function pub(path, params) {
  const reply = await (await fetch(`${path}?${new URLSearchParams(params)}`)).json();
  if (reply.retCode !== 0) throw new Error(reply.retMsg);
  return reply.result;
}
const enc = new TextEncoder();
async function hmac(secret, text) {
  const key = await crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const sig = new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode(text)));
  return Array.from(sig, (b) => b.toString(16).padStart(2, "0")).join("");
}
// Bybit V5: sign = HMAC-SHA256(secret, timestamp + apiKey + recvWindow + (query | body)).
async function priv(method, path, params) {
  const { key, secret } = state.creds;
  const ts = String(Date.now());
  const payload = method === "GET" ? new URLSearchParams(params).toString() : JSON.stringify(params);
  const headers = { "X-BAPI-API-KEY": key, "X-BAPI-TIMESTAMP": ts, "X-BAPI-RECV-WINDOW": RECV_WINDOW,
    "X-BAPI-SIGN": await hmac(secret, ts + key + RECV_WINDOW + payload), "Content-Type": "application/json" };
  const url = method === "GET" ? `${path}?${payload}` : path;
  return (await fetch(url, { method, headers, body: method === "GET" ? undefined : payload })).json();
}

// ---- instruments: category and coins ----
// Each symbol carries its own category (linear: USDT and USDC perpetuals; inverse: BTCUSD,
// ETHUSD), named on every REST call and picking the public stream's path. Coin amounts
// (margin, P&L, fees, cost) are in the settle coin; an inverse quantity is USD contracts.
const spec = () => state.instruments[state.symbol] || {};
const catOf = (symbol) => state.instruments[symbol]?.category || "linear";
const coinOf = (symbol) => state.instruments[symbol]?.settleCoin || "USDT";
const cat = () => catOf(state.symbol);
const qtyUnit = (symbol) => (catOf(symbol) === "inverse" ? "USD" : state.instruments[symbol]?.baseCoin || "");
const coined = (v, coin) => (v === undefined || v === "" ? "" : `${esc(v)} <small class="coin">${esc(coin)}</small>`);
// One (category, settle coin) pair per kind of contract served: what the account lists ask.
const accountScopes = () => [...new Set(Object.values(state.instruments).map((i) => `${i.category}:${i.settleCoin}`))]
  .sort().map((k) => { const [category, settleCoin] = k.split(":"); return { category, settleCoin }; });

// ---- formatting ----
const decimals = (step) => (String(step).split(".")[1] || "").replace(/0+$/, "").length;
const fmtP = (v) => (v === undefined || v === "" ? "–" : Number(v).toFixed(decimals(spec().priceFilter?.tickSize || "0.01")));
const fmtQ = (v) => Number(v).toFixed(decimals(spec().lotSizeFilter?.qtyStep || "0.001"));
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

// ---- chart ----
let chart, candles, markLine, indexLine;
function makeChart() {
  const LC = window.LightweightCharts;
  chart = LC.createChart($("chart"), { autoSize: true, layout: { background: { color: "#161a1e" }, textColor: "#848e9c" },
    grid: { vertLines: { color: "#1f252b" }, horzLines: { color: "#1f252b" } }, timeScale: { timeVisible: true } });
  candles = chart.addSeries(LC.CandlestickSeries, { upColor: "#0ecb81", downColor: "#f6465d", borderVisible: false,
    wickUpColor: "#0ecb81", wickDownColor: "#f6465d" });
  markLine = chart.addSeries(LC.LineSeries, { color: "#f0b90b", lineWidth: 1, priceLineVisible: false, title: "mark" });
  indexLine = chart.addSeries(LC.LineSeries, { color: "#5d8cff", lineWidth: 1, priceLineVisible: false, title: "index" });
}
const bar = (row) => ({ time: Number(row[0]) / 1000, open: +row[1], high: +row[2], low: +row[3], close: +row[4] });
async function loadHistory() {
  const q = { category: cat(), symbol: state.symbol, interval: state.interval, limit: 300 };
  const [k, m, i] = await Promise.all([pub("/v5/market/kline", q), pub("/v5/market/mark-price-kline", q),
    pub("/v5/market/index-price-kline", q).catch(() => ({ list: [] }))]);
  const bars = k.list.map(bar).reverse();
  candles.setData(bars);
  markLine.setData(m.list.map(bar).reverse().map((b) => ({ time: b.time, value: b.close })));
  indexLine.setData(i.list.map(bar).reverse().map((b) => ({ time: b.time, value: b.close })));
  state.lastBar = bars.length ? bars[bars.length - 1].time : null;
  $("chart").dataset.bars = String(bars.length);
}
function onKline(rows) {
  for (const r of rows) {
    const b = { time: r.start / 1000, open: +r.open, high: +r.high, low: +r.low, close: +r.close };
    if (state.lastBar !== null && b.time < state.lastBar) continue;
    candles.update(b);
    state.lastBar = b.time;
    $("chart").dataset.live = String(Number($("chart").dataset.live || 0) + 1);
  }
}

// ---- ticker ----
function onTicker(d) {
  Object.assign(state.ticker, d);
  const t = state.ticker;
  $("t-last").textContent = fmtP(t.lastPrice);
  $("t-mark").textContent = fmtP(t.markPrice);
  $("t-index").textContent = fmtP(t.indexPrice);
  const pct = Number(t.price24hPcnt || 0) * 100;
  $("t-change").textContent = `${pct >= 0 ? "+" : ""}${pct.toFixed(2)}%`;
  $("t-change").className = pct >= 0 ? "buy-t" : "sell-t";
  $("t-oi").textContent = t.openInterest === undefined ? "–" : `${t.openInterest} ${qtyUnit(state.symbol)}`;
  if (state.lastBar !== null && t.markPrice) markLine.update({ time: state.lastBar, value: +t.markPrice });
  if (state.lastBar !== null && t.indexPrice) indexLine.update({ time: state.lastBar, value: +t.indexPrice });
}
function tickFunding() {
  const t = state.ticker;
  if (!t.fundingRate) return;
  const left = Math.max(0, Number(t.nextFundingTime) - Date.now()) / 1000;
  const hms = [left / 3600, (left % 3600) / 60, left % 60].map((v) => String(Math.floor(v)).padStart(2, "0")).join(":");
  $("t-funding").textContent = `${(Number(t.fundingRate) * 100).toFixed(4)}% / ${hms}`;
}

// ---- order book (snapshot + delta, grouped) ----
function onBook(msg) {
  const d = msg.data;
  if (msg.type === "snapshot") { state.asks.clear(); state.bids.clear(); }
  state.bookFrames = (state.bookFrames || 0) + 1;  // read by the browser test and benchmarks/bench_web.py
  window.perpxBookFrames = state.bookFrames;
  if (d.seq !== undefined) state.bookSeq = d.seq;
  for (const [side, rows] of [[state.asks, d.a], [state.bids, d.b]])
    for (const [p, s] of rows) { if (Number(s) === 0) side.delete(p); else side.set(p, Number(s)); }
  scheduleBook();
}
let bookPending = false;
function scheduleBook() { if (!bookPending) { bookPending = true; requestAnimationFrame(renderBook); } }
function grouped(side, up) {
  const g = state.group || Number(spec().priceFilter?.tickSize || 0.01);
  const levels = new Map();
  for (const [p, s] of side) {
    const k = (up ? Math.ceil(Number(p) / g - 1e-9) : Math.floor(Number(p) / g + 1e-9)) * g;
    levels.set(k, (levels.get(k) || 0) + s);
  }
  return [...levels].sort((a, b) => (up ? a[0] - b[0] : b[0] - a[0])).slice(0, 12);
}
function rows(levels, color) {
  let total = 0;
  const cum = levels.map(([p, s]) => [p, s, (total += s)]);
  return cum.map(([p, s, c]) => `<tr style="background-image:linear-gradient(${color},${color});background-size:${(100 * c / total).toFixed(1)}% 100%"><td>${fmtP(p)}</td><td>${fmtQ(s)}</td><td>${fmtQ(c)}</td></tr>`);
}
function renderBook() {
  bookPending = false;
  $("book").dataset.frames = String(state.bookFrames || 0);
  $("book").dataset.paints = String((state.bookPaints = (state.bookPaints || 0) + 1));
  const asks = grouped(state.asks, true), bids = grouped(state.bids, false);
  $("asks").innerHTML = rows(asks, "rgba(246,70,93,.15)").reverse().join("");
  $("bids").innerHTML = rows(bids, "rgba(14,203,129,.15)").join("");
  $("spread-cell").textContent = asks.length && bids.length ? `${fmtP(state.ticker.lastPrice)}  (spread ${fmtP(asks[0][0] - bids[0][0])})` : "–";
}
function fillGroups() {
  const tick = Number(spec().priceFilter?.tickSize || 0.01);
  $("group").innerHTML = [1, 10, 50, 100, 1000].map((m) => `<option value="${tick * m}">${fmtP(tick * m)}</option>`).join("");
  state.group = tick;
}

// ---- trades ----
function onTrades(list) {
  for (const t of list) state.trades.unshift(t);
  state.trades.length = Math.min(state.trades.length, 40);
  document.querySelector("#trades tbody").innerHTML = state.trades.map((t) =>
    `<tr><td class="${t.S === "Buy" ? "buy-t" : "sell-t"}">${fmtP(t.p)}</td><td>${esc(t.v)}</td><td>${new Date(t.T).toLocaleTimeString([], { hour12: false })}</td></tr>`).join("");
}

// ---- public stream ----
function connectPublic() {
  if (state.ws) { state.ws.onclose = null; state.ws.close(); }
  const ws = new WebSocket(`${WS_BASE}/v5/public/${cat()}`);
  state.ws = ws;
  const s = state.symbol;
  ws.onopen = () => ws.send(JSON.stringify({ op: "subscribe", args: [`tickers.${s}`, `orderbook.50.${s}`, `publicTrade.${s}`, `kline.${state.interval}.${s}`] }));
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (!m.topic) return;
    if (m.topic.startsWith("orderbook.")) onBook(m);
    else if (m.topic.startsWith("publicTrade.")) onTrades(m.data);
    else if (m.topic.startsWith("tickers.")) onTicker(m.data);
    else if (m.topic.startsWith("kline.")) onKline(m.data);
  };
  ws.onclose = () => setTimeout(() => { if (state.ws === ws) connectPublic(); }, 1000);
}
setInterval(() => { for (const w of [state.ws, state.priv]) if (w && w.readyState === 1) w.send('{"op":"ping"}'); }, 20000);

async function selectSymbol(symbol) {
  state.symbol = symbol;
  state.ticker = {}; state.trades = []; state.asks.clear(); state.bids.clear();
  fillGroups();
  const t = await pub("/v5/market/tickers", { category: cat(), symbol });
  if (t.list[0]) onTicker(t.list[0]);
  await loadHistory();
  connectPublic();
  showQtyUnit();
  if (state.history && state.creds) loadAccountHistory(state.history, false);
  if (location.hash === "#operator") { loadFunding().catch(() => {}); loadOpenInterest().catch(() => {}); }
}
function fillIntervals() {
  $("intervals").innerHTML = INTERVALS.map((i) => `<button type="button" data-i="${i}" aria-pressed="${i === state.interval}">${/\d/.test(i) ? (i >= 60 ? i / 60 + "h" : i + "m") : i}</button>`).join("");
  $("intervals").onclick = (e) => {
    const i = e.target.dataset?.i;
    if (!i) return;
    state.interval = i;
    fillIntervals();
    selectSymbol(state.symbol);
  };
}

// ---- account ----
const stopText = (v) => (v && Number(v) !== 0 ? v : "");
const editing = () => document.activeElement?.matches?.("#positions input, #positions select, #orders input");
function positionRow(p) {
  // ROI as Bybit's page shows it: unrealised P&L over the position's IM, both REST's figures.
  const roi = Number(p.positionIM) > 0 ? `${(100 * Number(p.unrealisedPnl) / Number(p.positionIM)).toFixed(2)}%` : "–";
  const coin = coinOf(p.symbol);
  // Full: the position's TP/SL (and trailing stop); Partial: a TP/SL pair for `size` contracts.
  return `<tr data-symbol="${esc(p.symbol)}"><td>${esc(p.symbol)}</td><td class="${p.side === "Buy" ? "buy-t" : "sell-t"}">${esc(p.side)}</td><td class="size">${esc(p.size)} <small class="coin">${esc(qtyUnit(p.symbol))}</small></td><td>${esc(p.avgPrice)}</td><td>${esc(p.markPrice)}</td><td class="liq">${esc(p.liqPrice)}</td><td class="upnl">${coined(p.unrealisedPnl, coin)}</td>
     <td class="roi">${roi}</td><td class="im">${coined(p.positionIM, coin)}</td><td class="adl">${esc(p.adlRankIndicator ?? "")}</td>
     <td class="tpsl"><select class="mode" aria-label="TP/SL mode"><option>Full</option><option>Partial</option></select><input class="size-in" aria-label="TP/SL size" placeholder="size" size="6" hidden><input class="tp" aria-label="Take profit" placeholder="TP" size="8" value="${esc(stopText(p.takeProfit))}"><input class="sl" aria-label="Stop loss" placeholder="SL" size="8" value="${esc(stopText(p.stopLoss))}"><input class="trail" aria-label="Trailing stop distance" placeholder="trail" size="6" value="${esc(stopText(p.trailingStop))}"><button type="button" data-tpsl="${esc(p.symbol)}" data-idx="${p.positionIdx}">Set</button></td>
     <td><button type="button" data-close="${esc(p.symbol)}" data-side="${p.side === "Buy" ? "Sell" : "Buy"}" data-qty="${esc(p.size)}" data-idx="${p.positionIdx}">Close</button></td></tr>`;
}
function orderRow(o) {
  const trig = Number(o.triggerPrice) > 0 ? `${esc(o.triggerPrice)} ${esc(o.triggerBy)} ${o.triggerDirection === 1 ? "↑" : "↓"}` : "";
  // A position's TP/SL (quantity 0: the whole position) is edited in the position's row.
  // A partial TP/SL pair's legs (stopOrderType Partial...) are cancelled here, set again in the position row.
  const whole = Number(o.qty) === 0;
  const leg = /TakeProfit|StopLoss|TrailingStop/.test(o.stopOrderType || "");
  const price = o.orderType === "Market" || leg ? esc(o.orderType) : `<input class="am-price" aria-label="Amend price" size="9" value="${esc(o.price)}">`;
  const qty = whole ? "position" : leg ? esc(o.qty) : `<input class="am-qty" aria-label="Amend quantity" size="7" value="${esc(o.qty)}">`;
  const amend = whole || leg ? "" : `<button type="button" data-amend="${esc(o.orderId)}" data-symbol="${esc(o.symbol)}" data-price="${esc(o.price)}" data-qty="${esc(o.qty)}">Amend</button> `;
  const type = o.stopOrderType && o.stopOrderType !== "UNKNOWN" ? `${o.orderType} · ${o.stopOrderType}` : o.orderType;
  return `<tr data-order="${esc(o.orderId)}"><td>${esc(o.symbol)}</td><td class="${o.side === "Buy" ? "buy-t" : "sell-t"}">${esc(o.side)}</td><td class="type">${esc(type)}</td><td>${price}</td><td>${qty}</td><td>${trig}</td><td>${esc(o.cumExecQty)}</td><td class="status">${esc(o.orderStatus)}</td>
     <td>${amend}<button type="button" data-cancel="${esc(o.orderId)}" data-symbol="${esc(o.symbol)}">Cancel</button></td></tr>`;
}
async function refreshAccount() {
  if (!state.creds) return;
  if (editing()) { scheduleRefresh(); return; }  // don't wipe a field the user is typing in
  const scopes = accountScopes();
  const [wal, info, ...lists] = await Promise.all([
    priv("GET", "/v5/account/wallet-balance", { accountType: "UNIFIED" }),
    priv("GET", "/v5/account/info", {}),
    ...scopes.map((q) => priv("GET", "/v5/position/list", { ...q, limit: 200 })),
    ...scopes.map((q) => priv("GET", "/v5/order/realtime", { ...q, limit: 50 }))]);
  if (editing()) { scheduleRefresh(); return; }
  const rowsOf = (replies) => replies.flatMap((r) => r.result?.list || []);
  const all = rowsOf(lists.slice(0, scopes.length));
  const ord = { result: { list: rowsOf(lists.slice(scopes.length)) } };
  const mine = all.find((p) => p.symbol === state.symbol);
  if (mine && document.activeElement !== $("o-lev")) $("o-lev").value = mine.leverage;
  if (info.result?.marginMode) $("margin-mode").value = info.result.marginMode;
  state.positions = all.filter((p) => Number(p.size) > 0);
  document.querySelector("#positions tbody").innerHTML = state.positions.map(positionRow).join("");
  document.querySelector("#orders tbody").innerHTML = (ord.result?.list || []).map(orderRow).join("");
  const w = wal.result?.list?.[0];
  if (w) {
    // The totals are USD (perpx values each coin at its index); each coin's row is in that coin.
    const pct = (v) => `${(Number(v) * 100).toFixed(2)}%`;
    $("wallet").innerHTML = [["Equity", w.totalEquity], ["Available", w.totalAvailableBalance],
      ["IM rate", pct(w.accountIMRate)], ["MM rate", pct(w.accountMMRate)]]
      .map(([k, v]) => `<span>${k}</span><span id="w-${k.split(" ")[0].toLowerCase()}">${esc(v)}</span>`).join("")
      + `<table id="coins"><thead><tr><th>Coin</th><th>Wallet</th><th>Equity</th></tr></thead><tbody>${
        (w.coin || []).map((c) => `<tr data-coin="${esc(c.coin)}"><td>${esc(c.coin)}</td><td>${esc(c.walletBalance)}</td><td class="equity">${esc(c.equity)}</td></tr>`).join("")}</tbody></table>`;
  }
  if (state.history) loadAccountHistory(state.history, false);
}

// ---- history tabs (REST, paged by cursor) ----
const when = (ms) => new Date(Number(ms)).toLocaleString([], { hour12: false });
const HISTORY = {
  orders: { path: "/v5/order/history", params: () => ({ category: cat() }), cols: [["Time", "createdTime", when], ["Symbol", "symbol"], ["Side", "side"], ["Type", "orderType"], ["Price", "price"], ["Qty", "qty"], ["Filled", "cumExecQty"], ["Status", "orderStatus"]] },
  trades: { path: "/v5/execution/list", params: () => ({ category: cat() }), cols: [["Time", "execTime", when], ["Symbol", "symbol"], ["Side", "side"], ["Price", "execPrice"], ["Qty", "execQty"], ["Fee", "execFee"], ["Type", "execType"]] },
  pnl: { path: "/v5/position/closed-pnl", params: () => ({ category: cat() }), cols: [["Time", "updatedTime", when], ["Symbol", "symbol"], ["Side", "side"], ["Qty", "closedSize"], ["Entry", "avgEntryPrice"], ["Exit", "avgExitPrice"], ["Closed P&L", "closedPnl"]] },
  log: { path: "/v5/account/transaction-log", params: () => ({ accountType: "UNIFIED" }), cols: [["Time", "transactionTime", when], ["Symbol", "symbol"], ["Coin", "currency"], ["Type", "type"], ["Qty", "qty"], ["Change", "change"], ["Cash flow", "cashFlow"], ["Balance", "cashBalance"], ["Fee", "fee"]] },
};
async function loadAccountHistory(name, more) {
  const h = HISTORY[name];
  const params = { ...h.params(), limit: 20 };
  if (more && state.historyCursor) params.cursor = state.historyCursor;
  const r = await priv("GET", h.path, params);
  if (r.retCode !== 0) { showMsg(`${r.retMsg} (${r.retCode})`, true); return; }
  if (state.history !== name) return;  // another tab was chosen meanwhile
  state.historyCursor = r.result.nextPageCursor || "";
  document.querySelector("#history thead").innerHTML = `<tr>${h.cols.map(([t]) => `<th>${t}</th>`).join("")}</tr>`;
  const body = r.result.list.map((row) => `<tr>${h.cols.map(([, k, f]) => `<td>${esc(f ? f(row[k]) : row[k] ?? "")}</td>`).join("")}</tr>`).join("");
  const tbody = document.querySelector("#history tbody");
  if (more) tbody.insertAdjacentHTML("beforeend", body); else tbody.innerHTML = body;
  $("history-more").hidden = !state.historyCursor;
}
function chooseHistory(name) {
  state.history = name;
  state.historyCursor = "";
  for (const b of document.querySelectorAll("#history-tabs button")) b.setAttribute("aria-selected", String(b.dataset.h === name));
  if (state.creds) loadAccountHistory(name, false);
}
let refreshTimer = 0;
function scheduleRefresh() { clearTimeout(refreshTimer); refreshTimer = setTimeout(refreshAccount, 150); }

async function connectPrivate() {
  if (state.priv) { state.priv.onclose = null; state.priv.close(); }
  const ws = new WebSocket(`${WS_BASE}/v5/private`);
  state.priv = ws;
  ws.onopen = async () => {
    const expires = Date.now() + 10000;
    const sig = await hmac(state.creds.secret, `GET/realtime${expires}`);
    ws.send(JSON.stringify({ op: "auth", args: [state.creds.key, expires, sig] }));
  };
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.op === "auth" && m.success) ws.send(JSON.stringify({ op: "subscribe", args: ["position", "order", "execution", "wallet"] }));
    else if (m.topic) scheduleRefresh();  // the streams say what changed; REST gives the full rows
  };
  ws.onclose = () => setTimeout(() => { if (state.priv === ws && state.creds) connectPrivate(); }, 1000);
}
async function signIn(key, secret) {
  state.creds = { key, secret };
  const r = await priv("GET", "/v5/account/wallet-balance", { accountType: "UNIFIED" });
  if (r.retCode !== 0) { state.creds = null; showMsg(r.retMsg, true); return false; }
  sessionStorage.setItem("perpx-creds", JSON.stringify(state.creds));
  $("signin").hidden = true; $("signed").hidden = false; $("signin-hint").hidden = true;
  $("who").textContent = `key ${key.slice(0, 6)}…`;
  connectPrivate();
  refreshAccount();
  return true;
}
// One-click demo account (demo-mode servers only): perpx's POST /perpx/demo/account makes a key on a
// new account with USDT demo funds; Bybit's demo-apply-money then adds the coins that margin the
// USDC and inverse contracts, so every symbol on the page can be traded.
const DEMO_COINS = [{ coin: "USDC", amountStr: "100000" }, { coin: "BTC", amountStr: "1" }, { coin: "ETH", amountStr: "20" }];
async function demoAccount() {
  const reply = await (await fetch("/perpx/demo/account", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" })).json();
  if (reply.retCode !== 0) { showMsg(`${reply.retMsg} (${reply.retCode})`, true); return; }
  const { apiKey, apiSecret } = reply.result;
  if (!(await signIn(apiKey, apiSecret))) return;
  const coins = DEMO_COINS.filter((c) => Object.values(state.instruments).some((i) => i.settleCoin === c.coin));
  if (coins.length) await act("/v5/account/demo-apply-money", { adjustType: 0, utaDemoApplyMoney: coins }, "Demo account ready");
  $("who").textContent = `demo ${apiKey.slice(0, 6)}…`;
}
function signOut() {
  sessionStorage.removeItem("perpx-creds");
  state.creds = null;
  if (state.priv) { state.priv.onclose = null; state.priv.close(); state.priv = null; }
  $("signin").hidden = false; $("signed").hidden = true; $("signin-hint").hidden = false;
  for (const t of ["#positions tbody", "#orders tbody", "#history tbody"]) document.querySelector(t).innerHTML = "";
  $("wallet").innerHTML = "";
}

// ---- ticket ----
function showMsg(text, error) { $("ticket-msg").textContent = text; $("ticket-msg").className = error ? "error" : "ok"; }
async function placeOrder(e) {
  e.preventDefault();
  if (!state.creds) { showMsg("Sign in first", true); return; }
  const type = $("o-type").value;
  let qty = $("o-qty").value.trim();
  if ($("o-by").value !== "qty") {
    // By value or by cost: the server's calculator turns the amount into contracts (as `perpx calc qty`).
    try { qty = (await calcOrder()).qty; } catch (err) { showMsg(String(err.message), true); return; }
  }
  const body = { category: cat(), symbol: state.symbol, side: document.querySelector("input[name=side]:checked").value,
    orderType: type, qty };
  if (type === "Limit") {
    body.price = $("o-price").value.trim();
    body.timeInForce = $("o-post").checked ? "PostOnly" : $("o-tif").value;
  } else if ($("o-tif").value !== "GTC") body.timeInForce = $("o-tif").value;
  if ($("o-reduce").checked) body.reduceOnly = true;
  if ($("o-tp").value.trim()) body.takeProfit = $("o-tp").value.trim();
  if ($("o-sl").value.trim()) body.stopLoss = $("o-sl").value.trim();
  if ($("o-cond").checked) {
    const trig = $("o-trig").value.trim();
    body.triggerPrice = trig;
    body.triggerBy = $("o-trig-by").value;
    // Bybit's triggerDirection: 1 fires when the price rises to the trigger, 2 when it falls to it.
    body.triggerDirection = Number($("o-trig-dir").value || (Number(trig) > Number(state.ticker.lastPrice) ? 1 : 2));
  }
  await send(body);
}
async function send(body) {
  const r = await priv("POST", "/v5/order/create", body);
  if (r.retCode === 0) showMsg(`Order ${r.result.orderId.slice(0, 8)}… accepted`, false);
  else showMsg(`${r.retMsg} (${r.retCode})`, true);
  scheduleRefresh();
}
async function act(path, body, done) {
  const r = await priv("POST", path, body);
  showMsg(r.retCode === 0 ? done : `${r.retMsg} (${r.retCode})`, r.retCode !== 0);
  scheduleRefresh();
  return r;
}
async function onAccountClick(e) {
  const b = e.target;
  const row = b.closest("tr");
  if (b.id === "close-all") {
    // Bybit's "close all": a reduce-only market order against each open position.
    for (const p of state.positions || [])
      await send({ category: catOf(p.symbol), symbol: p.symbol, side: p.side === "Buy" ? "Sell" : "Buy", orderType: "Market",
        qty: p.size, reduceOnly: true, positionIdx: p.positionIdx });
  } else if (b.dataset.h) chooseHistory(b.dataset.h);
  else if (b.id === "history-more") loadAccountHistory(state.history, true);
  else if (b.dataset.tpsl) {
    const body = { category: catOf(b.dataset.tpsl), symbol: b.dataset.tpsl, positionIdx: Number(b.dataset.idx) };
    const field = (cls) => row.querySelector(cls).value.trim();
    if (row.querySelector(".mode").value === "Partial") {
      // Partial: a TP and/or SL for tpSize = slSize contracts, each its own order (listed in open orders).
      Object.assign(body, { tpslMode: "Partial", tpSize: field(".size-in"), slSize: field(".size-in") });
      for (const [k, cls] of [["takeProfit", ".tp"], ["stopLoss", ".sl"], ["trailingStop", ".trail"]]) if (field(cls)) body[k] = field(cls);
    } else {
      // Full: the whole position; an empty field is "0", Bybit's way of removing that stop.
      Object.assign(body, { tpslMode: "Full", takeProfit: field(".tp") || "0", stopLoss: field(".sl") || "0", trailingStop: field(".trail") || "0" });
    }
    await act("/v5/position/trading-stop", body, "TP/SL set");
    b.blur();
  } else if (b.dataset.amend) {
    const body = { category: catOf(b.dataset.symbol), symbol: b.dataset.symbol, orderId: b.dataset.amend };
    const price = row.querySelector(".am-price")?.value.trim(), qty = row.querySelector(".am-qty").value.trim();
    if (price && price !== b.dataset.price) body.price = price;
    if (qty !== b.dataset.qty) body.qty = qty;
    await act("/v5/order/amend", body, "Amended");
    b.blur();
  } else if (b.dataset.cancel) {
    const r = await priv("POST", "/v5/order/cancel", { category: catOf(b.dataset.symbol), symbol: b.dataset.symbol, orderId: b.dataset.cancel });
    showMsg(r.retCode === 0 ? "Cancelled" : `${r.retMsg} (${r.retCode})`, r.retCode !== 0);
    scheduleRefresh();
  } else if (b.dataset.close) {
    await send({ category: catOf(b.dataset.close), symbol: b.dataset.close, side: b.dataset.side, orderType: "Market",
      qty: b.dataset.qty, reduceOnly: true, positionIdx: Number(b.dataset.idx) });
  }
}

// ---- ticket estimate, leverage, margin mode ----
// The cost and liquidation price come from the server's calculator (GET /perpx/calc/order, the
// code behind `perpx calc`): the page holds no copy of the formulas.
let estimateTimer = 0;
function scheduleEstimate() { clearTimeout(estimateTimer); estimateTimer = setTimeout(estimate, 200); }
// The ticket's quantity field holds contracts, or (by value / by cost, seed 000) an amount of the
// settle coin that the calculator turns into contracts: the most whose value or cost is no more.
function showQtyUnit() {
  const by = $("o-by").value;
  $("o-qty-unit").textContent = by === "qty" ? qtyUnit(state.symbol) : coinOf(state.symbol);
  $("o-qty").placeholder = by === "qty" ? `min ${spec().lotSizeFilter?.minOrderQty ?? ""}` : `${by} in ${coinOf(state.symbol)}`;
  $("o-qty-label").textContent = { qty: "Qty", value: "Value", cost: "Cost" }[by];
}
async function calcOrder() {
  const market = $("o-type").value === "Market";
  const price = market ? ($("o-cond").checked ? $("o-trig").value.trim() : state.ticker.lastPrice) : $("o-price").value.trim();
  const amount = $("o-qty").value.trim();
  if (!price || !amount) return null;
  const side = document.querySelector("input[name=side]:checked").value;
  return pub("/perpx/calc/order", { symbol: state.symbol, side, price, [$("o-by").value]: amount, leverage: $("o-lev").value.trim() });
}
async function estimate() {
  const out = $("o-estimate");
  try {
    const r = await calcOrder();
    if (!r) { out.textContent = ""; out.dataset.cost = ""; out.dataset.qty = ""; return; }
    const coin = coinOf(state.symbol);
    out.className = "";
    out.dataset.cost = r.cost.order_cost;
    out.dataset.liq = r.position.liquidation_price;
    out.dataset.qty = r.qty;
    const qty = r.by === "qty" ? "" : `${r.qty} ${qtyUnit(state.symbol)} · `;
    out.textContent = `${qty}Cost ${r.cost.order_cost} ${coin} · isolated liq. ${r.position.liquidation_price || "none"}`;
  } catch (err) { out.className = "dim"; out.dataset.cost = ""; out.dataset.qty = ""; out.textContent = String(err.message); }
}
async function setLeverage() {
  const lev = $("o-lev").value.trim();
  await act("/v5/position/set-leverage", { category: cat(), symbol: state.symbol, buyLeverage: lev, sellLeverage: lev }, `Leverage ${lev}x`);
  scheduleEstimate();
}

// ---- operator view ----
const op = { timers: [], ws: [], chart: null, series: {}, last: 0 };
async function pollInsurance() {
  const r = await pub("/v5/market/insurance", {});
  document.querySelector("#insurance tbody").innerHTML = r.list.map((f) =>
    `<tr data-coin="${esc(f.coin)}"><td>${esc(f.coin)}</td><td class="balance">${esc(f.balance)}</td><td>${esc(f.symbols)}</td></tr>`).join("");
  const t = Math.floor(Date.now() / 1000);
  if (t <= op.last) return;  // the chart needs increasing times
  op.last = t;
  for (const f of r.list) {
    const colors = ["#f0b90b", "#0ecb81", "#5d8cff", "#f6465d", "#c77dff"];
    op.series[f.coin] ||= op.chart.addSeries(window.LightweightCharts.LineSeries,
      { color: colors[Object.keys(op.series).length % colors.length], lineWidth: 2, title: f.coin });
    op.series[f.coin].update({ time: t, value: Number(f.balance) });
  }
  $("insurance-chart").dataset.points = String(Number($("insurance-chart").dataset.points || 0) + 1);
}
async function loadFunding() {
  $("funding-symbol").textContent = state.symbol;
  const r = await pub("/v5/market/funding/history", { category: cat(), symbol: state.symbol, limit: 20 });
  document.querySelector("#funding tbody").innerHTML = r.list.length ? r.list.map((f) =>
    `<tr><td>${when(f.fundingRateTimestamp)}</td><td>${(Number(f.fundingRate) * 100).toFixed(4)}%</td></tr>`).join("")
    : `<tr class="empty"><td colspan="2">No funding settled yet (next at ${state.ticker.nextFundingTime ? when(state.ticker.nextFundingTime) : "–"})</td></tr>`;
  $("funding").dataset.rows = String(r.list.length);
}
async function loadOpenInterest() {
  $("oi-symbol").textContent = `${state.symbol} (${qtyUnit(state.symbol)})`;
  const r = await pub("/v5/market/open-interest", { category: cat(), symbol: state.symbol, intervalTime: "5min", limit: 12 });
  document.querySelector("#oi tbody").innerHTML = r.list.map((p) => `<tr><td>${when(p.timestamp)}</td><td>${esc(p.openInterest)}</td></tr>`).join("");
}
async function loadStatus() {
  const t0 = performance.now();
  const time = await pub("/v5/market/time", {});
  const rtt = performance.now() - t0;
  const [status, svc] = await Promise.all([pub("/v5/system/status", {}), pub("/perpx/status", {})]);
  const open = (w) => (w && w.readyState === 1 ? "open" : "closed");
  const streams = [open(state.ws), ...op.ws.map(open)].join(" / ");
  const ws = svc.wsSessions;
  const up = Number(svc.uptimeMs || 0) / 1000;
  $("status").innerHTML = [["Journal seq", svc.seq], ["Durable (readable) seq", svc.durableSeq],
    ["Journal lag", `${svc.journalLag} commands`],
    ["Connections (HTTP + WS)", svc.connections === "" ? "n/a" : svc.connections],
    ["WS sessions (public / private / trade)", `${ws.public} / ${ws.private} / ${ws.trade}`],
    ["Uptime", svc.uptimeMs ? `${Math.floor(up / 3600)} h ${Math.floor((up % 3600) / 60)} min` : "–"],
    ["Mode", svc.demo ? "demo" : "production"],
    ["Server time", when(Number(time.timeSecond) * 1000)],
    ["Clock offset", `${Math.round(Number(time.timeNano) / 1e6 - Date.now() + rtt / 2)} ms`],
    ["Round trip", `${rtt.toFixed(0)} ms`], ["Maintenance", status.list.length ? "scheduled" : "none"],
    ["Book seq", state.bookSeq ?? "–"], ["This tab's streams (market / liquidations)", streams]]
    .map(([k, v]) => `<span>${k}</span><span data-k="${esc(k)}">${esc(v)}</span>`).join("");
  $("status").dataset.seq = svc.seq;
}
function onLiquidation(rows) {
  const body = document.querySelector("#liquidations tbody");
  body.insertAdjacentHTML("afterbegin", rows.map((l) =>
    `<tr><td>${esc(l.s)}</td><td class="${l.S === "Buy" ? "buy-t" : "sell-t"}">${esc(l.S)}</td><td>${esc(l.p)}</td><td>${esc(l.v)}</td><td>${new Date(l.T).toLocaleTimeString([], { hour12: false })}</td></tr>`).join(""));
  while (body.rows.length > 50) body.deleteRow(-1);
}
function startOperator() {
  if (!op.chart) op.chart = window.LightweightCharts.createChart($("insurance-chart"), { autoSize: true,
    layout: { background: { color: "#161a1e" }, textColor: "#848e9c" }, timeScale: { timeVisible: true, secondsVisible: true },
    grid: { vertLines: { color: "#1f252b" }, horzLines: { color: "#1f252b" } } });
  const safe = (f) => () => f().catch((err) => console.warn(err));
  for (const f of [pollInsurance, loadFunding, loadOpenInterest, loadStatus]) safe(f)();
  op.timers = [setInterval(safe(pollInsurance), 5000), setInterval(safe(loadStatus), 5000),
    setInterval(safe(loadOpenInterest), 60000), setInterval(safe(loadFunding), 60000)];
  // Every symbol's liquidations, each on its category's public stream.
  for (const category of new Set(Object.values(state.instruments).map((i) => i.category))) {
    const ws = new WebSocket(`${WS_BASE}/v5/public/${category}`);
    op.ws.push(ws);
    const symbols = Object.keys(state.instruments).filter((s) => catOf(s) === category);
    ws.onopen = () => ws.send(JSON.stringify({ op: "subscribe", args: symbols.map((s) => `allLiquidation.${s}`) }));
    ws.onmessage = (e) => { const m = JSON.parse(e.data); if (m.topic?.startsWith("allLiquidation.")) onLiquidation(m.data); };
  }
}
function stopOperator() {
  for (const t of op.timers) clearInterval(t);
  op.timers = [];
  for (const ws of op.ws) ws.close();
  op.ws = [];
}
function route() {
  const operator = location.hash === "#operator";
  $("trade-view").hidden = operator;
  $("operator-view").hidden = !operator;
  $("nav-trade").setAttribute("aria-current", String(!operator));
  $("nav-operator").setAttribute("aria-current", String(operator));
  if (operator && !op.timers.length) startOperator();
  else if (!operator) stopOperator();
}

// ---- start ----
async function main() {
  makeChart();
  fillIntervals();
  // Every perpetual served, by category: USDT and USDC (linear), inverse.
  const [linear, inverse] = await Promise.all(["linear", "inverse"].map((category) => pub("/v5/market/instruments-info", { category })));
  for (const [category, info] of [["linear", linear], ["inverse", inverse]])
    for (const i of info.list) if (i.status === "Trading" && /Perpetual/.test(i.contractType)) state.instruments[i.symbol] = { ...i, category };
  const names = Object.keys(state.instruments).sort();
  if (!names.includes(state.symbol)) state.symbol = names[0];
  const groups = [["USDT perpetuals", (i) => i.category === "linear" && i.settleCoin === "USDT"],
    ["USDC perpetuals", (i) => i.category === "linear" && i.settleCoin === "USDC"], ["Inverse perpetuals", (i) => i.category === "inverse"]];
  $("symbol").innerHTML = groups.map(([label, keep]) => `<optgroup label="${label}">${names.filter((n) => keep(state.instruments[n]))
    .map((n) => `<option value="${esc(n)}" ${n === state.symbol ? "selected" : ""}>${esc(n)}</option>`).join("")}</optgroup>`).join("");
  $("o-by").onchange = () => { showQtyUnit(); scheduleEstimate(); };
  $("account-box").addEventListener("change", (e) => {
    if (!e.target.matches(".mode")) return;  // Partial shows the size; its legs start empty
    const row = e.target.closest("tr"), partial = e.target.value === "Partial";
    row.querySelector(".size-in").hidden = !partial;
    if (partial) for (const c of [".tp", ".sl", ".trail"]) row.querySelector(c).value = "";
  });
  $("demo-btn").onclick = demoAccount;
  pub("/perpx/status", {}).then((s) => { $("demo-btn").hidden = !s.demo; }).catch(() => {});
  $("symbol").onchange = () => selectSymbol($("symbol").value);
  $("group").onchange = () => { state.group = Number($("group").value); scheduleBook(); };
  $("ticket").onsubmit = placeOrder;
  $("o-type").onchange = () => { $("o-price").disabled = $("o-type").value === "Market"; };
  $("o-cond").onchange = () => { $("o-trigger").hidden = !$("o-cond").checked; };
  $("ticket").addEventListener("input", scheduleEstimate);
  $("ticket").addEventListener("change", scheduleEstimate);
  $("o-lev").oninput = scheduleEstimate;
  $("lev-set").onclick = () => (state.creds ? setLeverage() : showMsg("Sign in first", true));
  $("margin-mode").onchange = () => (state.creds ? act("/v5/account/set-margin-mode", { setMarginMode: $("margin-mode").value }, "Margin mode set") : showMsg("Sign in first", true));
  $("account-box").onclick = onAccountClick;
  $("signin").onsubmit = (e) => { e.preventDefault(); signIn($("api-key").value.trim(), $("api-secret").value.trim()); };
  $("signout").onclick = signOut;
  document.addEventListener("keydown", (e) => {  // "/" jumps to the symbol, "o" to the ticket's qty
    if (e.target.closest("input, select, textarea")) return;
    if (e.key === "/") { e.preventDefault(); $("symbol").focus(); }
    else if (e.key === "o") { e.preventDefault(); $("o-qty").focus(); }
  });
  setInterval(tickFunding, 1000);
  window.addEventListener("hashchange", route);
  route();
  await selectSymbol(state.symbol);
  const saved = sessionStorage.getItem("perpx-creds");
  if (saved) { const c = JSON.parse(saved); signIn(c.key, c.secret); }
  document.body.dataset.ready = "1";
}
if (window.LightweightCharts) main(); else window.addEventListener("DOMContentLoaded", main);
