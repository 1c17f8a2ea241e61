// Classification markings: the page's overall marking from the tracks' labels (pure functions).

/** Colours of the usual level names; other names are coloured by their rank in `levels`. */
const LEVEL_COLOURS = {
  "UNCLASSIFIED": ["#007a33", "#ffffff"],
  "OFFICIAL": ["#007a33", "#ffffff"],
  "RESTRICTED": ["#502b85", "#ffffff"],
  "CONFIDENTIAL": ["#0033a0", "#ffffff"],
  "SECRET": ["#c8102e", "#ffffff"],
  "TOP SECRET": ["#ff8c00", "#000000"],
};
const RANK_COLOURS = [["#007a33", "#fff"], ["#502b85", "#fff"], ["#0033a0", "#fff"], ["#c8102e", "#fff"], ["#ff8c00", "#000"]];

/** [background, foreground] for a level. Unknown names take the colour of their rank. */
export function levelColours(name, levels) {
  const base = String(name || "").toUpperCase().replace(/\s*\(.*\)$/, "");
  if (LEVEL_COLOURS[base]) return LEVEL_COLOURS[base];
  const idx = levels.indexOf(name);
  if (idx < 0) return RANK_COLOURS[RANK_COLOURS.length - 2]; // unknown marking: the alarming colour
  const r = levels.length <= 1 ? 0 : Math.round((idx / (levels.length - 1)) * (RANK_COLOURS.length - 2));
  return RANK_COLOURS[r];
}

/**
 * The marking of a set of labels: highest classification (by `levels`, lowest first), REL TO =
 * intersection of releasable_to, caveats = union. A missing label or a classification not in
 * `levels` ranks above every known level (fail closed). No labels: the lowest level.
 */
export function combineLabels(labels, levels) {
  let rank = -1;
  let classification = levels[0] || "UNCLASSIFIED";
  let relTo = null;
  const caveats = new Set();
  let count = 0;
  let policy = null;
  for (const label of labels) {
    count++;
    let name, r;
    if (!label || typeof label !== "object") {
      name = "UNMARKED";
      r = levels.length;
    } else {
      name = String(label.classification ?? "UNMARKED");
      r = levels.indexOf(name);
      if (r < 0) r = levels.length;
      if (label.policy && !policy) policy = String(label.policy);
    }
    if (r > rank) { rank = r; classification = name; }
    const rel = label && Array.isArray(label.releasable_to) ? label.releasable_to.map(String) : [];
    if (relTo === null) relTo = new Set(rel);
    else for (const p of relTo) if (!rel.includes(p)) relTo.delete(p);
    if (label && Array.isArray(label.caveats)) for (const c of label.caveats) caveats.add(String(c));
  }
  if (count === 0) rank = 0;
  return {
    count,
    classification,
    rank,
    policy,
    relTo: relTo === null ? null : [...relTo].sort(),
    caveats: [...caveats].sort(),
  };
}

/** Text of a marking, e.g. "RESTRICTED // REL TO gha, ken // UN MISSION". */
export function markingText(m) {
  const parts = [m.classification];
  if (m.relTo !== null && m.relTo !== undefined) {
    parts.push(m.relTo.length ? `REL TO ${m.relTo.join(", ")}` : "REL TO (none)");
  }
  if (m.caveats && m.caveats.length) parts.push(m.caveats.join(" / "));
  return parts.join(" // ");
}

/** Marking of a single track label. */
export function labelMarking(label, levels) {
  return combineLabels([label], levels);
}
