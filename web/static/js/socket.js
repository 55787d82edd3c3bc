// The WebSocket: one connection at a time, reconnects with exponential backoff
// and jitter, sends `ping` every heartbeat interval and drops a socket that
// has gone silent (a half-open connection never fires `close` by itself).

const MAX_DELAY = 30_000;
const BASE_DELAY = 1_000;
const CONNECT_TIMEOUT = 15_000;

export class Socket {
  /**
   * @param {() => string} url  builds the URL (with ?token=) for each attempt
   * @param {{onFrame(f), onState(state, info), onClose(code, wasReady)}} handlers
   */
  constructor(url, handlers) {
    this.url = url;
    this.h = handlers;
    this.ws = null;
    this.ready = false;
    this.stopped = true;
    this.attempt = 0;
    this.retryTimer = 0;
    this.beat = 0;
    this.lastRx = 0;
    this.retryAt = 0;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.stopHeartbeat();
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    if (ws) { ws.onclose = ws.onmessage = ws.onerror = null; try { ws.close(1000, 'bye'); } catch { /* closing */ } }
  }

  /** Connect now if we are waiting to retry (network came back, user asked). */
  reconnectNow() {
    if (this.stopped || this.ws) return;
    this.attempt = Math.max(0, this.attempt - 1);
    this.connect();
  }

  send(frame) {
    if (!this.ready || !this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  connect() {
    clearTimeout(this.retryTimer);
    if (this.stopped || this.ws) return;
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.closed(1006);
      return;
    }
    this.ws = ws;
    this.ready = false;
    this.lastRx = Date.now();
    this.h.onState('connecting');
    // A handshake that hangs (or a server that never says `ready`) is a failure too.
    clearTimeout(this.connectTimer);
    this.connectTimer = setTimeout(() => { if (this.ws === ws && !this.ready) this.closed(1006); }, CONNECT_TIMEOUT);
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.lastRx = Date.now();
      let f;
      try { f = JSON.parse(ev.data); } catch { return; }
      if (!f || typeof f.type !== 'string') return;
      if (f.type === 'ready') {
        this.ready = true;
        this.attempt = 0;
        this.startHeartbeat(f.heartbeat_interval);
        this.h.onState('open');
      }
      if (f.type === 'pong') return;
      this.h.onFrame(f);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.closed(ev.code);
    };
    ws.onerror = () => { /* a close event follows */ };
  }

  /** Forget the socket and schedule the next attempt. */
  closed(code) {
    const wasReady = this.ready;
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    this.stopHeartbeat();
    if (ws) { ws.onclose = ws.onmessage = ws.onerror = null; try { ws.close(); } catch { /* already closed */ } }
    this.h.onClose(code, wasReady);
    if (this.stopped || code === 4440) return;
    const base = Math.min(MAX_DELAY, BASE_DELAY * 2 ** this.attempt);
    this.attempt++;
    const delay = Math.round(base / 2 + Math.random() * (base / 2)); // "equal jitter"
    this.retryAt = Date.now() + delay;
    this.h.onState('waiting', { retryAt: this.retryAt, attempt: this.attempt, code });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  startHeartbeat(interval) {
    this.stopHeartbeat();
    // Ping at half the server's interval: a timer that fires late (background
    // tabs are throttled) still beats the server's two-interval limit.
    const every = Math.max(500, (Number(interval) || 30_000) / 2);
    this.beat = setInterval(() => {
      if (!this.ws) return;
      if (Date.now() - this.lastRx > 3 * every + 5000) {
        this.closed(1006); // silent for too long: assume the connection is dead
        return;
      }
      this.send({ type: 'ping' });
    }, every);
  }

  stopHeartbeat() {
    clearInterval(this.beat);
    this.beat = 0;
  }
}
