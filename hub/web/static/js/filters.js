// Track filters: state, persistence (localStorage) and the predicate.
//
// The controls are four <select> elements (#filter-class, #filter-affiliation, #filter-nation,
// #filter-status) whose value "" means "all"; #filter-nation also has NO_NATION for tracks
// with no released nation, and #filter-status has "stale" and "current" (not stale) besides
// the track statuses.

export const STORAGE_KEY = "hubConsole.filters.v1";
export const NO_NATION = "__none__";
export const FIELDS = ["cls", "affiliation", "nation", "status"];
export const CONTROL_IDS = {
  cls: "filter-class",
  affiliation: "filter-affiliation",
  nation: "filter-nation",
  status: "filter-status",
};

export function emptyFilters() {
  return { cls: "", affiliation: "", nation: "", status: "" };
}

export function loadFilters(storage = window.localStorage) {
  const f = emptyFilters();
  try {
    const saved = JSON.parse(storage.getItem(STORAGE_KEY) || "{}");
    for (const k of FIELDS) if (typeof saved[k] === "string") f[k] = saved[k];
  } catch (_err) {
    // unreadable or blocked storage: start unfiltered
  }
  return f;
}

export function saveFilters(f, storage = window.localStorage) {
  try {
    storage.setItem(STORAGE_KEY, JSON.stringify(f));
  } catch (_err) {
    // storage full or blocked: filters then last for this page only
  }
}

export function isActive(f) {
  return FIELDS.some((k) => f[k] !== "");
}

/** Whether a track (its properties and whether it is shown stale) passes the filters. */
export function matches(f, props, stale) {
  if (f.cls && props.cls !== f.cls) return false;
  if (f.affiliation && props.affiliation !== f.affiliation) return false;
  if (f.nation) {
    const nations = Array.isArray(props.nations) ? props.nations : [];
    if (f.nation === NO_NATION ? nations.length > 0 : !nations.includes(f.nation)) return false;
  }
  if (f.status) {
    if (f.status === "stale") return stale;
    if (f.status === "current") return !stale;
    if (props.status !== f.status) return false;
  }
  return true;
}
