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

// ---- formatting ----
const spec = () => state.instruments[state.symbol] || {};
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
  const q = { category: "linear", symbol: state.symbol, interval: state.interval, limit: 300 };
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
  $("t-oi").textContent = t.openInterest ?? "–";
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
  state.bookFrames = (state.bookFrames || 0) + 1;  // read by the browser test (stream rate)
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
  const ws = new WebSocket(`${WS_BASE}/v5/public/linear`);
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
  const t = await pub("/v5/market/tickers", { category: "linear", symbol });
  if (t.list[0]) onTicker(t.list[0]);
  await loadHistory();
  connectPublic();
  $("o-qty").placeholder = `min ${spec().lotSizeFilter?.minOrderQty ?? ""}`;
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
async function refreshAccount() {
  if (!state.creds) return;
  const [pos, ord, wal] = await Promise.all([
    priv("GET", "/v5/position/list", { category: "linear", settleCoin: "USDT" }),
    priv("GET", "/v5/order/realtime", { category: "linear", settleCoin: "USDT" }),
    priv("GET", "/v5/account/wallet-balance", { accountType: "UNIFIED" })]);
  const positions = (pos.result?.list || []).filter((p) => Number(p.size) > 0);
  document.querySelector("#positions tbody").innerHTML = positions.map((p) =>
    `<tr data-symbol="${esc(p.symbol)}"><td>${esc(p.symbol)}</td><td class="${p.side === "Buy" ? "buy-t" : "sell-t"}">${esc(p.side)}</td><td>${esc(p.size)}</td><td>${esc(p.avgPrice)}</td><td>${esc(p.markPrice)}</td><td class="liq">${esc(p.liqPrice)}</td><td>${esc(p.unrealisedPnl)}</td>
     <td><button type="button" data-close="${esc(p.symbol)}" data-side="${p.side === "Buy" ? "Sell" : "Buy"}" data-qty="${esc(p.size)}" data-idx="${p.positionIdx}">Close</button></td></tr>`).join("");
  document.querySelector("#orders tbody").innerHTML = (ord.result?.list || []).map((o) =>
    `<tr data-order="${esc(o.orderId)}"><td>${esc(o.symbol)}</td><td class="${o.side === "Buy" ? "buy-t" : "sell-t"}">${esc(o.side)}</td><td>${esc(o.orderType)}</td><td>${esc(o.price)}</td><td>${esc(o.qty)}</td><td>${esc(o.cumExecQty)}</td><td>${esc(o.orderStatus)}</td>
     <td><button type="button" data-cancel="${esc(o.orderId)}" data-symbol="${esc(o.symbol)}">Cancel</button></td></tr>`).join("");
  const w = wal.result?.list?.[0];
  if (w) {
    const pct = (v) => `${(Number(v) * 100).toFixed(2)}%`;
    $("wallet").innerHTML = [["Equity", w.totalEquity], ["Available", w.totalAvailableBalance],
      ["IM rate", pct(w.accountIMRate)], ["MM rate", pct(w.accountMMRate)]]
      .map(([k, v]) => `<span>${k}</span><span id="w-${k.split(" ")[0].toLowerCase()}">${esc(v)}</span>`).join("");
  }
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
  if (r.retCode !== 0) { state.creds = null; showMsg(r.retMsg, true); return; }
  sessionStorage.setItem("perpx-creds", JSON.stringify(state.creds));
  $("signin").hidden = true; $("signed").hidden = false; $("signin-hint").hidden = true;
  $("who").textContent = `key ${key.slice(0, 6)}…`;
  connectPrivate();
  refreshAccount();
}
function signOut() {
  sessionStorage.removeItem("perpx-creds");
  state.creds = null;
  if (state.priv) { state.priv.onclose = null; state.priv.close(); state.priv = null; }
  $("signin").hidden = false; $("signed").hidden = true; $("signin-hint").hidden = false;
  for (const t of ["#positions tbody", "#orders tbody"]) document.querySelector(t).innerHTML = "";
  $("wallet").innerHTML = "";
}

// ---- ticket ----
function showMsg(text, error) { $("ticket-msg").textContent = text; $("ticket-msg").className = error ? "error" : "ok"; }
async function placeOrder(e) {
  e.preventDefault();
  if (!state.creds) { showMsg("Sign in first", true); return; }
  const type = $("o-type").value;
  const body = { category: "linear", symbol: state.symbol, side: document.querySelector("input[name=side]:checked").value,
    orderType: type, qty: $("o-qty").value.trim() };
  if (type === "Limit") {
    body.price = $("o-price").value.trim();
    body.timeInForce = $("o-post").checked ? "PostOnly" : $("o-tif").value;
  } else if ($("o-tif").value !== "GTC") body.timeInForce = $("o-tif").value;
  if ($("o-reduce").checked) body.reduceOnly = true;
  if ($("o-tp").value.trim()) body.takeProfit = $("o-tp").value.trim();
  if ($("o-sl").value.trim()) body.stopLoss = $("o-sl").value.trim();
  await send(body);
}
async function send(body) {
  const r = await priv("POST", "/v5/order/create", body);
  if (r.retCode === 0) showMsg(`Order ${r.result.orderId.slice(0, 8)}… accepted`, false);
  else showMsg(`${r.retMsg} (${r.retCode})`, true);
  scheduleRefresh();
}
async function onAccountClick(e) {
  const b = e.target;
  if (b.dataset.cancel) {
    const r = await priv("POST", "/v5/order/cancel", { category: "linear", symbol: b.dataset.symbol, orderId: b.dataset.cancel });
    showMsg(r.retCode === 0 ? "Cancelled" : `${r.retMsg} (${r.retCode})`, r.retCode !== 0);
    scheduleRefresh();
  } else if (b.dataset.close) {
    await send({ category: "linear", symbol: b.dataset.close, side: b.dataset.side, orderType: "Market",
      qty: b.dataset.qty, reduceOnly: true, positionIdx: Number(b.dataset.idx) });
  }
}

// ---- start ----
async function main() {
  makeChart();
  fillIntervals();
  const info = await pub("/v5/market/instruments-info", { category: "linear" });
  for (const i of info.list) state.instruments[i.symbol] = i;
  const names = Object.keys(state.instruments).sort();
  if (!names.includes(state.symbol)) state.symbol = names[0];
  $("symbol").innerHTML = names.map((n) => `<option ${n === state.symbol ? "selected" : ""}>${esc(n)}</option>`).join("");
  $("symbol").onchange = () => selectSymbol($("symbol").value);
  $("group").onchange = () => { state.group = Number($("group").value); scheduleBook(); };
  $("ticket").onsubmit = placeOrder;
  $("o-type").onchange = () => { $("o-price").disabled = $("o-type").value === "Market"; };
  $("account-box").onclick = onAccountClick;
  $("signin").onsubmit = (e) => { e.preventDefault(); signIn($("api-key").value.trim(), $("api-secret").value.trim()); };
  $("signout").onclick = signOut;
  document.addEventListener("keydown", (e) => {  // "/" jumps to the symbol, "o" to the ticket's qty
    if (e.target.closest("input, select, textarea")) return;
    if (e.key === "/") { e.preventDefault(); $("symbol").focus(); }
    else if (e.key === "o") { e.preventDefault(); $("o-qty").focus(); }
  });
  setInterval(tickFunding, 1000);
  await selectSymbol(state.symbol);
  const saved = sessionStorage.getItem("perpx-creds");
  if (saved) { const c = JSON.parse(saved); signIn(c.key, c.secret); }
  document.body.dataset.ready = "1";
}
if (window.LightweightCharts) main(); else window.addEventListener("DOMContentLoaded", main);
