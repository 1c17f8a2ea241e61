// The live link: WebSocket /api/v1/stream (same origin, cookie auth), with
// - sequence checking: a delta whose seq is not last + 1 reconnects with ?resume_from=last;
// - a watchdog: no message for 3 × heartbeat_s (or a connect that hangs) counts as lost;
// - reconnection forever with exponential backoff capped at 5 s, at once on `online` and when
//   the page becomes visible again.
// States: "connecting" (first connection, or a resync after a gap), "up" (hello received),
// "down" (lost; stays "down" while retrying until a hello arrives).

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 5000;
const CONNECT_TIMEOUT_MS = 6000;
const WATCHDOG_PERIOD_MS = 250;
const MAX_GAP_RESUMES = 3; // after that many consecutive gaps, reconnect without resume_from

export class LiveLink {
  /**
   * handlers: onHello(msg), onSnapshot(msg, t0), onDelta(msg, t0), onWithdraw(msg),
   * onStatus(data), onHeartbeat(msg), onState(state), onConnectFailed()
   * (t0 = performance.now() when the frame arrived)
   */
  constructor(handlers) {
    this.h = handlers;
    this.ws = null;
    this.state = "connecting";
    this.lastSeq = -1;
    this.heartbeatS = 2;
    this.attempt = 0;
    this.gapStreak = 0;
    this.gotHello = false;
    this.lastMessageAt = performance.now(); // performance.now() of the last frame
    this.downSince = null; // performance.now() the picture stopped being current
    this.connectStartedAt = 0;
    this.retryTimer = null;
    this.stopped = true;
    this._onOnline = () => this.kick();
    this._onVisible = () => { if (document.visibilityState === "visible") this.kick(); };
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener("online", this._onOnline);
    document.addEventListener("visibilitychange", this._onVisible);
    this.watchdog = setInterval(() => this._watch(), WATCHDOG_PERIOD_MS);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearInterval(this.watchdog);
    clearTimeout(this.retryTimer);
    window.removeEventListener("online", this._onOnline);
    document.removeEventListener("visibilitychange", this._onVisible);
    this._drop();
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let u = `${scheme}//${location.host}/api/v1/stream`;
    if (this.lastSeq >= 0 && this.gapStreak <= MAX_GAP_RESUMES) u += `?resume_from=${this.lastSeq}`;
    return u;
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.stopped) return;
    this._drop();
    this.gotHello = false;
    this.connectStartedAt = performance.now();
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (err) {
      console.warn("stream: cannot open", err);
      this._lost();
      return;
    }
    this.ws = ws;
    ws.onmessage = (e) => { if (ws === this.ws) this._message(e); };
    ws.onclose = () => { if (ws === this.ws) { this.ws = null; this._lost(); } };
    ws.onerror = () => {}; // a close event follows
  }

  /** Retry now (network back, page visible again) unless a connection is open or opening. */
  kick() {
    if (this.stopped || this.state === "up" || this.ws) return;
    this.attempt = 0;
    this.connect();
  }

  _drop() {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(); } catch (_err) { /* already closed */ }
    }
  }

  _setState(s) {
    if (this.state === s) return;
    this.state = s;
    if (s === "down" && this.downSince === null) this.downSince = this.lastMessageAt;
    if (s === "up") this.downSince = null;
    this.h.onState(s);
  }

  _lost() {
    const failedBeforeHello = !this.gotHello;
    this._drop();
    this._setState("down");
    if (this.stopped) return;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt) * (0.8 + 0.4 * Math.random());
    this.attempt++;
    this.retryTimer = setTimeout(() => this.connect(), delay);
    if (failedBeforeHello && this.h.onConnectFailed) this.h.onConnectFailed();
  }

  /** Reconnect at once to resynchronise (sequence gap); not a lost link. */
  _resync() {
    this.gapStreak++;
    this._drop();
    if (this.state !== "down") this._setState("connecting");
    this.connect();
  }

  _watch() {
    if (this.stopped) return;
    const now = performance.now();
    if (this.ws && this.gotHello && now - this.lastMessageAt > 3 * this.heartbeatS * 1000) {
      this._lost();
    } else if (this.ws && !this.gotHello && now - this.connectStartedAt > Math.max(CONNECT_TIMEOUT_MS, 3 * this.heartbeatS * 1000)) {
      this._lost();
    }
  }

  _message(e) {
    const t0 = performance.now();
    this.lastMessageAt = t0;
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch (_err) {
      console.warn("stream: frame is not JSON, ignored");
      return;
    }
    if (!msg || typeof msg !== "object") return;
    switch (msg.type) {
      case "hello":
        this.gotHello = true;
        this.attempt = 0;
        if (Number(msg.heartbeat_s) > 0) this.heartbeatS = Number(msg.heartbeat_s);
        this.h.onHello(msg);
        this._setState("up");
        break;
      case "snapshot": {
        const seq = Number(msg.seq);
        this.lastSeq = Number.isFinite(seq) ? seq : -1;
        this.gapStreak = 0;
        this.h.onSnapshot(msg, t0);
        break;
      }
      case "delta": {
        const seq = Number(msg.seq);
        if (this.lastSeq < 0 || seq !== this.lastSeq + 1) {
          console.warn(`stream: seq ${seq} after ${this.lastSeq}, resynchronising`);
          this._resync();
          return;
        }
        this.lastSeq = seq;
        this.gapStreak = 0;
        this.h.onDelta(msg, t0);
        break;
      }
      case "withdraw":
        this.h.onWithdraw(msg);
        break;
      case "status":
        this.h.onStatus(msg.data);
        break;
      case "heartbeat":
        this.h.onHeartbeat(msg);
        break;
      default:
        break; // unknown types are ignored (forward compatible)
    }
  }
}
