// Server time: the offset of the hub's clock (hello and heartbeat server_time) applied to ours,
// so stale times and ages do not depend on the browser's clock being right.

export class ServerClock {
  constructor() {
    this.offsetS = 0;
    this.synced = false;
  }

  sync(serverTime) {
    const t = Number(serverTime);
    if (!Number.isFinite(t)) return;
    this.offsetS = t - Date.now() / 1000;
    this.synced = true;
  }

  now() {
    return Date.now() / 1000 + this.offsetS;
  }
}
