// One WebSocket to /api/v1/ws for the page: subscriptions by name, kept across reconnects.
import { accessToken, loggedIn, onSession, refresh } from "./api.js";

const subscriptions = new Map(); // id -> {message, handler}
let socket = null;
let retry = 0;
let retryTimer = null;
let counter = 0;
const statusListeners = new Set();
const unconfirmed = new Set(); // subscriptions sent, not yet answered "subscribed"
let connected = false;

// Live: the socket is open and every subscription confirmed (what <html data-live> shows).
function setConnected(value) {
  connected = value && !unconfirmed.size;
  document.documentElement.dataset.live = connected ? "on" : "off";
  for (const listener of statusListeners) listener(connected);
}

function sendSubscribe(ws, id, message) {
  unconfirmed.add(id);
  setConnected(false);
  ws.send(JSON.stringify({ type: "subscribe", id, ...message }));
}

/** Called with true or false as the socket connects and drops. */
export function onLiveStatus(listener) {
  statusListeners.add(listener);
  listener(connected);
  return () => statusListeners.delete(listener);
}

function url() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/api/v1/ws`;
}

function connect() {
  clearTimeout(retryTimer);
  if (socket || !loggedIn() || !subscriptions.size) return;
  const ws = new WebSocket(url());
  socket = ws;
  ws.addEventListener("open", () => {
    // The token goes in the first message, not the URL, so no access log holds it.
    ws.send(JSON.stringify({ type: "auth", token: accessToken() }));
    unconfirmed.clear();
    for (const [id, { message }] of subscriptions) sendSubscribe(ws, id, message);
  });
  ws.addEventListener("message", (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === "subscribed") {
      retry = 0;
      unconfirmed.delete(message.id);
      setConnected(true);
      return;
    }
    const sub = subscriptions.get(message.subscription);
    if (sub) sub.handler(message);
  });
  ws.addEventListener("close", async (event) => {
    if (socket === ws) socket = null;
    setConnected(false);
    if (!loggedIn() || !subscriptions.size) return;
    if (event.code === 4401) {
      // The access token expired or was revoked: a fresh one, then again.
      try {
        await refresh();
      } catch {
        return;
      }
    }
    retry = Math.min(retry + 1, 6);
    retryTimer = setTimeout(connect, 500 * 2 ** (retry - 1));
  });
}

/** Subscribe to a topic ({topic, device_id?, site_id?, keys?}); returns the unsubscriber. */
export function subscribe(message, handler) {
  const id = `s${++counter}`;
  subscriptions.set(id, { message, handler });
  if (socket && socket.readyState === WebSocket.OPEN) {
    sendSubscribe(socket, id, message);
  } else {
    connect();
  }
  return () => {
    subscriptions.delete(id);
    unconfirmed.delete(id);
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "unsubscribe", id }));
    }
    if (!subscriptions.size && socket) {
      socket.close(1000);
      socket = null;
    }
  };
}

onSession((what) => {
  if (what === "refresh") return; // the open socket keeps working; a 4401 reconnects it
  if (socket) socket.close(1000);
  socket = null;
  if (what === "login") connect();
});

export function unsubscribeAll() {
  subscriptions.clear();
  unconfirmed.clear();
  if (socket) socket.close(1000);
  socket = null;
}
