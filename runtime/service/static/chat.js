// The chat page's behaviour: one WebSocket per tab to the service's WS /agent/{session_id},
// streamed frames rendered as they come (protocol: runtime/service/app.py).
//
// Rules this file keeps, and why:
// * Model output is text, never markup: every string reaches the page through textContent
//   (no innerHTML anywhere), so an answer containing <img onerror=...> stays harmless text.
// * No inline handlers, no eval, no inline style: the page runs under CSP default-src 'self'.
// * The token is typed by the user and kept in sessionStorage only: it ends with the tab, is not
//   shared with other tabs, and is never part of a URL (it would land in access logs).
"use strict";

(() => {
  const STORAGE = {
    token: "agent-chat.token",
    wsUrl: "agent-chat.ws-url",
    sessionId: "agent-chat.session-id",
  };
  // What the service's close codes mean (runtime/service/app.py); the browser reports 1006 for
  // a connection that dropped without a close frame.
  const CLOSE_REASONS = {
    1000: "closed",
    1001: "the service is shutting down; reconnect",
    1006: "the connection was lost",
    1008: "refused by the service (invalid session id)",
    1009: "the message was too large",
    1011: "the service failed",
    1013: "the service is at capacity; retry in a few seconds",
  };

  const byId = (id) => document.getElementById(id);
  const ui = {
    sessionId: byId("session-id"),
    newSession: byId("new-session"),
    status: byId("status"),
    connection: byId("connection"),
    wsUrl: byId("ws-url"),
    token: byId("token"),
    connect: byId("connect"),
    transcript: byId("transcript"),
    composer: byId("composer"),
    message: byId("message"),
    send: byId("send"),
  };

  let sessionId = "";
  let socket = null; // the current WebSocket; events of replaced ones are ignored
  let pending = null; // a message sent before the socket was open: sent once it opens
  let stepRunning = false;

  // --- the session id and the WebSocket URL ----------------------------------------------------

  function randomId() {
    // randomUUID only exists in secure contexts (https, localhost); a plain-http dev host still
    // gets a version 4 UUID from getRandomValues.
    if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  function setSessionId(id) {
    sessionId = id;
    sessionStorage.setItem(STORAGE.sessionId, id);
    ui.sessionId.textContent = id;
  }

  function defaultWsUrl() {
    // The page's own server: the service serves this page at /ui/ and the socket at /agent/.
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/agent/`;
  }

  // The socket's URL for this session. The field holds the endpoint's base: "wss://host" or
  // "https://host" (the page adds /agent/), or a full "wss://host/prefix/agent/".
  function socketUrl(base) {
    const url = new URL(base, location.href);
    if (url.protocol === "https:") url.protocol = "wss:";
    if (url.protocol === "http:") url.protocol = "ws:";
    if (url.protocol !== "ws:" && url.protocol !== "wss:") {
      throw new Error("the WebSocket URL must start with wss:// or ws://");
    }
    if (url.pathname === "/") url.pathname = "/agent/";
    if (!url.pathname.endsWith("/")) url.pathname += "/";
    url.search = "";
    url.hash = "";
    return url.href + encodeURIComponent(sessionId);
  }

  // --- rendering: every string through textContent ---------------------------------------------

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // One transcript entry: a label naming what it is (not colour alone) and its parts.
  function addEntry(type, label, ...parts) {
    const item = element("li", `entry entry-${type}`);
    item.dataset.type = type;
    item.append(element("span", "entry-label", label), ...parts);
    ui.transcript.append(item);
    item.scrollIntoView({ block: "nearest" });
    return item;
  }

  const body = (text) => element("p", "entry-body", text);
  const meta = (text) => element("p", "entry-meta", text);

  function renderAction(content) {
    // {"id", "tool", "arguments", "output", "is_error"}: the tool the model called and what it got.
    const action = content && typeof content === "object" ? content : {};
    const item = addEntry(
      "action",
      action.is_error ? "Tool call failed" : "Tool call",
      element("p", "entry-tool", String(action.tool ?? "?")),
      element("p", "entry-caption", "Arguments"),
      element("pre", "entry-arguments", JSON.stringify(action.arguments ?? {}, null, 2)),
      element("p", "entry-caption", "Output"),
      element("pre", "entry-output", String(action.output ?? "")),
    );
    if (action.is_error) item.classList.add("is-error");
  }

  function renderResult(frame) {
    const usage = frame.usage || {};
    addEntry(
      "result",
      "Answer",
      body(String(frame.content ?? "")),
      meta(
        `version ${frame.version} · ${frame.iterations} iteration(s) · stop: ${frame.stop_reason}` +
          ` · tokens: ${usage.input_tokens} in, ${usage.output_tokens} out`,
      ),
    );
  }

  function renderError(frame) {
    let details = `code: ${frame.code ?? "unknown"}`;
    if (frame.retry_after !== undefined) details += ` · retry after ${frame.retry_after} s`;
    addEntry("error", "Error", body(String(frame.content ?? "")), meta(details));
  }

  function onFrame(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      addEntry("error", "Error", body("The service sent a frame that is not JSON."));
      return;
    }
    switch (frame.type) {
      case "thinking":
        addEntry("thinking", "Thinking", body(String(frame.content ?? "")));
        break;
      case "action":
        renderAction(frame.content);
        break;
      case "result": // the step's final answer, and its last frame
        renderResult(frame);
        setStepRunning(false);
        break;
      case "error": // a failed step's last frame, or a refused frame
        renderError(frame);
        setStepRunning(false);
        break;
      default:
        // A newer service may stream more kinds of frames: skip what this page does not know.
        break;
    }
  }

  // --- state shown to the user -----------------------------------------------------------------

  function setStatus(state, text) {
    ui.status.dataset.state = state; // styled per state; the text says the same for everyone
    ui.status.textContent = text;
  }

  function setStepRunning(running) {
    stepRunning = running;
    // One step at a time per connection (the service answers "busy" otherwise).
    ui.send.disabled = running;
    ui.transcript.setAttribute("aria-busy", String(running));
    if (socket && socket.readyState === WebSocket.OPEN) {
      setStatus(running ? "busy" : "connected", running ? "Working…" : "Connected.");
    }
  }

  // --- the connection --------------------------------------------------------------------------

  function connect() {
    disconnect();
    const token = ui.token.value.trim();
    sessionStorage.setItem(STORAGE.wsUrl, ui.wsUrl.value.trim());
    if (token) sessionStorage.setItem(STORAGE.token, token);
    else sessionStorage.removeItem(STORAGE.token);

    let url;
    let ws;
    try {
      url = socketUrl(ui.wsUrl.value.trim());
      // Browsers cannot put an Authorization header on a WebSocket, so the token travels as the
      // second of the subprotocols ["bearer", token] (runtime/service/auth.py). Without a token:
      // a local service that runs without auth.
      ws = token ? new WebSocket(url, ["bearer", token]) : new WebSocket(url);
    } catch (error) {
      // A malformed URL, or a token with characters a subprotocol cannot carry.
      pending = null;
      setStatus("error", `Cannot connect: ${error.message}`);
      addEntry("error", "Connection failed", body(`Cannot connect: ${error.message}`));
      return;
    }
    socket = ws;
    ui.connect.textContent = "Reconnect";
    let opened = false;
    setStatus("connecting", `Connecting to ${url}…`);

    ws.addEventListener("open", () => {
      if (ws !== socket) return;
      opened = true;
      setStatus("connected", "Connected.");
      if (pending !== null) {
        const text = pending;
        pending = null;
        sendMessage(text);
      }
    });
    ws.addEventListener("message", (event) => {
      if (ws === socket) onFrame(event.data);
    });
    // "error" carries no detail and is always followed by "close", which is handled here.
    ws.addEventListener("close", (event) => {
      if (ws !== socket) return;
      socket = null;
      onClosed(event, opened);
    });
  }

  function disconnect() {
    if (socket) {
      const old = socket;
      socket = null; // its close event is ignored from now on
      old.close(1000);
    }
    pending = null;
    setStepRunning(false);
  }

  function onClosed(event, opened) {
    const interrupted = stepRunning;
    pending = null;
    setStepRunning(false);
    const reason = CLOSE_REASONS[event.code] || event.reason || "closed";
    if (!opened) {
      // The browser does not say why a handshake failed: a wrong token (HTTP 403) looks exactly
      // like an unreachable service.
      const text = `Could not connect (code ${event.code}). Check the token and the WebSocket URL.`;
      setStatus("error", "Not connected: the connection failed.");
      addEntry("error", "Connection failed", body(text));
      return;
    }
    if (interrupted) {
      addEntry(
        "error",
        "Connection lost",
        body(`The connection closed during the step (${reason}). It may still finish and be ` +
          "saved: reconnect to go on with this session."),
      );
    }
    setStatus(event.code === 1000 ? "disconnected" : "error", `Disconnected: ${reason}.`);
  }

  function sendMessage(text) {
    socket.send(JSON.stringify({ message: text }));
    addEntry("user", "You", body(text));
    if (ui.message.value === text) ui.message.value = "";
    setStepRunning(true);
  }

  // --- events (bound here, never inline) -------------------------------------------------------

  ui.connection.addEventListener("submit", (event) => {
    event.preventDefault();
    connect();
  });

  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.message.value;
    if (!text.trim() || stepRunning) return;
    if (socket && socket.readyState === WebSocket.OPEN) {
      sendMessage(text);
      return;
    }
    // Not connected yet: connect with what the fields say; the message goes once the socket
    // opens (and is dropped, still in the box, if it never does).
    if (!(socket && socket.readyState === WebSocket.CONNECTING)) connect();
    if (socket) pending = text;
  });

  ui.message.addEventListener("keydown", (event) => {
    // Enter sends; Shift+Enter is a new line; Enter that ends an IME composition is not a send.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.composer.requestSubmit();
    }
  });

  ui.newSession.addEventListener("click", () => {
    const wasConnected = socket !== null;
    disconnect();
    ui.transcript.replaceChildren();
    setSessionId(randomId());
    if (wasConnected) connect();
    else setStatus("disconnected", "Not connected.");
  });

  // --- start -----------------------------------------------------------------------------------

  // One session per tab: sessionStorage survives a reload of the tab, not a new tab.
  setSessionId(sessionStorage.getItem(STORAGE.sessionId) || randomId());
  const fromQuery = new URLSearchParams(location.search).get("ws");
  ui.wsUrl.value = fromQuery || sessionStorage.getItem(STORAGE.wsUrl) || defaultWsUrl();
  ui.token.value = sessionStorage.getItem(STORAGE.token) || "";
  ui.message.focus();
})();
