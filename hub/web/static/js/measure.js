// Distance and bearing tool (#measure-toggle): click two points; shows the great-circle line,
// the distance and the initial bearing (degrees true). A third click starts again; Esc or the
// toggle clears it.

import { distanceM, formatBearing, formatDistance, greatCirclePoints, initialBearingDeg } from "./geo.js";

const L = window.L;

export class MeasureTool {
  constructor({ map, toggle, result }) {
    this.map = map;
    this.toggle = toggle;
    this.result = result;
    this.active = false;
    this.points = [];
    this.layer = L.layerGroup().addTo(map);
    this.line = null;
    this.rubber = null;
    toggle.addEventListener("click", () => this.setActive(!this.active));
    map.on("click", (e) => { if (this.active) this.addPoint(e.latlng); });
    map.on("mousemove", (e) => this._rubberBand(e.latlng));
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.active) {
        this.setActive(false);
        e.stopImmediatePropagation();
      }
    });
  }

  setActive(on) {
    this.active = on;
    this.toggle.setAttribute("aria-pressed", String(on));
    this.toggle.classList.toggle("active", on);
    this.map.getContainer().classList.toggle("measuring", on);
    this.clear();
    if (on) this._show("click the first point");
  }

  clear() {
    this.points = [];
    this.layer.clearLayers();
    this.line = null;
    this.rubber = null;
    this.result.hidden = true;
    this.result.textContent = "";
    this.result.removeAttribute("data-distance-m");
    this.result.removeAttribute("data-bearing-deg");
  }

  addPoint(latlng) {
    if (this.points.length >= 2) this.clear();
    const ll = L.latLng(latlng.lat, latlng.lng);
    this.points.push(ll);
    L.circleMarker(ll, { radius: 4, color: "#000", weight: 1.5, fillColor: "#ffeb3b", fillOpacity: 1, interactive: false, className: "measure-point" })
      .addTo(this.layer);
    if (this.points.length === 1) {
      this._show("click the second point");
      return;
    }
    if (this.rubber) {
      this.layer.removeLayer(this.rubber);
      this.rubber = null;
    }
    const [a, b] = this.points;
    const d = distanceM(a.lat, a.lng, b.lat, b.lng);
    const brg = initialBearingDeg(a.lat, a.lng, b.lat, b.lng);
    this.line = L.polyline(greatCirclePoints(a.lat, a.lng, b.lat, b.lng), {
      color: "#111", weight: 2, dashArray: "6 4", interactive: false, className: "measure-line",
    }).addTo(this.layer);
    const text = `${formatDistance(d)} · ${formatBearing(brg)}`;
    this.line.bindTooltip(text, { permanent: true, direction: "center", className: "measure-tooltip" }).openTooltip();
    this._show(`distance ${formatDistance(d)}, bearing ${formatBearing(brg)}`);
    this.result.dataset.distanceM = d.toFixed(1);
    this.result.dataset.bearingDeg = brg.toFixed(2);
  }

  _rubberBand(latlng) {
    if (!this.active || this.points.length !== 1) return;
    const a = this.points[0];
    const pts = [[a.lat, a.lng], [latlng.lat, latlng.lng]];
    if (!this.rubber) {
      this.rubber = L.polyline(pts, { color: "#111", weight: 1, dashArray: "2 4", interactive: false }).addTo(this.layer);
    } else {
      this.rubber.setLatLngs(pts);
    }
    const d = distanceM(a.lat, a.lng, latlng.lat, latlng.lng);
    const brg = initialBearingDeg(a.lat, a.lng, latlng.lat, latlng.lng);
    this._show(`${formatDistance(d)}, ${formatBearing(brg)} (click the second point)`);
  }

  _show(text) {
    this.result.textContent = text;
    this.result.hidden = false;
  }
}
