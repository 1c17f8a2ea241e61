// The track list and its filter controls. One row element per track, kept and patched in place:
// changed rows are re-rendered at most twice a second (renderNow() forces it), ages once per
// tick, and only text that changed is written.

import { CONTROL_IDS, FIELDS, NO_NATION } from "./filters.js";
import { formatAgeShort, speedOf } from "./geo.js";

const RENDER_INTERVAL_MS = 500;
const collator = new Intl.Collator("en", { numeric: true, sensitivity: "base" });
const AFF_SHORT = { friend: "FRD", hostile: "HOS", neutral: "NEU", unknown: "UNK" };

function span(cls) {
  const s = document.createElement("span");
  s.className = cls;
  return s;
}

function setText(row, key, text) {
  if (row.text[key] === text) return;
  row.text[key] = text;
  row.cells[key].textContent = text;
}

export class TrackList {
  /**
   * @param recOf id -> track record {props, visible, stale} held by the console
   * @param now () => server time, epoch s
   * @param onFilters (filters) => void, on any control change
   * @param onSelect (id) => void
   */
  constructor({ listEl, countEl, resetEl, filters, recOf, now, onFilters, onSelect }) {
    this.el = listEl;
    this.now = now;
    this.countEl = countEl;
    this.recOf = recOf;
    this.onSelect = onSelect;
    this.rows = new Map();
    this.order = [];
    this.dirty = new Set();
    this.timer = null;
    this.lastRender = 0;
    this.selected = null;
    this.controls = {};
    this.nations = new Set();

    for (const k of FIELDS) this.controls[k] = document.getElementById(CONTROL_IDS[k]);
    this.setFilters(filters);
    const changed = () => onFilters(this.readFilters());
    for (const k of FIELDS) this.controls[k].addEventListener("change", changed);
    resetEl.addEventListener("click", () => {
      for (const k of FIELDS) this.controls[k].value = "";
      changed();
    });
    this.el.addEventListener("click", (e) => {
      const row = e.target.closest("[data-track-id]");
      if (row) this.onSelect(row.dataset.trackId);
    });
    this.el.addEventListener("keydown", (e) => {
      if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
      const cur = document.activeElement && document.activeElement.closest("[data-track-id]");
      let next = cur ? cur : null;
      do {
        next = next ? (e.key === "ArrowDown" ? next.nextElementSibling : next.previousElementSibling)
          : this.el.firstElementChild;
      } while (next && next.hidden);
      if (next) {
        e.preventDefault();
        next.focus();
        this.onSelect(next.dataset.trackId);
      }
    });
  }

  readFilters() {
    const f = {};
    for (const k of FIELDS) f[k] = this.controls[k].value;
    return f;
  }

  /** Put values into the controls (a saved nation not seen yet gets its option). */
  setFilters(f) {
    if (f.nation && f.nation !== NO_NATION) this.addNations([f.nation]);
    for (const k of FIELDS) {
      const sel = this.controls[k];
      sel.value = f[k];
      if (sel.value !== f[k]) sel.value = "";
      sel.classList.toggle("active", sel.value !== "");
    }
  }

  addNations(nations) {
    for (const n of nations) {
      if (typeof n !== "string" || !n || n === NO_NATION || this.nations.has(n)) continue;
      this.nations.add(n);
      const sel = this.controls.nation;
      const opt = document.createElement("option");
      opt.value = n;
      opt.textContent = n;
      let before = null;
      for (const o of sel.options) {
        if (o.value && o.value !== NO_NATION && collator.compare(o.value, n) > 0) { before = o; break; }
      }
      sel.insertBefore(opt, before);
    }
  }

  upsert(id) {
    this.dirty.add(id);
    this.schedule();
  }

  remove(id) {
    this.dirty.delete(id);
    const row = this.rows.get(id);
    if (!row) return;
    row.el.remove();
    this.rows.delete(id);
    const i = this._find(id);
    if (this.order[i] === id) this.order.splice(i, 1);
    if (this.selected === id) this.selected = null;
  }

  clear() {
    this.rows.clear();
    this.order = [];
    this.dirty.clear();
    this.el.replaceChildren();
  }

  setVisible(id, visible) {
    const row = this.rows.get(id);
    if (row) row.el.hidden = !visible;
  }

  setStale(id, stale) {
    const row = this.rows.get(id);
    if (row) row.el.classList.toggle("stale", stale);
  }

  setSelected(id) {
    const old = this.selected && this.rows.get(this.selected);
    if (old) {
      old.el.classList.remove("selected");
      old.el.setAttribute("aria-selected", "false");
    }
    this.selected = id;
    const row = id && this.rows.get(id);
    if (row) {
      row.el.classList.add("selected");
      row.el.setAttribute("aria-selected", "true");
      row.el.scrollIntoView({ block: "nearest" });
    }
  }

  setCount(shown, total) {
    const text = shown === total ? `${total} tracks` : `${shown} of ${total} tracks shown`;
    if (this.countEl.textContent !== text) this.countEl.textContent = text;
  }

  schedule() {
    if (this.timer !== null) return;
    const wait = Math.max(0, RENDER_INTERVAL_MS - (performance.now() - this.lastRender));
    this.timer = setTimeout(() => this.render(), wait);
  }

  renderNow() {
    this.render();
  }

  _find(id) {
    let lo = 0, hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (collator.compare(this.order[mid], id) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  _create(id) {
    const el = document.createElement("div");
    el.className = "track-row";
    el.dataset.trackId = id;
    el.setAttribute("role", "option");
    el.setAttribute("aria-selected", "false");
    el.tabIndex = -1;
    const cells = {
      id: span("c-id"), cls: span("c-cls"), aff: span("c-aff"),
      status: span("c-status"), speed: span("c-num"), age: span("c-num c-age"),
    };
    el.append(cells.id, cells.cls, cells.aff, cells.status, cells.speed, cells.age);
    cells.id.textContent = id;
    const row = { el, cells, text: { id }, aff: null };
    this.rows.set(id, row);
    return row;
  }

  _fill(row, rec) {
    const p = rec.props;
    setText(row, "cls", p.cls || "–");
    const aff = p.affiliation || "unknown";
    if (row.aff !== aff) {
      if (row.aff) row.el.classList.remove(`aff-${row.aff}`);
      row.el.classList.add(`aff-${aff}`);
      row.aff = aff;
    }
    setText(row, "aff", AFF_SHORT[aff] || aff);
    setText(row, "status", p.status || "–");
    const v = speedOf(p);
    setText(row, "speed", Number.isFinite(v) ? v.toFixed(1) : "–");
    setText(row, "age", formatAgeShort(this.now() - p.last_update));
    row.el.hidden = !rec.visible;
    row.el.classList.toggle("stale", rec.stale);
  }

  render() {
    clearTimeout(this.timer);
    this.timer = null;
    this.lastRender = performance.now();
    const fresh = [];
    for (const id of this.dirty) {
      const rec = this.recOf(id);
      if (!rec) continue;
      let row = this.rows.get(id);
      if (!row) {
        row = this._create(id);
        fresh.push(id);
      }
      this._fill(row, rec);
      if (id === this.selected) row.el.classList.add("selected");
    }
    this.dirty.clear();
    if (fresh.length > 32) {
      // Many new rows (a snapshot): sort once and re-append everything in order.
      this.order = [...this.rows.keys()].sort(collator.compare);
      const frag = document.createDocumentFragment();
      for (const id of this.order) frag.appendChild(this.rows.get(id).el);
      this.el.appendChild(frag);
    } else {
      for (const id of fresh) {
        const i = this._find(id);
        const next = i < this.order.length ? this.rows.get(this.order[i]) : null;
        this.order.splice(i, 0, id);
        this.el.insertBefore(this.rows.get(id).el, next ? next.el : null);
      }
    }
    if (fresh.length && this.selected && fresh.includes(this.selected)) this.setSelected(this.selected);
  }

  /** Refresh every row's age (text changes only). */
  tickAges(now) {
    for (const row of this.rows.values()) {
      const rec = this.recOf(row.text.id);
      if (!rec) continue;
      setText(row, "age", formatAgeShort(now - rec.props.last_update));
    }
  }
}
