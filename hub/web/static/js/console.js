// The console once signed in: the map and its layers, the panels, and the live picture held as
// one record per track (id -> {id, props, lat, lon, hasPos, stale, visible}). Snapshots replace
// the picture, deltas patch it, withdraw empties it; every view is updated in place.

import { api } from "./api.js";
import { Basemap } from "./basemap.js";
import { ServerClock } from "./clock.js";
import { DetailsPanel } from "./details.js";
import { loadFilters, matches, saveFilters } from "./filters.js";
import { formatLatLon, toMgrs } from "./geo.js";
import { combineLabels, levelColours, markingText } from "./labels.js";
import { LiveLink } from "./link.js";
import { MeasureTool } from "./measure.js";
import { StatusPanel } from "./status.js";
import { TrackLayer } from "./tracks.js";
import { TrackList } from "./tracklist.js";
import { TrailLayer } from "./trails.js";

const L = window.L;
const APPLY_TIMES_KEPT = 1000;
const TICK_MS = 500;
const ICON_BUDGET_MS = 8; // symbol redraws per applied message; the rest wait (tracks.js)
const DEFAULT_LEVELS = ["UNCLASSIFIED"];

const $ = (id) => document.getElementById(id);

/** Run cb after the next frame has been rendered (rAF, then a task after that frame's paint). */
const afterPaint = (() => {
  const channel = new MessageChannel();
  const queue = [];
  channel.port1.onmessage = () => { const cb = queue.shift(); if (cb) cb(); };
  return (cb) => requestAnimationFrame(() => { queue.push(cb); channel.port2.postMessage(0); });
})();

export class ConsoleApp {
  /**
   * @param session {identity, audience, expires} from /api/v1/session or /api/v1/login
   * @param testMode ?test=1: no Leaflet animations
   * @param onSessionLost () => void, when the hub no longer knows our session
   */
  constructor({ session, testMode, onSessionLost }) {
    this.session = session;
    this.identity = session.identity;
    this.audience = session.audience;
    this.testMode = testMode;
    this.onSessionLost = onSessionLost;
    this.levels = DEFAULT_LEVELS;
    this.policy = null;
    this.staleAfterS = 10;
    this.trailS = 300;
    this.clock = new ServerClock();
    this.tracks = new Map();
    this.filters = loadFilters();
    this.selected = null;
    this.selectedDropped = false;
    this.ready = false;
    this.fitted = false;
    this.applyTimes = []; // per delta: ms from receipt to after the next rendered frame
    this.applySyncTimes = []; // per delta: ms from receipt to the end of the synchronous update
    this.trailsGen = 0;
    this.pictureTs = null;
    this.lastSessionCheck = 0;
    this.noticeTimer = null;
  }

  // ---- set-up -------------------------------------------------------------------------------

  start() {
    $("identity-name").textContent = this.identity ?? "–";
    this._showAudience();
    this._buildMap();
    this.status = new StatusPanel($("status-panel"));
    this.details = new DetailsPanel({
      el: $("track-details"),
      map: this.map,
      levels: () => this.levels,
      now: () => this.clock.now(),
      loadHistory: (id) => api.history(id),
      onClose: () => this.deselect(),
    });
    this.list = new TrackList({
      listEl: $("track-list"),
      countEl: $("track-count"),
      resetEl: $("filter-reset"),
      filters: this.filters,
      recOf: (id) => this.tracks.get(id),
      now: () => this.clock.now(),
      onFilters: (f) => this.setFilters(f),
      onSelect: (id) => this.select(id),
    });
    this.measure = new MeasureTool({ map: this.map, toggle: $("measure-toggle"), result: $("measure-result") });
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.details.open) this.deselect();
    });

    this.link = new LiveLink({
      onHello: (m) => this.onHello(m),
      onSnapshot: (m, t0) => this.onSnapshot(m, t0),
      onDelta: (m, t0) => this.onDelta(m, t0),
      onWithdraw: (m) => this.onWithdraw(m),
      onStatus: (d) => this.status.render(d, this.clock.now()),
      onHeartbeat: (m) => this.clock.sync(m.server_time),
      onState: (s) => this.onLinkState(s),
      onConnectFailed: () => this.checkSession(),
    });
    this.onLinkState(this.link.state);
    this.link.start();
    api.status().then((s) => this.status.render(s, this.clock.now())).catch((err) => {
      if (err.status === 401) this.checkSession();
      else console.warn("status", err.message);
    });
    this.tickTimer = setInterval(() => this.tick(), TICK_MS);
    this._updateBanner();
  }

  stop() {
    if (this.link) this.link.stop();
    clearInterval(this.tickTimer);
  }

  _buildMap() {
    const animate = !this.testMode;
    L.Icon.Default.imagePath = "/static/vendor/leaflet-1.9.4/images/";
    const map = L.map("map", {
      fadeAnimation: animate,
      zoomAnimation: animate,
      markerZoomAnimation: animate,
      inertia: animate,
      minZoom: 2,
      maxZoom: 19,
      worldCopyJump: false,
    }).setView([0, 20], 3);
    this.map = map;
    map.attributionControl.addAttribution("Natural Earth");
    L.control.scale({ imperial: false, position: "bottomleft" }).addTo(map);

    this.basemap = new Basemap(map);
    this.trails = new TrailLayer(map);
    this.trackLayer = new TrackLayer(map, {
      onClick: (id, latlng) => {
        if (this.measure.active) this.measure.addPoint(latlng);
        else this.select(id);
      },
    });
    this.layers = L.control.layers(null, { ...this.basemap.overlays(), "Trails": this.trails.group }, {
      collapsed: true, position: "topright",
    }).addTo(map);
    this.basemap.loadCountries().catch((err) => console.warn("basemap", err.message));

    const readout = $("cursor-readout");
    let pending = null;
    map.on("mousemove", (e) => {
      if (pending === null) {
        requestAnimationFrame(() => {
          const ll = pending;
          pending = null;
          if (ll) readout.textContent = `${formatLatLon(ll.lat, ll.lng, 5)}   MGRS ${toMgrs(ll.lat, ll.lng)}`;
        });
      }
      pending = e.latlng;
    });
    map.getContainer().addEventListener("mouseleave", () => {
      pending = null;
      readout.textContent = "move the cursor over the map";
    });
  }

  // ---- stream handlers ----------------------------------------------------------------------

  onHello(msg) {
    this.clock.sync(msg.server_time);
    if (Array.isArray(msg.levels) && msg.levels.length) this.levels = msg.levels.map(String);
    if (msg.policy) this.policy = String(msg.policy);
    if (Number(msg.stale_after_s) > 0) this.staleAfterS = Number(msg.stale_after_s);
    if (Number(msg.trail_s) > 0) this.trailS = Number(msg.trail_s);
    if (msg.audience !== undefined) this.audience = String(msg.audience);
    if (msg.identity !== undefined) this.identity = String(msg.identity);
    $("identity-name").textContent = this.identity ?? "–";
    this._showAudience();
    if (msg.basemap === true) this.basemap.enableTiles(Number(msg.basemap_maxzoom), this.layers);
    this._updateBanner();
  }

  onSnapshot(msg, t0) {
    const fc = msg.data || {};
    const seen = new Set();
    for (const f of Array.isArray(fc.features) ? fc.features : []) {
      const id = this._upsert(f, msg.ts ?? fc.ts);
      if (id !== null) seen.add(id);
    }
    for (const id of [...this.tracks.keys()]) if (!seen.has(id)) this._remove(id, "left the picture");
    this.trails.retain(seen);
    this._afterApply(msg.ts ?? fc.ts);
    this.list.renderNow();
    if (!this.fitted) this._fitToTracks();
    this.ready = true;
    this._loadTrails();
    this._recordApply(t0, "snapshot");
  }

  onDelta(msg, t0) {
    const d = msg.data || {};
    for (const f of Array.isArray(d.upserts) ? d.upserts : []) this._upsert(f, msg.ts);
    for (const id of Array.isArray(d.deletes) ? d.deletes : []) this._remove(String(id), "deleted by the hub");
    this._afterApply(msg.ts);
    this._recordApply(t0, "delta");
  }

  onWithdraw() {
    this.trailsGen++;
    for (const id of [...this.tracks.keys()]) this._remove(id, "withdrawn: the release rules changed");
    this.trackLayer.clear();
    this.trails.clear();
    this.list.clear();
    this.tracks.clear();
    this._afterApply(null);
    this.notice("Release rules changed: picture withdrawn, waiting for the new one");
  }

  onLinkState(state) {
    const pill = $("link-pill");
    pill.dataset.link = state;
    pill.textContent = state === "up" ? "live" : state === "down" ? "link lost" : "connecting";
    this.tick();
  }

  checkSession() {
    const now = performance.now();
    if (now - this.lastSessionCheck < 4000) return;
    this.lastSessionCheck = now;
    api.session().catch((err) => {
      if (err.status === 401) {
        this.stop();
        this.onSessionLost();
      }
    });
  }

  // ---- picture ------------------------------------------------------------------------------

  _isStale(props) {
    if (this.link && this.link.state === "down") return true;
    let t = Number(props.stale);
    if (!Number.isFinite(t)) {
      const lu = Number(props.last_update);
      t = Number.isFinite(lu) ? lu + this.staleAfterS : Infinity;
    }
    return this.clock.now() > t;
  }

  _upsert(f, pictureTs) {
    if (!f || typeof f !== "object") return null;
    const props = f.properties && typeof f.properties === "object" ? f.properties : {};
    const rawId = f.id ?? props.id;
    if (rawId === undefined || rawId === null) return null;
    const id = String(rawId);
    let rec = this.tracks.get(id);
    if (!rec) {
      rec = { id, props, lat: NaN, lon: NaN, hasPos: false, stale: false, visible: true };
      this.tracks.set(id, rec);
    }
    rec.props = props;
    const g = f.geometry;
    const c = g && g.type === "Point" && Array.isArray(g.coordinates) ? g.coordinates : null;
    rec.hasPos = !!c && Number.isFinite(c[0]) && Number.isFinite(c[1]);
    if (rec.hasPos) {
      rec.lon = c[0];
      rec.lat = c[1];
    }
    rec.stale = this._isStale(props);
    rec.visible = matches(this.filters, props, rec.stale);
    if (rec.hasPos) {
      this.trackLayer.upsert(id, rec.lat, rec.lon, props, {
        visible: rec.visible, stale: rec.stale, selected: this.selected === id,
      });
      const t = Number.isFinite(props.ts) ? props.ts : Number.isFinite(props.last_update) ? props.last_update : Number(pictureTs);
      this.trails.append(id, rec.lat, rec.lon, t, props.affiliation);
      this.trails.setVisible(id, rec.visible);
    } else {
      this.trackLayer.remove(id);
    }
    if (Array.isArray(props.nations) && props.nations.length) this.list.addNations(props.nations);
    this.list.upsert(id);
    if (this.selected === id) {
      if (this.selectedDropped) {
        this.selectedDropped = false;
        this.details.show(id, rec);
        this.trackLayer.setSelected(id, true);
        this.list.setSelected(id);
      } else {
        this.details.update(rec);
      }
    }
    return id;
  }

  _remove(id, reason) {
    if (!this.tracks.delete(id)) return;
    this.trackLayer.remove(id);
    this.trails.remove(id);
    this.list.remove(id);
    if (this.selected === id) {
      this.selectedDropped = true;
      this.details.dropped(`Track ${reason}.`);
    }
  }

  _afterApply(ts) {
    if (Number.isFinite(Number(ts)) && ts !== null) this.pictureTs = Number(ts);
    const ref = Number.isFinite(this.pictureTs) ? Math.max(this.pictureTs, this.clock.now()) : this.clock.now();
    this.trails.prune(ref - this.trailS);
    this.trails.flush();
    this.trackLayer.flushIcons(ICON_BUDGET_MS);
    this._updateBanner();
    $("seq-value").textContent = this.link.lastSeq >= 0 ? String(this.link.lastSeq) : "–";
    this._updateCount();
  }

  _recordApply(t0, kind) {
    if (kind !== "delta") return;
    this.applySyncTimes.push(performance.now() - t0);
    if (this.applySyncTimes.length > APPLY_TIMES_KEPT) this.applySyncTimes.shift();
    afterPaint(() => {
      this.applyTimes.push(performance.now() - t0);
      if (this.applyTimes.length > APPLY_TIMES_KEPT) this.applyTimes.splice(0, this.applyTimes.length - APPLY_TIMES_KEPT);
    });
  }

  _loadTrails() {
    const gen = ++this.trailsGen;
    api.trails().then((fc) => {
      if (gen !== this.trailsGen) return; // a newer snapshot or a withdraw since
      const held = new Map();
      for (const [id, rec] of this.tracks) held.set(id, rec.props.affiliation);
      this.trails.merge(fc, held);
      for (const [id, rec] of this.tracks) this.trails.setVisible(id, rec.visible);
      const ref = Number.isFinite(this.pictureTs) ? Math.max(this.pictureTs, this.clock.now()) : this.clock.now();
      this.trails.prune(ref - this.trailS);
      this.trails.flush();
    }).catch((err) => {
      if (err.status === 401) this.checkSession();
      else console.warn("trails", err.message);
    });
  }

  _fitToTracks() {
    const pts = [];
    for (const rec of this.tracks.values()) if (rec.hasPos) pts.push([rec.lat, rec.lon]);
    if (!pts.length) return;
    const b = L.latLngBounds(pts);
    if (!b.isValid()) return;
    this.map.fitBounds(b, { padding: [40, 40], maxZoom: 15, animate: false });
    this.fitted = true;
  }

  // ---- views --------------------------------------------------------------------------------

  setFilters(f) {
    this.filters = f;
    saveFilters(f);
    this.list.setFilters(f);
    for (const [id, rec] of this.tracks) this._applyVisibility(id, rec);
    this.trails.flush();
    this._updateCount();
  }

  _applyVisibility(id, rec) {
    const v = matches(this.filters, rec.props, rec.stale);
    if (v === rec.visible) return;
    rec.visible = v;
    this.trackLayer.setVisible(id, v);
    this.trails.setVisible(id, v);
    this.list.setVisible(id, v);
  }

  _updateCount() {
    let shown = 0;
    for (const rec of this.tracks.values()) if (rec.visible) shown++;
    this.list.setCount(shown, this.tracks.size);
  }

  select(id) {
    const key = String(id);
    const rec = this.tracks.get(key);
    if (!rec) return false;
    if (this.selected && this.selected !== key) this.trackLayer.setSelected(this.selected, false);
    this.selected = key;
    this.selectedDropped = false;
    this.trackLayer.setSelected(key, true);
    this.list.setSelected(key);
    this.details.show(key, rec);
    if (rec.hasPos && !this.map.getBounds().pad(-0.1).contains([rec.lat, rec.lon])) {
      this.map.panTo([rec.lat, rec.lon], { animate: !this.testMode });
    }
    return true;
  }

  deselect() {
    if (this.selected) this.trackLayer.setSelected(this.selected, false);
    this.selected = null;
    this.selectedDropped = false;
    this.list.setSelected(null);
    this.details.close();
  }

  /** Once per TICK_MS: stale states, ages, the link banner. */
  tick() {
    if (!this.list) return;
    const now = this.clock.now();
    const statusFilter = this.filters.status === "stale" || this.filters.status === "current";
    let changed = false;
    for (const [id, rec] of this.tracks) {
      const s = this._isStale(rec.props);
      if (s === rec.stale) continue;
      rec.stale = s;
      this.trackLayer.setStale(id, s);
      this.list.setStale(id, s);
      if (statusFilter) {
        this._applyVisibility(id, rec);
        changed = true;
      }
    }
    if (changed) {
      this.trails.flush();
      this._updateCount();
    }
    this.list.tickAges(now);
    this.details.tick();
    this._updateLinkBanner();
  }

  _updateLinkBanner() {
    const banner = $("link-banner");
    const down = this.link && this.link.state === "down";
    if (down) {
      const since = this.link.downSince ?? performance.now();
      const n = Math.max(0, Math.floor((performance.now() - since) / 1000));
      const text = `link lost, ${n} s · reconnecting…`;
      if (banner.textContent !== text) banner.textContent = text;
    }
    if (banner.hidden === down) banner.hidden = !down;
    document.body.classList.toggle("link-down", down);
  }

  _updateBanner() {
    const m = combineLabels((function* (tracks) { for (const r of tracks.values()) yield r.props.label; })(this.tracks), this.levels);
    if (m.count === 0) m.classification = this.levels[0];
    const text = markingText(m);
    const [bg, fg] = levelColours(m.classification, this.levels);
    for (const id of ["classification-banner", "classification-banner-bottom"]) {
      const el = $(id);
      if (el.textContent !== text) el.textContent = text;
      el.style.background = bg;
      el.style.color = fg;
      el.dataset.level = m.classification;
      el.title = `${this.policy || m.policy || "marking"}: ${text}`;
    }
  }

  _showAudience() {
    const a = this.audience ?? "–";
    $("audience-name").textContent = a === "mission" ? "mission (operator)" : a;
  }

  notice(text, ms = 6000) {
    const el = $("notice");
    el.textContent = text;
    el.hidden = false;
    clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(() => { el.hidden = true; }, ms);
  }

  // ---- test and automation hooks (window.hubConsole) ----------------------------------------

  trackIds() {
    return this.trackLayer.visibleIds();
  }

  allTrackIds() {
    return [...this.tracks.keys()];
  }
}
