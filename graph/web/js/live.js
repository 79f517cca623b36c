// A small graphql-transport-ws client: one websocket, its subscriptions re-sent after every
// reconnection, and reconnection with backoff (1, 2, 4, 8, 16, then every 30 s).

const PROTOCOL = "graphql-transport-ws";
const MAX_DELAY_MS = 30_000;
// Close codes after which the server wants no retry with the same token.
const FORBIDDEN = 4403;
const TRY_AGAIN_LATER = 1013;
const RESTARTING = 1012;

export function backoffDelay(attempt) {
  return Math.min(1000 * 2 ** attempt, MAX_DELAY_MS);
}

// The API's websocket on the page's own host: the page's policy allows no other.
export function socketUrl(location = window.location) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/graphql`;
}

export class LiveConnection {
  // `onStatus(status)` hears "connecting", "live" and "down"; `onForbidden(reason)` that the
  // token was refused (the connection then stays closed).
  constructor({ url, token, onStatus = () => {}, onForbidden = () => {} }) {
    this.url = url;
    this.token = token;
    this.onStatus = onStatus;
    this.onForbidden = onForbidden;
    this.subscriptions = new Map();
    this.nextId = 1;
    this.attempt = 0;
    this.socket = null;
    this.timer = null;
    this.closed = false;
    this.acknowledged = false;
  }

  start() {
    this.closed = false;
    this.connect();
  }

  // Reconnect now (the browser came back online), not at the end of the current wait.
  retryNow() {
    if (this.closed || this.socket) return;
    clearTimeout(this.timer);
    this.attempt = 0;
    this.connect();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close(1000, "Normal closure");
  }

  // Kept until unsubscribe(id), and sent again after every reconnection; its id.
  subscribe(query, variables, handlers) {
    const id = String(this.nextId++);
    this.subscriptions.set(id, { query, variables, handlers });
    if (this.acknowledged) this.sendSubscribe(id);
    return id;
  }

  // A push already on its way for it is dropped: receive() knows the id no more.
  unsubscribe(id) {
    if (!this.subscriptions.delete(id)) return;
    if (this.acknowledged) this.send({ id, type: "complete" });
  }

  connect() {
    this.acknowledged = false;
    this.onStatus("connecting");
    const socket = new WebSocket(this.url, PROTOCOL);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.send({ type: "connection_init", payload: { authorization: `Bearer ${this.token}` } });
    });
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", (event) => this.closedBy(socket, event));
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  sendSubscribe(id) {
    const { query, variables } = this.subscriptions.get(id);
    this.send({ id, type: "subscribe", payload: { query, variables } });
  }

  receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    const subscription = this.subscriptions.get(message.id);
    switch (message.type) {
      case "connection_ack":
        this.acknowledged = true;
        this.attempt = 0;
        this.onStatus("live");
        for (const id of this.subscriptions.keys()) this.sendSubscribe(id);
        break;
      case "ping":
        this.send({ type: "pong" });
        break;
      case "next":
        subscription?.handlers.next(message.payload);
        break;
      case "error":
        subscription?.handlers.error(message.payload);
        this.subscriptions.delete(message.id);
        break;
      case "complete":
        this.subscriptions.delete(message.id);
        break;
      default:
        break;
    }
  }

  closedBy(socket, event) {
    if (socket !== this.socket) return; // an earlier socket, already replaced or closed
    this.socket = null;
    this.acknowledged = false;
    if (this.closed) return;
    if (event.code === FORBIDDEN) {
      this.closed = true;
      this.onStatus("down");
      this.onForbidden(event.reason);
      return;
    }
    this.onStatus("down");
    let delay = backoffDelay(this.attempt);
    if (event.code === RESTARTING) delay = 0; // another process answers at once
    if (event.code === TRY_AGAIN_LATER) {
      const asked = /Retry in (\d+) s/.exec(event.reason ?? "");
      if (asked) delay = Math.max(delay, Number(asked[1]) * 1000);
    }
    this.attempt += 1;
    // A little jitter, so that a restarted server is not met by every client at once.
    this.timer = setTimeout(() => this.connect(), delay + Math.random() * 300);
  }
}
