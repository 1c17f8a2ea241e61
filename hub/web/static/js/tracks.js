// Track markers: one reused Leaflet marker per track (setLatLng on updates, setIcon only when
// the symbol changes). The marker element carries class "track-marker", data-track-id, and the
// state classes "stale", "friend", "coasting", "selected".

import { courseBucket, sidcOf, symbolIcon, symbolKey } from "./symbols.js";

const L = window.L;

const TrackMarker = L.Marker.extend({
  // Leaflet rewrites the element's className on every (re)creation of the icon: re-apply ours.
  _initIcon() {
    L.Marker.prototype._initIcon.call(this);
    const el = this._icon;
    el.classList.add("track-marker");
    el.dataset.trackId = this.trackId;
    el.classList.toggle("stale", this.isStale);
    el.classList.toggle("friend", this.isFriend);
    el.classList.toggle("coasting", this.isCoasting);
    el.classList.toggle("selected", this.isSelected);
  },
  // A 2D translate instead of Leaflet's translate3d: a thousand markers then share one
  // compositor layer instead of being a layer each (measured: about half the frame time).
  _setPos(pos) {
    if (this._icon) {
      this._icon._leaflet_pos = pos;
      this._icon.style.transform = `translate(${pos.x}px,${pos.y}px)`;
    }
    this._zIndex = pos.y + this.options.zIndexOffset;
    this._resetZIndex();
  },
  setFlag(name, cls, value) {
    if (this[name] === value) return;
    this[name] = value;
    if (this._icon) this._icon.classList.toggle(cls, value);
  },
});

export class TrackLayer {
  /** @param onClick (id, latlng) => void */
  constructor(map, { onClick }) {
    this.map = map;
    this.onClick = onClick;
    this.markers = new Map(); // id -> TrackMarker (on the map or not)
    this.group = L.layerGroup().addTo(map);
    // Course-leader changes wait here and are redrawn within a time budget after each applied
    // message (flushIcons) and when the page is idle, so a delta that turns hundreds of tracks
    // does not stall the page. SIDC changes and new tracks are drawn at once.
    this.pendingIcons = new Set();
    this.idleHandle = null;
  }

  /** Create or update the marker of a track; `visible` puts it on or off the map. */
  upsert(id, lat, lon, props, { visible, stale, selected }) {
    const sidc = sidcOf(props);
    let m = this.markers.get(id);
    const bucket = courseBucket(props, m ? m.bucket : null);
    const friend = props.affiliation === "friend";
    if (!m) {
      m = new TrackMarker([lat, lon], {
        icon: symbolIcon(id, sidc, bucket),
        keyboard: false,
        zIndexOffset: friend ? 1000 : 0,
      });
      m.trackId = id;
      m.sidc = sidc;
      m.bucket = bucket;
      m.symbol = symbolKey(id, sidc, bucket);
      m.isStale = stale;
      m.isFriend = friend;
      m.isCoasting = props.status === "coasting";
      m.isSelected = selected;
      m.on("click", (e) => this.onClick(id, e.latlng, e));
      this.markers.set(id, m);
    } else {
      const ll = m.getLatLng();
      if (ll.lat !== lat || ll.lng !== lon) m.setLatLng([lat, lon]);
      const sidcChanged = m.sidc !== sidc;
      m.sidc = sidc;
      m.bucket = bucket;
      if (sidcChanged) this._redrawIcon(m);
      else if (m.symbol !== symbolKey(id, sidc, bucket)) this._queueIcon(id);
      if (m.isFriend !== friend) m.setZIndexOffset(friend ? 1000 : 0);
      m.setFlag("isFriend", "friend", friend);
      m.setFlag("isCoasting", "coasting", props.status === "coasting");
      m.setFlag("isStale", "stale", stale);
      m.setFlag("isSelected", "selected", selected);
    }
    this.setVisible(id, visible);
  }

  _redrawIcon(m) {
    this.pendingIcons.delete(m.trackId);
    const key = symbolKey(m.trackId, m.sidc, m.bucket);
    if (m.symbol === key) return;
    m.symbol = key;
    m.setIcon(symbolIcon(m.trackId, m.sidc, m.bucket));
  }

  _queueIcon(id) {
    this.pendingIcons.add(id);
  }

  /** Redraw queued symbols, oldest first, for at most budgetMs; the rest later. */
  flushIcons(budgetMs) {
    const end = performance.now() + budgetMs;
    for (const id of this.pendingIcons) {
      const m = this.markers.get(id);
      if (m) this._redrawIcon(m);
      else this.pendingIcons.delete(id);
      if (performance.now() > end) break;
    }
    if (this.pendingIcons.size && this.idleHandle === null && window.requestIdleCallback) {
      this.idleHandle = window.requestIdleCallback((deadline) => {
        this.idleHandle = null;
        this.flushIcons(Math.min(8, deadline.timeRemaining()));
      });
    }
  }

  setVisible(id, visible) {
    const m = this.markers.get(id);
    if (!m) return;
    const on = this.group.hasLayer(m);
    if (visible && !on) this.group.addLayer(m);
    else if (!visible && on) this.group.removeLayer(m);
  }

  setStale(id, stale) {
    const m = this.markers.get(id);
    if (m) m.setFlag("isStale", "stale", stale);
  }

  setSelected(id, selected) {
    const m = this.markers.get(id);
    if (!m) return;
    m.setFlag("isSelected", "selected", selected);
    m.setZIndexOffset(selected ? 2000 : m.isFriend ? 1000 : 0);
  }

  remove(id) {
    const m = this.markers.get(id);
    if (!m) return;
    this.group.removeLayer(m);
    m.off();
    this.markers.delete(id);
    this.pendingIcons.delete(id);
  }

  clear() {
    this.group.clearLayers();
    for (const m of this.markers.values()) m.off();
    this.markers.clear();
    this.pendingIcons.clear();
  }

  /** Ids whose marker is on the map now (after filters). */
  visibleIds() {
    const ids = [];
    for (const [id, m] of this.markers) if (this.group.hasLayer(m)) ids.push(id);
    return ids;
  }

  latLngOf(id) {
    const m = this.markers.get(id);
    return m ? m.getLatLng() : null;
  }
}
