// Geodesy and number formatting: pure functions, no DOM and no Leaflet.

export const EARTH_RADIUS_M = 6371008.8; // IUGG mean radius, for great-circle distances
const WGS84_A = 6378137.0;
const WGS84_F = 1 / 298.257223563;
const WGS84_E2 = WGS84_F * (2 - WGS84_F);

const rad = (d) => (d * Math.PI) / 180;
const deg = (r) => (r * 180) / Math.PI;

/** Great-circle (haversine) distance in metres. */
export function distanceM(lat1, lon1, lat2, lon2) {
  const p1 = rad(lat1), p2 = rad(lat2);
  const dp = p2 - p1, dl = rad(lon2 - lon1);
  const h = Math.sin(dp / 2) ** 2 + Math.cos(p1) * Math.cos(p2) * Math.sin(dl / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** Great-circle initial bearing from point 1 to point 2, degrees true in [0, 360). */
export function initialBearingDeg(lat1, lon1, lat2, lon2) {
  const p1 = rad(lat1), p2 = rad(lat2), dl = rad(lon2 - lon1);
  const y = Math.sin(dl) * Math.cos(p2);
  const x = Math.cos(p1) * Math.sin(p2) - Math.sin(p1) * Math.cos(p2) * Math.cos(dl);
  return (deg(Math.atan2(y, x)) + 360) % 360;
}

/** Points along the great circle from 1 to 2 (n segments), as [lat, lon]; lon kept continuous. */
export function greatCirclePoints(lat1, lon1, lat2, lon2, n = 64) {
  const p1 = rad(lat1), l1 = rad(lon1), p2 = rad(lat2), l2 = rad(lon2);
  const d = distanceM(lat1, lon1, lat2, lon2) / EARTH_RADIUS_M;
  if (d < 1e-9) return [[lat1, lon1], [lat2, lon2]];
  const out = [];
  let prevLon = lon1;
  for (let i = 0; i <= n; i++) {
    const f = i / n;
    const a = Math.sin((1 - f) * d) / Math.sin(d), b = Math.sin(f * d) / Math.sin(d);
    const x = a * Math.cos(p1) * Math.cos(l1) + b * Math.cos(p2) * Math.cos(l2);
    const y = a * Math.cos(p1) * Math.sin(l1) + b * Math.cos(p2) * Math.sin(l2);
    const z = a * Math.sin(p1) + b * Math.sin(p2);
    const lat = deg(Math.atan2(z, Math.hypot(x, y)));
    let lon = deg(Math.atan2(y, x));
    while (lon - prevLon > 180) lon -= 360;
    while (lon - prevLon < -180) lon += 360;
    prevLon = lon;
    out.push([lat, lon]);
  }
  return out;
}

/** Metres per degree of latitude and of longitude at a latitude (WGS 84 ellipsoid). */
export function metresPerDegree(lat) {
  const s = Math.sin(rad(lat));
  const w = 1 - WGS84_E2 * s * s;
  const meridional = (WGS84_A * (1 - WGS84_E2)) / (w * Math.sqrt(w));
  const primeVertical = WGS84_A / Math.sqrt(w);
  return { lat: rad(1) * meridional, lon: rad(1) * primeVertical * Math.cos(rad(lat)) };
}

/**
 * The 1-sigma ellipse of an east/north covariance [ee, en, nn] (m²): eigen-decomposition of
 * [[ee, en], [en, nn]]. Returns semi-axes (m), the major axis angle from east counter-clockwise
 * (radians) and as a bearing from north in [0, 180) degrees; null when the matrix is unusable.
 */
export function covarianceEllipse(cov) {
  if (!Array.isArray(cov) || cov.length < 3) return null;
  const [ee, en, nn] = cov.map(Number);
  if (![ee, en, nn].every(Number.isFinite) || ee < 0 || nn < 0) return null;
  const mean = (ee + nn) / 2;
  const root = Math.hypot((ee - nn) / 2, en);
  const l1 = mean + root;
  const l2 = Math.max(mean - root, 0);
  if (!(l1 > 0)) return null;
  const theta = 0.5 * Math.atan2(2 * en, ee - nn);
  return {
    major: Math.sqrt(l1),
    minor: Math.sqrt(l2),
    theta,
    bearingDeg: (((90 - deg(theta)) % 180) + 180) % 180,
  };
}

/** Ring of [lat, lon] around a point for a covariance ellipse scaled by k sigma. */
export function ellipseRing(lat, lon, cov, k = 1, n = 72) {
  const e = covarianceEllipse(cov);
  if (!e) return null;
  const mpd = metresPerDegree(lat);
  const c = Math.cos(e.theta), s = Math.sin(e.theta);
  const a = k * e.major, b = k * e.minor;
  const ring = [];
  for (let i = 0; i < n; i++) {
    const t = (2 * Math.PI * i) / n;
    const x = a * Math.cos(t), y = b * Math.sin(t);
    const east = x * c - y * s;
    const north = x * s + y * c;
    ring.push([lat + north / mpd.lat, lon + east / mpd.lon]);
  }
  return ring;
}

/** Speed from the properties (speed_mps, else the velocity components). */
export function speedOf(p) {
  if (Number.isFinite(p.speed_mps)) return p.speed_mps;
  if (Number.isFinite(p.vn) && Number.isFinite(p.ve)) return Math.hypot(p.vn, p.ve);
  return NaN;
}

/** Course over ground, degrees clockwise from north (course_deg, else from the velocity). */
export function courseOf(p) {
  if (Number.isFinite(p.course_deg)) return ((p.course_deg % 360) + 360) % 360;
  if (Number.isFinite(p.vn) && Number.isFinite(p.ve)) return (deg(Math.atan2(p.ve, p.vn)) + 360) % 360;
  return NaN;
}

export function wrapLon(lon) {
  return ((((lon + 180) % 360) + 360) % 360) - 180;
}

/** MGRS at 1 m precision from the vendored mgrs library (global `mgrs`); "–" outside its domain. */
export function toMgrs(lat, lon, digits = 5) {
  try {
    if (!(lat > -80 && lat < 84)) return "– (polar)";
    return window.mgrs.forward([wrapLon(lon), lat], digits);
  } catch (_err) {
    return "–";
  }
}

export function formatLatLon(lat, lon, digits = 5) {
  return `${lat.toFixed(digits)}, ${wrapLon(lon).toFixed(digits)}`;
}

export function formatDistance(m) {
  if (!Number.isFinite(m)) return "–";
  if (m < 1000) return `${m.toFixed(m < 10 ? 1 : 0)} m`;
  return `${(m / 1000).toFixed(m < 100000 ? 2 : 1)} km`;
}

export function formatBearing(d) {
  if (!Number.isFinite(d)) return "–";
  let t = d.toFixed(1);
  if (t === "360.0") t = "0.0";
  return `${t.padStart(5, "0")}° T`;
}

export function formatAge(s) {
  if (!Number.isFinite(s)) return "–";
  const t = Math.max(0, Math.floor(s));
  if (t < 60) return `${t} s`;
  if (t < 3600) return `${Math.floor(t / 60)} min ${String(t % 60).padStart(2, "0")} s`;
  if (t < 86400) return `${Math.floor(t / 3600)} h ${String(Math.floor((t % 3600) / 60)).padStart(2, "0")} min`;
  return `${Math.floor(t / 86400)} d ${Math.floor((t % 86400) / 3600)} h`;
}

/** Compact age for the track list: "12s", "2m05s", "1h02m". */
export function formatAgeShort(s) {
  if (!Number.isFinite(s)) return "–";
  const t = Math.max(0, Math.floor(s));
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, "0")}s`;
  if (t < 86400) return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(t / 86400)}d`;
}

export function formatDuration(s) {
  if (!Number.isFinite(s)) return "–";
  const t = Math.max(0, Math.floor(s));
  const d = Math.floor(t / 86400), h = Math.floor((t % 86400) / 3600), m = Math.floor((t % 3600) / 60);
  if (d) return `${d} d ${h} h ${m} min`;
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min ${t % 60} s`;
  return `${t} s`;
}

export function formatUtc(epochS) {
  if (!Number.isFinite(epochS)) return "–";
  return new Date(epochS * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z";
}

/** Time of day (UTC) when within the last day, else the full date and time. */
export function formatUtcShort(epochS, nowS = Date.now() / 1000) {
  if (!Number.isFinite(epochS)) return "–";
  if (Math.abs(nowS - epochS) < 86400) return new Date(epochS * 1000).toISOString().slice(11, 19) + "Z";
  return formatUtc(epochS);
}
