// Offline basemap: Natural Earth country outlines (world-atlas countries-50m TopoJSON, through
// topojson-client), a lat/lon graticule whose spacing follows the zoom, and the hub's own raster
// tiles (/tiles/{z}/{x}/{y}) under the outlines when the hello message says basemap: true.

const L = window.L;
export const COUNTRIES_URL = "/static/vendor/world-atlas-2.0.2/countries-50m.json";
export const TILE_URL = "/tiles/{z}/{x}/{y}";

// Graticule spacings in degrees, finest first; the first one at least ~110 px wide is used.
const STEPS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30];
const LABEL_SPACING_PX = 110;

function decimals(step) {
  const s = String(step);
  return s.includes(".") ? s.split(".")[1].length : 0;
}

function latLabel(lat, d) {
  const v = Math.abs(lat).toFixed(d);
  return Number(v) === 0 ? `${v}°` : `${v}°${lat < 0 ? "S" : "N"}`;
}

function lonLabel(lon, d) {
  const w = ((((lon + 180) % 360) + 360) % 360) - 180;
  const v = Math.abs(w).toFixed(d);
  return Number(v) === 0 || Number(v) === 180 ? `${v}°` : `${v}°${w < 0 ? "W" : "E"}`;
}

const Graticule = L.Layer.extend({
  initialize(renderer) {
    this._lines = L.polyline([], {
      renderer, color: "#5f6f82", weight: 0.7, opacity: 0.55, interactive: false, className: "graticule",
    });
    this._labels = L.layerGroup();
  },
  onAdd(map) {
    this._lines.addTo(map);
    this._labels.addTo(map);
    map.on("moveend", this._redraw, this);
    this._redraw();
  },
  onRemove(map) {
    map.off("moveend", this._redraw, this);
    this._lines.remove();
    this._labels.remove();
  },
  _redraw() {
    const map = this._map;
    if (!map) return;
    const size = map.getSize();
    if (!size.x || !size.y) return;
    const b = map.getBounds();
    const west = b.getWest(), east = b.getEast();
    const degPerPx = (east - west) / size.x;
    const step = STEPS.find((s) => s >= degPerPx * LABEL_SPACING_PX) || STEPS[STEPS.length - 1];
    const d = decimals(step);
    const south = Math.max(b.getSouth(), -85), north = Math.min(b.getNorth(), 85);
    const padLat = (north - south) * 0.1, padLon = (east - west) * 0.1;
    const lines = [];
    const labels = [];
    const k0 = Math.ceil(west / step), k1 = Math.floor(east / step);
    for (let k = k0; k <= k1 && lines.length < 400; k++) {
      const lon = k * step;
      lines.push([[Math.max(south - padLat, -85), lon], [Math.min(north + padLat, 85), lon]]);
      const x = map.latLngToContainerPoint([north, lon]).x;
      if (x > 70 && x < size.x - 70) {
        labels.push(L.marker(map.containerPointToLatLng([x, 4]), {
          pane: "graticuleLabelPane", interactive: false, keyboard: false,
          icon: L.divIcon({ className: "graticule-label lon", html: lonLabel(lon, d), iconSize: [80, 14], iconAnchor: [40, 0] }),
        }));
      }
    }
    const j0 = Math.ceil(south / step), j1 = Math.floor(north / step);
    for (let j = j0; j <= j1 && lines.length < 800; j++) {
      const lat = j * step;
      lines.push([[lat, west - padLon], [lat, east + padLon]]);
      const y = map.latLngToContainerPoint([lat, west]).y;
      if (y > 90 && y < size.y - 40) {
        labels.push(L.marker(map.containerPointToLatLng([4, y]), {
          pane: "graticuleLabelPane", interactive: false, keyboard: false,
          icon: L.divIcon({ className: "graticule-label lat", html: latLabel(lat, d), iconSize: [80, 14], iconAnchor: [0, 7] }),
        }));
      }
    }
    this._lines.setLatLngs(lines);
    this._labels.clearLayers();
    for (const m of labels) this._labels.addLayer(m);
    this.step = step;
  },
});

export class Basemap {
  constructor(map) {
    this.map = map;
    for (const [name, z] of [["outlinePane", 250], ["graticulePane", 260], ["graticuleLabelPane", 390]]) {
      map.createPane(name);
      map.getPane(name).style.zIndex = z;
      map.getPane(name).style.pointerEvents = "none";
    }
    this.countries = L.geoJSON(null, {
      renderer: L.canvas({ pane: "outlinePane", padding: 0.3 }),
      interactive: false,
      style: () => this._countryStyle(),
    }).addTo(map);
    this.graticule = new Graticule(L.canvas({ pane: "graticulePane", padding: 0.1 })).addTo(map);
    this.tiles = null;
    this.loaded = false;
  }

  _countryStyle() {
    return {
      color: "#7d8a99",
      weight: 0.9,
      opacity: 0.9,
      fillColor: "#eeece4",
      fillOpacity: this.tiles && this.map.hasLayer(this.tiles) ? 0 : 1,
    };
  }

  async loadCountries() {
    const res = await fetch(COUNTRIES_URL, { credentials: "same-origin" });
    if (!res.ok) throw new Error(`countries: HTTP ${res.status}`);
    const topo = await res.json();
    const geo = window.topojson.feature(topo, topo.objects.countries);
    this.countries.addData(geo);
    this.loaded = true;
  }

  /** Add the hub's raster tiles under the outlines (outline fill turns transparent). */
  enableTiles(maxNativeZoom, layers) {
    if (this.tiles) return;
    const maxNative = Number.isFinite(maxNativeZoom) ? maxNativeZoom : 18;
    this.tiles = L.tileLayer(TILE_URL, {
      maxNativeZoom: maxNative,
      maxZoom: 19,
      minZoom: 0,
      className: "hub-tiles",
    });
    this.tiles.on("add remove", () => this.countries.setStyle(this._countryStyle()));
    this.tiles.addTo(this.map);
    if (layers) layers.addOverlay(this.tiles, "Basemap tiles");
  }

  overlays() {
    return { "Country outlines": this.countries, "Graticule": this.graticule };
  }
}
