// Trails of the last trail_s seconds: one canvas polyline per track, seeded from
// /api/v1/trails.geojson after each snapshot and extended from every update.

const L = window.L;

// Kept vertices are at least this far apart in time; the newest vertex (the head) moves with the
// track. A 1 Hz picture of a thousand tracks then costs a fifth of the points to project and draw.
const MIN_VERTEX_DT_S = 3;

const COLOURS = { friend: "#1f6fd6", hostile: "#c62828", neutral: "#2e7d32", unknown: "#8a5a00" };

export class TrailLayer {
  constructor(map) {
    map.createPane("trailPane");
    map.getPane("trailPane").style.zIndex = 350;
    this.renderer = L.canvas({ pane: "trailPane", padding: 0.2 });
    this.group = L.layerGroup().addTo(map);
    this.trails = new Map(); // id -> {pts: L.LatLng[] (each with .t), line, visible, dirty, colour}
    this.dirty = new Set();
  }

  _get(id, affiliation) {
    let tr = this.trails.get(id);
    if (!tr) {
      const colour = COLOURS[affiliation] || COLOURS.unknown;
      tr = { pts: [], line: null, visible: true, colour };
      this.trails.set(id, tr);
    } else if (affiliation && COLOURS[affiliation] && tr.colour !== COLOURS[affiliation]) {
      tr.colour = COLOURS[affiliation];
      if (tr.line) tr.line.setStyle({ color: tr.colour });
    }
    return tr;
  }

  /** Add a vertex at time t (epoch s); out-of-order or repeated times are ignored. */
  append(id, lat, lon, t, affiliation) {
    const tr = this._get(id, affiliation);
    const last = tr.pts[tr.pts.length - 1];
    if (last) {
      if (Number.isFinite(t) && Number.isFinite(last.t) && t <= last.t) return;
      if (last.lat === lat && last.lng === lon) { last.t = t; return; }
    }
    const p = L.latLng(lat, lon);
    p.t = t;
    const n = tr.pts.length;
    if (n >= 2 && t - tr.pts[n - 2].t < MIN_VERTEX_DT_S) tr.pts[n - 1] = p;
    else tr.pts.push(p);
    this.dirty.add(id);
  }

  /**
   * Merge a trails FeatureCollection: a fetched trail replaces the held one, keeping held
   * vertices newer than its last one (updates that arrived while it was being fetched).
   * Only tracks in `held` (id -> affiliation) are taken.
   */
  merge(fc, held) {
    for (const f of (fc && fc.features) || []) {
      const id = String(f.id ?? (f.properties && f.properties.id) ?? "");
      if (!held.has(id) || !f.geometry || f.geometry.type !== "LineString") continue;
      const times = (f.properties && f.properties.times) || [];
      const pts = [];
      const coords = f.geometry.coordinates;
      coords.forEach((c, i) => {
        const t = Number(times[i]);
        const last = pts[pts.length - 1];
        if (last && i < coords.length - 1 && t - last.t < MIN_VERTEX_DT_S) return;
        const p = L.latLng(c[1], c[0]);
        p.t = t;
        pts.push(p);
      });
      const tr = this._get(id, held.get(id));
      const lastT = pts.length ? pts[pts.length - 1].t : -Infinity;
      for (const p of tr.pts) if (p.t > lastT) pts.push(p);
      tr.pts = pts;
      this.dirty.add(id);
    }
  }

  /** Drop vertices older than cutoff (epoch s). */
  prune(cutoff) {
    for (const [id, tr] of this.trails) {
      let n = 0;
      while (n < tr.pts.length && tr.pts[n].t < cutoff) n++;
      if (n) {
        tr.pts.splice(0, n);
        this.dirty.add(id);
      }
    }
  }

  setVisible(id, visible) {
    const tr = this.trails.get(id);
    if (!tr || tr.visible === visible) return;
    tr.visible = visible;
    this.dirty.add(id);
  }

  remove(id) {
    const tr = this.trails.get(id);
    if (!tr) return;
    if (tr.line) this.group.removeLayer(tr.line);
    this.trails.delete(id);
    this.dirty.delete(id);
  }

  /** Keep only the trails of these ids. */
  retain(ids) {
    for (const id of [...this.trails.keys()]) if (!ids.has(id)) this.remove(id);
  }

  clear() {
    this.group.clearLayers();
    this.trails.clear();
    this.dirty.clear();
  }

  /** Push the changed trails to their polylines (once per applied message). */
  flush() {
    for (const id of this.dirty) {
      const tr = this.trails.get(id);
      if (!tr) continue;
      const show = tr.visible && tr.pts.length > 1;
      if (!show) {
        if (tr.line && this.group.hasLayer(tr.line)) this.group.removeLayer(tr.line);
        continue;
      }
      if (!tr.line) {
        tr.line = L.polyline(tr.pts, {
          renderer: this.renderer,
          color: tr.colour,
          weight: 1.5,
          opacity: 0.75,
          interactive: false,
          smoothFactor: 1.5,
        });
      } else {
        tr.line.setLatLngs(tr.pts);
      }
      if (!this.group.hasLayer(tr.line)) this.group.addLayer(tr.line);
    }
    this.dirty.clear();
  }

  pointCount() {
    let n = 0;
    for (const tr of this.trails.values()) n += tr.pts.length;
    return n;
  }
}
