// The operators' console: a page over the dialer's public REST API, with the same API keys.
// No build step and no third-party code; every value from the API goes into the page as text
// (textContent), never as markup: transcripts hold whatever a caller said.

const KEY_STORAGE = "voicebot.console.key";
const REFRESH_MS = 2000;

let apiKey = sessionStorage.getItem(KEY_STORAGE) || "";
let stopView = () => {};  // what the current view must stop (timers, streams) when the route changes

// ------------------------------------------------------------------ helpers
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message || "";
  box.hidden = !message;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${apiKey}`, ...(options.body ? { "Content-Type": "application/json" } : {}) },
  });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch { /* not JSON */ }
    if (typeof detail !== "string") detail = JSON.stringify(detail);
    throw new ApiError(response.status, `${response.status}: ${detail}`);
  }
  const type = response.headers.get("content-type") || "";
  return type.includes("application/json") ? response.json() : response;
}

const time = (unix) => (unix ? new Date(unix * 1000).toLocaleString() : "");
const clock = (unix) => (unix ? new Date(unix * 1000).toLocaleTimeString() : "");
function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function every(ms, fn) {
  let stopped = false;
  let timer;
  const tick = async () => {
    try { await fn(); showError(""); } catch (err) { showError(err.message); }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

function table(columns, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", {}, c)))),
    h("tbody", {}, rows));
}

// Server-sent events over fetch (EventSource cannot send the Authorization header).
function follow(path, onEvent) {
  const controller = new AbortController();
  (async () => {
    const response = await fetch(path, { headers: { Authorization: `Bearer ${apiKey}` }, signal: controller.signal });
    if (!response.ok) throw new ApiError(response.status, `${response.status}: live updates unavailable`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
        }
        if (data.length || name === "end") onEvent(name, data.length ? JSON.parse(data.join("\n")) : null);
      }
    }
  })().catch((err) => { if (err.name !== "AbortError") showError(err.message); });
  return () => controller.abort();
}

// ------------------------------------------------------------------ views
function callRow(call) {
  return h("tr", { "data-call-sid": call.call_sid },
    h("td", {}, h("a", { href: `#/calls/${call.call_sid}` }, call.call_sid)),
    h("td", {}, call.direction),
    h("td", { class: "number" }, call.from),
    h("td", { class: "number" }, call.to),
    h("td", {}, call.agent_profile),
    h("td", {}, call.worker_id),
    h("td", { class: "duration" }, duration(call.duration_s)),
    h("td", { class: "state" }, call.live ? call.status || "live" : call.outcome || call.status),
    h("td", {}, time(call.created_at)));
}

const CALL_COLUMNS = ["call", "direction", "from", "to", "agent profile", "worker", "duration", "state", "started"];

function liveView(view) {
  const body = h("div");
  view.append(h("h1", {}, "Live calls"), body);
  return every(REFRESH_MS, async () => {
    const page = await api("/v1/call-records?live=true&limit=200");
    body.replaceChildren(page.items.length
      ? table(CALL_COLUMNS, page.items.map(callRow), { id: "live-calls" })
      : h("p", { class: "muted", id: "live-calls-empty" }, "No call is live."));
  });
}

function historyView(view, params) {
  const fields = [["number", "number (E.164)"], ["dial_job_id", "dial job id"], ["campaign_id", "campaign id"],
    ["outcome", "outcome"]];
  const form = h("form", { id: "history-search", class: "search" },
    fields.map(([name, label]) => h("label", {}, label, h("input", { name, value: params.get(name) || "" }))),
    h("label", {}, "direction", h("select", { name: "direction" },
      ["", "inbound", "outbound"].map((d) => h("option", { value: d, selected: params.get("direction") === d }, d || "any")))),
    h("label", {}, "from date", h("input", { type: "date", name: "since", value: params.get("since") || "" })),
    h("label", {}, "to date", h("input", { type: "date", name: "until", value: params.get("until") || "" })),
    h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    for (const [name, value] of new FormData(form)) if (value) query.set(name, value);
    location.hash = `#/history?${query}`;
  });
  const results = h("div");
  view.append(h("h1", {}, "Call history"), form, results);

  const query = new URLSearchParams({ live: "false", limit: "50" });
  for (const [name, value] of params) {
    if (name === "since") query.set("since", String(Date.parse(value) / 1000));
    else if (name === "until") query.set("until", String(Date.parse(value) / 1000 + 86400));
    else query.set(name, value);
  }
  const rows = h("tbody");
  const more = h("button", { type: "button", id: "history-more", hidden: true }, "More");
  results.append(h("table", { id: "call-history" },
    h("thead", {}, h("tr", {}, CALL_COLUMNS.map((c) => h("th", {}, c)))), rows), more);
  const load = async (cursor) => {
    query.set("cursor", String(cursor));
    const page = await api(`/v1/call-records?${query}`);
    rows.append(...page.items.map(callRow));
    more.hidden = page.next_cursor === null;
    more.onclick = () => load(page.next_cursor).catch((err) => showError(err.message));
    if (!rows.children.length) results.replaceChildren(h("p", { class: "muted" }, "No call matches."));
  };
  load(0).catch((err) => showError(err.message));
  return () => {};
}

function transcriptLine(entry) {
  const heardAll = entry.role !== "assistant" || !entry.interrupted;
  const said = entry.text || "";
  const heard = entry.heard ?? said;
  const text = heardAll
    ? h("span", { class: "heard" }, said)
    : [h("span", { class: "heard" }, heard),
      h("span", { class: "unheard", title: "cut off: the caller did not hear this" },
        said.startsWith(heard) ? said.slice(heard.length) : ` [said: ${said}]`)];
  return h("li", { class: `turn ${entry.role}`, "data-role": entry.role },
    h("span", { class: "who" }, entry.role === "user" ? "caller" : "agent"),
    h("span", { class: "at" }, clock(entry.at)),
    h("span", { class: "text" }, text),
    entry.latency_ms !== undefined ? h("span", { class: "latency" }, `${entry.latency_ms} ms`) : null,
    entry.interrupted ? h("span", { class: "badge" }, "interrupted") : null);
}

function callView(view, sid) {
  const summary = h("dl", { id: "call-summary", class: "summary" });
  const transcript = h("ol", { id: "transcript" });
  const events = h("ol", { id: "call-events", class: "events" });
  const hangup = h("button", { id: "hang-up", type: "button", class: "danger", hidden: true }, "Hang up");
  const recording = h("div", { id: "recording" });
  view.append(h("h1", {}, "Call ", h("code", {}, sid)), h("div", { class: "actions" }, hangup), summary,
    h("h2", {}, "Transcript"), transcript, h("h2", {}, "Recording"), recording, h("h2", {}, "Events"), events);

  let objectUrl = "";
  let recordingLoad = null;  // the record's last update and the stream's end both ask for it: fetch once
  const showRecord = (call) => {
    const items = [["direction", call.direction], ["from", call.from], ["to", call.to],
      ["agent profile", call.agent_profile], ["worker", call.worker_id], ["status", call.status],
      ["state", call.live ? "live" : "ended"], ["outcome", call.outcome], ["end reason", call.end_reason],
      ["dial job", call.dial_job_id], ["campaign", call.campaign_id], ["started", time(call.created_at)],
      ["duration", duration(call.duration_s)]];
    summary.replaceChildren(...items.filter(([, v]) => v).flatMap(([k, v]) => [
      h("dt", {}, k),
      h("dd", { "data-field": k }, k === "dial job" ? h("a", { href: `#/jobs/${v}` }, v) : v)]));
    hangup.hidden = !call.live;
  };
  const showTranscript = (entries) => {
    transcript.replaceChildren(...entries.map(transcriptLine));
    if (!entries.length) transcript.append(h("li", { class: "muted" }, "Nothing said yet."));
  };
  const loadRecording = (call) => {
    if (!call.recording_url || recordingLoad) return recordingLoad;
    recordingLoad = (async () => {
      const response = await api(call.recording_url);
      objectUrl = URL.createObjectURL(await response.blob());
      recording.replaceChildren(h("audio", { controls: true, src: objectUrl, preload: "auto" }),
        h("p", { class: "muted" }, "Stereo: the caller on the left, the agent on the right."));
    })();
    recordingLoad.catch(() => { recordingLoad = null; });  // a later update may try again
    return recordingLoad;
  };
  hangup.addEventListener("click", async () => {
    hangup.disabled = true;
    try { showRecord(await api(`/v1/call-records/${sid}/hangup`, { method: "POST" })); } catch (err) {
      showError(err.message);
    }
    hangup.disabled = false;
  });

  let stopFollow = () => {};
  api(`/v1/call-records/${sid}`).then((call) => {
    showRecord(call);
    showTranscript(call.transcript || []);
    events.replaceChildren(...(call.events || []).map((e) =>
      h("li", {}, h("span", { class: "at" }, clock(e.at)), ` ${e.kind}`)));
    if (!call.live) {
      recording.replaceChildren(h("p", { class: "muted" }, call.recording_url ? "Loading ..." : "No recording."));
      return loadRecording(call);
    }
    recording.replaceChildren(h("p", { class: "muted" }, "Playable once the call has ended."));
    stopFollow = follow(`/v1/call-records/${sid}/live`, (name, data) => {
      if (name === "record") {
        showRecord(data);
        if (!data.live) loadRecording(data)?.catch((err) => showError(err.message));
      } else if (name === "transcript") {
        showTranscript(data.entries);
      } else if (name === "end") {
        api(`/v1/call-records/${sid}`).then((call) => {
          showRecord(call);
          events.replaceChildren(...(call.events || []).map((e) =>
            h("li", {}, h("span", { class: "at" }, clock(e.at)), ` ${e.kind}`)));
          return loadRecording(call);
        }).catch((err) => showError(err.message));
      }
    });
    return null;
  }).catch((err) => showError(err.message));
  return () => { stopFollow(); if (objectUrl) URL.revokeObjectURL(objectUrl); };
}

const STATE_GROUPS = {  // the campaign page's columns: a dial job's state -> where it counts
  queued: ["scheduled", "dispatched", "parked"],
  placing: ["placing", "ringing"],
  live: ["in-progress"],
  done: ["completed"],
  failed: ["failed", "canceled"],
};

function grouped(states) {
  const out = Object.fromEntries(Object.keys(STATE_GROUPS).map((g) => [g, 0]));
  for (const [state, count] of Object.entries(states || {})) {
    const group = Object.keys(STATE_GROUPS).find((g) => STATE_GROUPS[g].includes(state)) || "failed";
    out[group] += count;
  }
  return out;
}

function campaignActions(campaign, refresh) {
  const act = (verb) => h("button", {
    type: "button", class: verb, "data-action": verb,
    onclick: async () => {
      try { await api(`/v1/campaigns/${campaign.id}/${verb}`, { method: "POST" }); } catch (err) {
        showError(err.message);
      }
      refresh();
    },
  }, verb[0].toUpperCase() + verb.slice(1));
  const ended = ["canceled", "completed"].includes(campaign.status);
  return ended ? [] : [campaign.status === "paused" ? act("resume") : act("pause"), act("cancel")];
}

function campaignsView(view) {
  const body = h("div");
  view.append(h("h1", {}, "Campaigns"), body);
  const refresh = async () => {
    const page = await api("/v1/campaigns");
    const groups = Object.keys(STATE_GROUPS);
    body.replaceChildren(page.items.length ? table(
      ["campaign", "status", "progress", ...groups, ""],
      page.items.map((c) => {
        const counts = grouped(c.states);
        return h("tr", { "data-campaign-id": c.id },
          h("td", {}, h("a", { href: `#/campaigns/${c.id}` }, c.name || c.id)),
          h("td", { class: "status" }, c.status),
          h("td", {}, h("progress", { max: c.total || 1, value: c.done }), ` ${c.done} / ${c.total}`),
          groups.map((g) => h("td", { class: `count ${g}` }, counts[g])),
          h("td", {}, campaignActions(c, refresh)));
      }), { id: "campaigns" }) : h("p", { class: "muted" }, "No campaign yet."));
  };
  return every(REFRESH_MS, refresh);
}

function campaignView(view, id) {
  const head = h("div");
  const jobs = h("div");
  view.append(head, h("h2", {}, "Dial jobs"), jobs);
  const refresh = async () => {
    const campaign = await api(`/v1/campaigns/${id}`);
    const counts = grouped(campaign.states);
    head.replaceChildren(h("h1", {}, "Campaign ", campaign.name || id),
      h("p", { class: "status", id: "campaign-status" }, campaign.status),
      h("p", {}, Object.entries(counts).map(([g, n]) => h("span", { class: "pill" }, `${g} ${n}`))),
      h("div", { class: "actions", "data-campaign-id": id }, campaignActions(campaign, refresh)));
    const page = await api(`/v1/calls?campaign_id=${encodeURIComponent(id)}&limit=200`);
    jobs.replaceChildren(table(["dial job", "to", "state", "outcome", "attempt", "call"],
      page.items.map((j) => h("tr", { "data-job-id": j.id },
        h("td", {}, h("a", { href: `#/jobs/${j.id}` }, j.id)), h("td", { class: "number" }, j.to),
        h("td", {}, j.state), h("td", {}, j.outcome), h("td", {}, `${j.attempt} / ${j.max_attempts}`),
        h("td", {}, j.call_sid ? h("a", { href: `#/calls/${j.call_sid}` }, j.call_sid) : ""))),
      { id: "campaign-jobs" }));
  };
  return every(REFRESH_MS * 2, refresh);
}

function jobView(view, id) {
  api(`/v1/calls/${id}`).then((job) => {
    view.append(h("h1", {}, "Dial job ", h("code", {}, id)),
      h("dl", { class: "summary" }, [["to", job.to], ["from", job.from], ["state", job.state],
        ["outcome", job.outcome], ["agent profile", job.agent_profile], ["campaign", job.campaign_id],
        ["created", time(job.created_at)]].filter(([, v]) => v).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      h("h2", {}, "Attempts"),
      table(["attempt", "call", "result"], job.attempts.map((a) => h("tr", {},
        h("td", {}, a.attempt), h("td", {}, a.call_sid ? h("a", { href: `#/calls/${a.call_sid}` }, a.call_sid) : ""),
        h("td", {}, a.result))), { id: "job-attempts" }),
      h("h2", {}, "Events"),
      h("ol", { class: "events", id: "job-events" }, job.events.map((e) =>
        h("li", {}, h("span", { class: "at" }, clock(e.at)), ` ${e.kind}`))));
  }).catch((err) => showError(err.message));
  return () => {};
}

function workersView(view) {
  const body = h("div");
  view.append(h("h1", {}, "Workers"), body);
  return every(REFRESH_MS, async () => {
    const page = await api("/v1/workers");
    body.replaceChildren(page.items.length ? table(
      ["worker", "capacity", "active calls", "free slots", "draining", "last heartbeat", "started"],
      page.items.map((w) => h("tr", { "data-worker-id": w.worker_id },
        h("td", {}, w.worker_id), h("td", {}, w.capacity), h("td", { class: "active" }, w.active_calls),
        h("td", {}, w.free_slots), h("td", {}, w.draining ? "draining" : "no"),
        h("td", {}, clock(w.last_heartbeat_at)), h("td", {}, time(w.started_at)))),
      { id: "workers" }) : h("p", { class: "muted" }, "No worker is registered."));
  });
}

// ------------------------------------------------------------------ routing
const ROUTES = [
  [/^#\/live$/, "live", (view) => liveView(view)],
  [/^#\/history(?:\?(.*))?$/, "history", (view, m) => historyView(view, new URLSearchParams(m[1] || ""))],
  [/^#\/calls\/([A-Za-z0-9]+)$/, "live", (view, m) => callView(view, m[1])],
  [/^#\/campaigns$/, "campaigns", (view) => campaignsView(view)],
  [/^#\/campaigns\/([A-Za-z0-9_-]+)$/, "campaigns", (view, m) => campaignView(view, m[1])],
  [/^#\/jobs\/([A-Za-z0-9_-]+)$/, "campaigns", (view, m) => jobView(view, m[1])],
  [/^#\/workers$/, "workers", (view) => workersView(view)],
];

function route() {
  stopView();
  stopView = () => {};
  showError("");
  const view = document.getElementById("view");
  view.replaceChildren();
  if (!apiKey) {
    view.append(h("p", { class: "muted" }, "Enter a dialer API key to begin."));
    return;
  }
  const hash = location.hash && location.hash !== "#" ? location.hash : "#/live";
  for (const [pattern, nav, render] of ROUTES) {
    const match = hash.match(pattern);
    if (match) {
      for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.nav === nav);
      stopView = render(view, match) || (() => {});
      return;
    }
  }
  view.append(h("p", {}, "No such page."));
}

function start() {
  // `#key=...` (the link `make demo` prints) hands the page a key without sending it to any server.
  const handed = location.hash.match(/^#key=([^&]+)/);
  if (handed) {
    apiKey = decodeURIComponent(handed[1]);
    sessionStorage.setItem(KEY_STORAGE, apiKey);
    history.replaceState(null, "", `${location.pathname}#/live`);
  }
  const input = document.getElementById("api-key");
  input.value = apiKey;
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    apiKey = input.value.trim();
    sessionStorage.setItem(KEY_STORAGE, apiKey);
    route();
  });
  window.addEventListener("hashchange", route);
  route();
}

start();
