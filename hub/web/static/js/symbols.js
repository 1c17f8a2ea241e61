// MIL-STD-2525C symbols from milsymbol (global `ms`), turned into cached Leaflet icons.
//
// An icon shows the SIDC, the track id (uniqueDesignation) and a course leader (direction) in
// 10° buckets, so it is regenerated only when one of those changes. Stale, selected and
// friend styling are CSS classes on the marker element, not part of the image.
//
// Symbols are drawn by milsymbol to a canvas and shown as PNG data URLs in <img> markers
// (measured with 1,000 tracks in Chromium): an SVG data URL costs the browser a whole SVG
// document per image change, a <canvas> per marker is a compositor resource per frame, and
// inline SVG is repainted with every move. The page's CSP must allow img-src data:.

import { courseOf, speedOf } from "./geo.js";

export const MIN_LEADER_SPEED_MPS = 0.5;
const COURSE_BUCKET_DEG = 10;
const CACHE_LIMIT = 2000; // icons (PNG data URLs, a few kB each), shown or recently shown
const FALLBACK_SIDC = "SUZP-----------";

const cache = new Map(); // key -> L.Icon, in least-recently-used order
let generated = 0;

/**
 * Course bucket (degrees) shown as a leader, or null when the track is (nearly) still.
 * With hysteresis around the bucket shown now (`current`): a course jittering across a bucket
 * edge, or a speed around the threshold, does not make the symbol flip back and forth.
 */
export function courseBucket(props, current = null) {
  const speed = speedOf(props);
  const course = courseOf(props);
  const minSpeed = current === null ? MIN_LEADER_SPEED_MPS : MIN_LEADER_SPEED_MPS * 0.8;
  if (!(speed > minSpeed) || !Number.isFinite(course)) return null;
  if (current !== null) {
    const off = Math.abs(((course - current + 540) % 360) - 180);
    if (off <= COURSE_BUCKET_DEG * 0.75) return current;
  }
  return (Math.round(course / COURSE_BUCKET_DEG) * COURSE_BUCKET_DEG) % 360;
}

export function sidcOf(props) {
  const s = typeof props.sidc === "string" ? props.sidc : "";
  return s.length >= 10 ? s : FALLBACK_SIDC;
}

export function symbolKey(id, sidc, bucket) {
  return `${sidc}|${bucket === null ? "-" : bucket}|${id}`;
}

function build(id, sidc, bucket) {
  const options = {
    size: 22,
    uniqueDesignation: id,
    outlineWidth: 3,
    outlineColor: "rgba(255,255,255,0.9)",
    infoOutlineWidth: 3,
    infoOutlineColor: "rgba(255,255,255,0.9)",
    infoColor: "#111",
    fontfamily: "Arial, Helvetica, sans-serif",
  };
  if (bucket !== null) options.direction = bucket;
  let sym = new window.ms.Symbol(sidc, options);
  if (!sym.isValid()) sym = new window.ms.Symbol(FALLBACK_SIDC, options);
  const size = sym.getSize();
  const anchor = sym.getAnchor();
  const ratio = Math.min(3, Math.max(1, window.devicePixelRatio || 1));
  generated++;
  return window.L.icon({
    iconUrl: sym.asCanvas(ratio).toDataURL("image/png"),
    iconSize: [Math.ceil(size.width), Math.ceil(size.height)],
    iconAnchor: [Math.round(anchor.x), Math.round(anchor.y)],
    className: "",
  });
}

/** The cached icon for a key, built on first use. */
export function symbolIcon(id, sidc, bucket) {
  const key = symbolKey(id, sidc, bucket);
  let icon = cache.get(key);
  if (icon) {
    cache.delete(key);
    cache.set(key, icon);
    return icon;
  }
  icon = build(id, sidc, bucket);
  cache.set(key, icon);
  if (cache.size > CACHE_LIMIT) cache.delete(cache.keys().next().value);
  return icon;
}

export function symbolStats() {
  return { cached: cache.size, generated };
}
