// The hub status panel (#status-panel): health, rates (the operator's) or the partner's own
// picture, web clients and the audience's rules,
// from GET /api/v1/status and the stream's `status` messages. Rules lines are shown verbatim.

import { formatDuration } from "./geo.js";

const MAIN_RATES = [["received", "received"], ["fused", "fused"], ["rejected", "rejected"]];

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function rate(v) {
  return Number.isFinite(v) ? `${v.toFixed(v >= 100 ? 0 : 1)}/s` : "–";
}

function brokerText(b) {
  if (b === undefined || b === null) return "–";
  if (typeof b !== "object") return String(b);
  if (typeof b.state === "string") return b.state + (b.host ? ` (${b.host}${b.port ? `:${b.port}` : ""})` : "");
  return Object.entries(b).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
}

function kvTable(obj, fmt) {
  const dl = el("dl", "kv");
  for (const k of Object.keys(obj || {}).sort()) {
    dl.append(el("dt", null, k), el("dd", null, fmt(obj[k])));
  }
  return dl;
}

export class StatusPanel {
  constructor(root) {
    this.root = root;
    this.openSections = new Set();
  }

  render(status, receivedAt = Date.now() / 1000) {
    if (!status || typeof status !== "object") return;
    // Keep the user's open/closed state of the expandable sections across re-renders.
    for (const d of this.root.querySelectorAll("details[data-key]")) {
      if (d.open) this.openSections.add(d.dataset.key);
      else this.openSections.delete(d.dataset.key);
    }
    const hub = status.hub || {};
    const parts = [el("h2", null, "Hub status")];

    const health = el("dl", "kv health");
    const online = hub.online === undefined ? null : !!hub.online;
    const onlineDd = el("dd", online === null ? "" : online ? "ok" : "bad", online === null ? "–" : online ? "online" : "offline");
    const brokerState = brokerText(hub.broker);
    const brokerDd = el("dd", brokerState.startsWith("connected") ? "ok" : "warn", brokerState);
    health.append(
      el("dt", null, "hub"), onlineDd,
      el("dt", null, "version"), el("dd", null, hub.version !== undefined ? String(hub.version) : "–"),
      el("dt", null, "uptime"), el("dd", null, formatDuration(Number(hub.uptime))),
      el("dt", null, "broker"), brokerDd,
      el("dt", null, "web clients"), el("dd", "clients", status.clients !== undefined ? String(status.clients) : "–"),
    );
    parts.push(health);

    // The operator gets the hub's rates; a partner gets its own picture (the hub-wide
    // counters count traffic of sources not released to it, so the hub does not send them).
    const rates = hub.rates;
    const picture = status.picture || {};
    const cells = rates
      ? MAIN_RATES.map(([key, name]) => [rate(Number(rates[key])), name])
      : [[picture.tracks ?? "–", "tracks"], [picture.seq ?? "–", "seq"],
         [Number.isFinite(picture.ts) ? formatDuration(receivedAt - picture.ts) : "–", "picture age"]];
    const rateBox = el("div", "rates");
    for (const [value, name] of cells) {
      const cell = el("div", `rate rate-${name.replace(/\s/g, "-")}`);
      cell.append(el("span", "rate-val", String(value)), el("span", "rate-name", name));
      rateBox.append(cell);
    }
    parts.push(rateBox);

    parts.push(el("h3", null, `Rules for ${status.audience ?? "this picture"}`));
    const rules = el("ul", "rules");
    for (const line of Array.isArray(status.rules) ? status.rules : []) rules.append(el("li", null, String(line)));
    if (!rules.children.length) rules.append(el("li", "muted", "no rules reported"));
    parts.push(rules);

    if (rates) {
      const more = el("details", "more");
      more.dataset.key = "more";
      more.open = this.openSections.has("more");
      more.append(el("summary", null, "all rates, counters and queues"));
      more.append(el("h4", null, "rates"), kvTable(rates, rate));
      more.append(el("h4", null, "queues"), kvTable(hub.queues, (v) => String(v)));
      more.append(el("h4", null, "counters"), kvTable(hub.counters, (v) => String(v)));
      parts.push(more);
    }

    const stamp = new Date(receivedAt * 1000).toISOString().slice(11, 19);
    parts.push(el("p", "muted stamp", `updated ${stamp}Z`));
    this.root.replaceChildren(...parts);
  }
}
