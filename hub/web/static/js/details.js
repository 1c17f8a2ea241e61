// Details of the selected track (#track-details) and its 1-sigma uncertainty ellipse on the map.
// Everything from the server goes in as text (textContent), never as HTML.

import {
  courseOf, covarianceEllipse, ellipseRing, formatAge, formatDistance, formatLatLon, formatUtcShort,
  speedOf, toMgrs,
} from "./geo.js";
import { labelMarking, levelColours, markingText } from "./labels.js";

const L = window.L;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// [key, label]; a null label makes a full-width row.
const FIELDS = [
  ["status", "Status"],
  ["age", "Age"],
  ["cls", "Class"],
  ["probs", null],
  ["speed", "Speed"],
  ["course", "Course"],
  ["position", "Lat, lon"],
  ["mgrs", "MGRS"],
  ["ellipse", "1σ ellipse"],
  ["sources", "Sources"],
  ["nations", "Nations"],
  ["classification", "Classification"],
  ["relTo", "REL TO"],
  ["caveats", "Caveats"],
  ["policy", "Policy"],
  ["seen", "Track"],
];

export class DetailsPanel {
  /**
   * @param levels () => classification levels, lowest first
   * @param now () => server time, epoch s
   * @param loadHistory (id) => Promise<Feature>
   */
  constructor({ el: root, map, levels, now, loadHistory, onClose }) {
    this.root = root;
    this.map = map;
    this.levels = levels;
    this.now = now;
    this.loadHistory = loadHistory;
    this.onClose = onClose;
    this.id = null;
    this.rec = null;
    this.ellipse = null;
    this.history = null;
    this._build();
  }

  _build() {
    const head = el("header", "details-head");
    this.titleEl = el("h2", "details-id", "");
    this.affEl = el("span", "badge", "");
    const close = el("button", "details-close", "×");
    close.type = "button";
    close.title = "Close (Esc)";
    close.setAttribute("aria-label", "Close details");
    close.addEventListener("click", () => this.onClose());
    head.append(this.titleEl, this.affEl, close);

    this.markingEl = el("div", "details-marking", "");
    this.noteEl = el("div", "details-note", "");
    this.noteEl.hidden = true;

    const dl = el("dl", "details-fields");
    this.f = {};
    for (const [key, name] of FIELDS) {
      const dd = el("dd", `f-${key}`, "–");
      dd.dataset.field = key;
      if (name === null) dd.classList.add("wide");
      else dl.append(el("dt", null, name));
      dl.append(dd);
      this.f[key] = dd;
    }

    const tools = el("div", "details-tools");
    this.centreBtn = el("button", null, "Centre on map");
    this.centreBtn.type = "button";
    this.centreBtn.addEventListener("click", () => {
      if (this.rec && this.rec.hasPos) this.map.panTo([this.rec.lat, this.rec.lon]);
    });
    this.historyBtn = el("button", null, "Show history");
    this.historyBtn.type = "button";
    this.historyBtn.addEventListener("click", () => this.toggleHistory());
    tools.append(this.centreBtn, this.historyBtn);

    this.root.replaceChildren(head, this.markingEl, this.noteEl, dl, tools);
  }

  get open() {
    return this.id !== null;
  }

  show(id, rec) {
    if (this.id !== id) this._clearHistory();
    this.id = id;
    this.titleEl.textContent = id;
    this.setNote("");
    this.root.hidden = false;
    this.update(rec);
  }

  close() {
    this.id = null;
    this.rec = null;
    this.root.hidden = true;
    this._removeEllipse();
    this._clearHistory();
  }

  setNote(text) {
    this.noteEl.textContent = text;
    this.noteEl.hidden = !text;
  }

  /** The selected track left the picture: keep its last details, say so, drop the ellipse. */
  dropped(reason) {
    this.setNote(reason);
    this._removeEllipse();
    this.root.classList.add("dropped");
  }

  update(rec) {
    this.rec = rec;
    this.root.classList.remove("dropped");
    const p = rec.props;
    const f = this.f;
    const aff = p.affiliation || "unknown";
    this.affEl.textContent = aff === "friend" ? "FRIEND PLATFORM" : aff.toUpperCase();
    this.affEl.className = `badge aff-${aff}`;

    const levels = this.levels();
    const marking = labelMarking(p.label, levels);
    const [bg, fg] = levelColours(marking.classification, levels);
    this.markingEl.textContent = markingText(marking);
    this.markingEl.style.background = bg;
    this.markingEl.style.color = fg;

    f.cls.textContent = p.cls || "–";
    this._probs(p.cls_probs);
    const v = speedOf(p);
    f.speed.textContent = Number.isFinite(v) ? `${v.toFixed(1)} m/s · ${(v * 3.6).toFixed(1)} km/h` : "–";
    const c = courseOf(p);
    f.course.textContent = Number.isFinite(c) ? `${c.toFixed(0).padStart(3, "0")}° T${v > 0.5 ? "" : " (nearly still)"}` : "–";
    if (rec.hasPos) {
      f.position.textContent = formatLatLon(rec.lat, rec.lon, 5);
      f.mgrs.textContent = toMgrs(rec.lat, rec.lon);
    } else {
      f.position.textContent = "no position";
      f.mgrs.textContent = "–";
    }
    const e = covarianceEllipse(p.cov);
    const ce = Number.isFinite(p.ce_m) ? `, CE ${formatDistance(p.ce_m)}` : "";
    f.ellipse.textContent = e
      ? `${formatDistance(e.major)} × ${formatDistance(e.minor)}, major axis ${e.bearingDeg.toFixed(0).padStart(3, "0")}°${ce}`
      : (ce ? ce.slice(2) : "–");
    f.sources.textContent = listOrNone(p.sources);
    f.nations.textContent = listOrNone(p.nations);
    const label = p.label && typeof p.label === "object" ? p.label : null;
    f.classification.textContent = label ? String(label.classification ?? "–") : "UNMARKED";
    f.relTo.textContent = label ? listOrNone(label.releasable_to) : "–";
    f.caveats.textContent = label && Array.isArray(label.caveats) && label.caveats.length ? label.caveats.join(", ") : "none";
    f.policy.textContent = label && label.policy ? String(label.policy) : "–";
    const now = this.now();
    const updates = Number.isFinite(p.updates) ? `${p.updates} updates` : "updates –";
    f.seen.textContent = `${updates}, first seen ${formatUtcShort(p.first_seen, now)}, state of ${formatUtcShort(p.ts, now)}`;
    this.tick();
    this._drawEllipse(rec);
  }

  /** Live fields: age and stale state. */
  tick() {
    if (!this.rec) return;
    const p = this.rec.props;
    const age = formatAge(this.now() - p.last_update);
    const text = `${age} (last update ${formatUtcShort(p.last_update, this.now())})`;
    if (this.f.age.textContent !== text) this.f.age.textContent = text;
    const status = `${p.status || "–"}${this.rec.stale ? " · STALE" : ""}`;
    if (this.f.status.textContent !== status) this.f.status.textContent = status;
    this.root.classList.toggle("stale", !!this.rec.stale);
  }

  _probs(probs) {
    const dd = this.f.probs;
    if (!probs || typeof probs !== "object") {
      dd.textContent = "–";
      return;
    }
    const entries = Object.entries(probs).filter(([, v]) => Number.isFinite(v)).sort((a, b) => b[1] - a[1]);
    const rows = entries.map(([k, v]) => {
      const row = el("div", "prob");
      const name = el("span", "prob-name", k);
      const bar = el("span", "prob-bar");
      const fill = el("span", "prob-fill");
      fill.style.width = `${Math.max(0, Math.min(1, v)) * 100}%`;
      bar.append(fill);
      const val = el("span", "prob-val", `${(v * 100).toFixed(0)} %`);
      row.append(name, bar, val);
      return row;
    });
    if (rows.length) dd.replaceChildren(...rows);
    else dd.textContent = "–";
  }

  _drawEllipse(rec) {
    const ring = rec.hasPos ? ellipseRing(rec.lat, rec.lon, rec.props.cov, 1) : null;
    if (!ring) {
      this._removeEllipse();
      return;
    }
    if (!this.ellipse) {
      this.ellipse = L.polygon(ring, {
        className: "uncertainty-ellipse",
        color: "#ff9800",
        weight: 2,
        fillColor: "#ffb300",
        fillOpacity: 0.18,
        interactive: false,
      }).addTo(this.map);
    } else {
      this.ellipse.setLatLngs(ring);
    }
  }

  _removeEllipse() {
    if (this.ellipse) {
      this.ellipse.remove();
      this.ellipse = null;
    }
  }

  async toggleHistory() {
    if (this.history) {
      this._clearHistory();
      return;
    }
    const id = this.id;
    if (id === null) return;
    this.historyBtn.disabled = true;
    try {
      const feature = await this.loadHistory(id);
      if (this.id !== id) return;
      const coords = feature && feature.geometry && feature.geometry.coordinates;
      if (!Array.isArray(coords) || !coords.length) {
        this.setNote("no history for this track");
        return;
      }
      this.history = L.polyline(coords.map((c) => [c[1], c[0]]), {
        className: "track-history",
        color: "#6a1b9a",
        weight: 2,
        dashArray: "4 4",
        interactive: false,
      }).addTo(this.map);
      this.historyBtn.textContent = "Hide history";
    } catch (err) {
      console.warn("history", err);
      this.setNote(`history unavailable (${err.status || "network"})`);
    } finally {
      this.historyBtn.disabled = false;
    }
  }

  _clearHistory() {
    if (this.history) {
      this.history.remove();
      this.history = null;
    }
    this.historyBtn.textContent = "Show history";
  }
}

function listOrNone(v) {
  return Array.isArray(v) && v.length ? v.map(String).join(", ") : "none released";
}
