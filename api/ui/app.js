// runlog's dashboard: plain JavaScript over the /v1 API with the API key the
// person signs in with, kept for this tab only (sessionStorage). Every page
// shows what the key's tenant and scopes allow: the server decides, the page
// shows its answer, errors included. Nothing from the server is inserted as
// HTML: text goes in with textContent.

const main = document.getElementById("main");
let liveStream = null; // the AbortController of the open event stream
let routeGeneration = 0; // which route() a page's stream belongs to

// ---- small helpers -------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const key = () => sessionStorage.getItem("runlog.key");

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code || String(status);
  }
}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${key()}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

function toast(text) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), 4000);
}

const status = (s) => h("span", { class: `status ${s}`, "data-status": s }, s ?? "-");
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "-");
const ms = (v) => (v === null || v === undefined ? "-" : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v} ms`);
const json = (v) => h("pre", { class: "mono" }, JSON.stringify(v, null, 2));
const folded = (summary, value) => h("details", {}, h("summary", {}, summary), json(value));

function table(headers, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.length ? rows : [h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, "Nothing here."))]));
}

function showError(e) {
  const code = e.code || "ERROR"; // a fault of this page's own, not an answer
  return h("p", { class: "error", "data-code": code }, `${code}: ${e.message}`);
}

async function page(title, build) {
  main.replaceChildren(h("h1", {}, title), h("p", { class: "muted" }, "Loading…"));
  try {
    const content = await build();
    main.replaceChildren(h("h1", {}, title), ...[content].flat());
  } catch (e) {
    main.replaceChildren(h("h1", {}, title), showError(e));
  }
}

// ---- the event stream (SSE over fetch, so it can carry the key) ----------

// Streams `path` to onEvent until the page changes. The promise resolves
// when the stream is open (true) or could not be opened (false); events
// appended after that moment all arrive. A page that was left while it was
// still loading opens nothing.
function stream(path, generation, onEvent) {
  if (generation !== routeGeneration) return Promise.resolve(false);
  stopStream();
  const controller = new AbortController();
  liveStream = controller;
  let opened;
  const open = new Promise((ok) => (opened = ok));
  (async () => {
    try {
      const res = await fetch(path, {
        headers: { Authorization: `Bearer ${key()}`, Accept: "text/event-stream" },
        signal: controller.signal,
      });
      opened(res.ok && !!res.body);
      if (!res.ok || !res.body) return;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = frame.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
          if (data) {
            try { onEvent(JSON.parse(data)); } catch { /* a frame that is not JSON: ignore */ }
          }
        }
      }
    } catch {
      /* aborted, or the server went away: the page still works without live updates */
    } finally {
      opened(false);
    }
  })();
  return open;
}

function stopStream() {
  if (liveStream) liveStream.abort();
  liveStream = null;
}

// ---- pages ---------------------------------------------------------------

function signIn() {
  document.getElementById("nav").hidden = true;
  const input = h("input", { type: "password", id: "api-key", autocomplete: "off", placeholder: "rl_live_…" });
  const message = h("p", { class: "error" });
  const form = h("form", { class: "signin", onsubmit: async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("runlog.key", input.value.trim());
    try {
      await api("GET", "/v1/tasks?limit=1");
      go("#/tasks");
    } catch (e) {
      sessionStorage.removeItem("runlog.key");
      message.textContent = `${e.code}: ${e.message}`;
    }
  } },
  h("h1", {}, "Sign in"),
  h("label", { for: "api-key" }, "API key"), input,
  h("button", { class: "primary", type: "submit", id: "sign-in" }, "Sign in"),
  h("p", { class: "muted" }, "The key stays in this tab only and is sent to this server alone."),
  message);
  main.replaceChildren(form);
}

async function tasksPage(params) {
  const filters = { status: params.get("status") || "", type: params.get("type") || "",
                    agent: params.get("agent") || "", since: params.get("since") || "" };
  const setFilter = (name) => (ev) => {
    const p = new URLSearchParams(params);
    if (ev.target.value) p.set(name, ev.target.value); else p.delete(name);
    location.hash = `#/tasks?${p}`;
  };
  const statusSelect = h("select", { id: "filter-status", onchange: setFilter("status") },
    ["", "created", "queued", "running", "succeeded", "failed", "cancelled"].map((s) =>
      h("option", { value: s, selected: s === filters.status }, s || "any status")));
  const sinceSelect = h("select", { id: "filter-since", onchange: setFilter("since") },
    [["", "any time"], ["1h", "last hour"], ["24h", "last day"], ["168h", "last week"]].map(([v, t]) =>
      h("option", { value: v, selected: v === filters.since }, t)));
  const body = h("tbody");
  const more = h("p", { class: "muted" });
  const newType = h("input", { id: "new-type", placeholder: "type", value: "demo" });
  const newPlan = h("input", { id: "new-plan", placeholder: 'plan steps as JSON, e.g. [{"tool":"math","input":{"expression":"1+1"}}]', size: 60 });
  const create = h("form", { class: "filters", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const task = { type: newType.value || "demo" };
      if (newPlan.value.trim()) task.plan = { steps: JSON.parse(newPlan.value) };
      const created = await api("POST", "/v1/tasks", task);
      toast(`created ${created.id}`);
      load();
    } catch (e) {
      toast(e instanceof ApiError ? `${e.code}: ${e.message}` : `not JSON: ${e.message}`);
    }
  } }, newType, newPlan, h("button", { class: "primary", id: "create-task", type: "submit" }, "Create task"));

  const hours = { "1h": 1, "24h": 24, "168h": 168 }[filters.since];
  async function load() {
    const q = new URLSearchParams({ limit: "100" });
    if (filters.status) q.set("status", filters.status);
    if (filters.type) q.set("type", filters.type);
    if (filters.agent) q.set("agent_id", filters.agent);
    if (hours) q.set("created_after", new Date(Date.now() - hours * 3600e3).toISOString());
    const answer = await api("GET", `/v1/tasks?${q}`);
    const tasks = answer.tasks;
    body.replaceChildren(...(tasks.length ? tasks.map((t) => h("tr", { "data-task": t.id },
      h("td", { class: "mono" }, h("a", { href: `#/tasks/${encodeURIComponent(t.id)}` }, t.id)),
      h("td", {}, t.type), h("td", {}, status(t.status)), h("td", {}, t.agent_id || "-"),
      h("td", {}, t.steps_total ?? (t.plan?.steps?.length ?? "-")),
      h("td", {}, when(t.created_at)), h("td", {}, t.duration_seconds ?? "-"))) :
      [h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No tasks match."))]));
    more.textContent = answer.has_more ? "Showing the newest 100; narrow the filters to see older ones." : "";
  }
  // Live: a burst of events reloads the list once. The stream opens beside
  // the first load; once it is open the list is read once more, so an event
  // that fell between the two is not missed.
  let pending = null;
  const reload = () => {
    if (!pending) pending = setTimeout(() => { pending = null; load().catch(() => {}); }, 300);
  };
  const generation = routeGeneration;
  const open = stream("/v1/events", generation, reload);
  await load();
  open.then((opened) => opened && reload());
  return [create,
    h("div", { class: "filters" }, statusSelect,
      h("input", { id: "filter-type", placeholder: "type", value: filters.type, onchange: setFilter("type") }),
      h("input", { id: "filter-agent", placeholder: "agent", value: filters.agent, onchange: setFilter("agent") }),
      sinceSelect, h("span", { class: "muted" }, "live")),
    h("table", { id: "tasks" }, h("thead", {}, h("tr", {},
      ["id", "type", "status", "agent", "steps", "created", "seconds"].map((x) => h("th", {}, x)))), body),
    more];
}

async function taskPage(id) {
  const generation = routeGeneration;
  const [task, trace, artifacts] = await Promise.all([
    api("GET", `/v1/tasks/${encodeURIComponent(id)}`),
    api("GET", `/v1/tasks/${encodeURIComponent(id)}/trace`),
    api("GET", `/v1/artifacts?task_id=${encodeURIComponent(id)}`),
  ]);
  // The trace's status and steps are those of its last event (one read on the
  // server), so the task's own stream resumes right there and no change is
  // missed. The page goes by the trace wherever the two reads differ.
  task.status = trace.status;
  const finished = ["succeeded", "failed", "cancelled"].includes(trace.status);
  const last = (trace.events || []).at(-1);
  if (!finished && last) {
    let pending = null;
    stream(`/v1/tasks/${encodeURIComponent(id)}/events?last_event_id=${last.offset}`, generation, () => {
      if (!pending) pending = setTimeout(() => generation === routeGeneration && route(), 300);
    });
  }
  const verdict = h("div", { id: "replay-verdict" });
  const actions = h("div", { class: "actions" },
    !finished && h("button", { class: "danger", id: "cancel", onclick: async () => {
      try { await api("POST", `/v1/tasks/${encodeURIComponent(id)}/cancel`, {}); toast("cancel requested"); route(); }
      catch (e) { toast(`${e.code}: ${e.message}`); }
    } }, "Cancel"),
    finished && task.status !== "cancelled" && h("button", { id: "replay", onclick: async () => {
      try {
        const replay = await api("POST", `/v1/tasks/${encodeURIComponent(id)}/replay`, {});
        verdict.replaceChildren(h("p", {}, "Replaying as ", h("a", { href: `#/tasks/${replay.id}` }, replay.id), "…"));
        for (let i = 0; i < 120; i++) { // the verdict is the replay's, once it ends
          const r = await api("GET", `/v1/tasks/${encodeURIComponent(replay.id)}/trace`);
          if (r.replay) {
            verdict.replaceChildren(h("p", { "data-matches": String(r.replay.matches) },
              r.replay.matches ? "Replay matches: every step hash is the same." :
                `Replay differs from step ${r.replay.first_divergent_step}.`, " ",
              h("a", { href: `#/tasks/${replay.id}` }, replay.id)));
            return;
          }
          await new Promise((ok) => setTimeout(ok, 500));
        }
      } catch (e) { toast(`${e.code}: ${e.message}`); }
    } }, "Replay"),
    h("button", { id: "receipt", onclick: async () => {
      try {
        const receipt = await api("GET", `/v1/tasks/${encodeURIComponent(id)}/receipt`);
        const link = h("a", { download: `${id}.receipt.json`,
          href: URL.createObjectURL(new Blob([JSON.stringify(receipt)], { type: "application/json" })) }, "Download the receipt");
        verdict.replaceChildren(h("p", { id: "receipt-summary" },
          `Receipt: ${receipt.records.length} records of partition ${receipt.partition}, proved against a signed checkpoint of size ${receipt.tree_size}. `,
          link, " and check it with runlog verify-receipt."));
      } catch (e) { verdict.replaceChildren(showError(e)); }
    } }, "Receipt"));

  const steps = trace.steps || [];
  const timeline = h("ol", { class: "timeline", id: "timeline" }, steps.length ? steps.map((s) =>
    h("li", { class: s.status, "data-step": s.step_index },
      h("strong", {}, `${s.step_index}. ${s.tool_name}`), " ", status(s.status),
      s.status === "waiting" ? h("span", { class: "muted" }, " waiting for approval") : null,
      h("span", { class: "muted" }, `  ${ms(s.duration_ms)}${s.sandboxed ? ", sandboxed" : ""}`),
      s.error ? h("p", { class: "error" }, `${s.error.code}: ${s.error.message}`) : null,
      folded("input", s.input), s.output !== null ? folded("output", s.output) : null)) :
    [h("li", { class: "muted" }, task.plan ? "No step has started." : "A worker task: no plan steps.")]);

  return [
    h("dl", { class: "kv", id: "task" },
      ...[["id", task.id], ["type", task.type], ["status", status(task.status)], ["agent", task.agent_id || "-"],
          ["attempt", `${task.attempt} of ${task.max_attempts}`], ["created", when(task.created_at)],
          ["finished", when(task.completed_at)], ["tokens", task.tokens_used], ["cost", `$${task.cost_usd}`],
          ["error", task.error ? `${task.error.code}: ${task.error.message}` : "-"],
          ["task hash", h("span", { class: "mono" }, task.task_hash || "-")]]
        .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    actions, verdict,
    h("h2", {}, "Timeline"), timeline,
    h("h2", {}, "Artifacts"),
    table(["id", "type", "approval", "size", "created"], artifacts.artifacts.map((a) => h("tr", {},
      h("td", { class: "mono" }, a.id), h("td", {}, a.type), h("td", {}, a.approval_status ? status(a.approval_status) : "-"),
      h("td", {}, a.size), h("td", {}, when(a.created_at))))),
    h("h2", {}, "Events"),
    h("div", { id: "events" }, (trace.events || []).map((e) => folded(`${e.sequence} ${e.event} ${when(e.created_at)}`, e))),
    h("h2", {}, "Hashes"),
    task.step_hashes ? json(task.step_hashes) : h("p", { class: "muted" }, "Set when the task ends."),
  ];
}

async function approvalsPage() {
  const answer = await api("GET", "/v1/artifacts?approval_status=pending");
  const decide = (a, verb) => async () => {
    try {
      await api("POST", `/v1/artifacts/${encodeURIComponent(a.id)}/${verb}`, {});
      toast(`${verb}d ${a.id}`);
      route();
    } catch (e) { toast(`${e.code}: ${e.message}`); }
  };
  return table(["artifact", "task", "type", "expires", ""], answer.artifacts.map((a) => h("tr", { "data-artifact": a.id },
    h("td", { class: "mono" }, a.id),
    h("td", { class: "mono" }, a.task_id ? h("a", { href: `#/tasks/${a.task_id}` }, a.task_id) : "-"),
    h("td", {}, a.type), h("td", {}, when(a.approval_expires_at)),
    h("td", {}, h("div", { class: "actions" },
      h("button", { class: "primary", "data-approve": a.id, onclick: decide(a, "approve") }, "Approve"),
      h("button", { class: "danger", "data-reject": a.id, onclick: decide(a, "reject") }, "Reject"))))),
    { id: "approvals" });
}

async function artifactsPage() {
  const answer = await api("GET", "/v1/artifacts");
  return table(["artifact", "task", "type", "content", "size", "approval", "created"], answer.artifacts.map((a) => h("tr", {},
    h("td", { class: "mono" }, a.id),
    h("td", { class: "mono" }, a.task_id ? h("a", { href: `#/tasks/${a.task_id}` }, a.task_id) : "-"),
    h("td", {}, a.type), h("td", {}, a.content_type), h("td", {}, a.size),
    h("td", {}, a.approval_status ? status(a.approval_status) : "-"), h("td", {}, when(a.created_at)))),
    { id: "artifacts" });
}

async function webhooksPage() {
  const answer = await api("GET", "/v1/webhooks");
  const sections = [];
  for (const w of answer.webhooks) {
    const d = await api("GET", `/v1/webhooks/${encodeURIComponent(w.id)}/deliveries`);
    sections.push(h("h2", {}, w.url, " ", status(w.status)),
      table(["delivery", "event", "status", "attempts", "last attempts"], d.deliveries.map((x) => h("tr", {},
        h("td", { class: "mono" }, x.delivery_id), h("td", {}, x.event), h("td", {}, status(x.status)),
        h("td", {}, x.attempt_count),
        h("td", {}, folded(`${(x.attempts || []).length} shown`, x.attempts || []))))));
  }
  return sections.length ? sections : h("p", { class: "muted" }, "No webhooks.");
}

async function triggersPage() {
  const answer = await api("GET", "/v1/triggers");
  const set = (t, verb) => async () => {
    try { await api("POST", `/v1/triggers/${encodeURIComponent(t.id)}/${verb}`, {}); route(); }
    catch (e) { toast(`${e.code}: ${e.message}`); }
  };
  return table(["trigger", "kind", "schedule", "next fire", "state", ""], answer.triggers.map((t) => h("tr", {},
    h("td", {}, t.name || t.id), h("td", {}, t.kind), h("td", { class: "mono" }, t.schedule ? `${t.schedule} ${t.timezone || ""}` : "-"),
    h("td", {}, when(t.next_fire_at)), h("td", {}, status(t.state)),
    h("td", {}, t.state === "active" ? h("button", { onclick: set(t, "pause") }, "Pause") :
      h("button", { onclick: set(t, "resume") }, "Resume")))), { id: "triggers" });
}

function bars(rows, field, format) {
  const max = Math.max(1, ...rows.map((r) => r[field] || 0));
  return h("div", { class: "chart" }, table(["day", field, ""], rows.map((r) => {
    const bar = h("span", { class: "bar" });
    bar.style.width = `${Math.round(((r[field] || 0) / max) * 300)}px`; // CSSOM: allowed under the CSP
    return h("tr", {}, h("td", {}, r.day), h("td", {}, format(r[field] || 0)), h("td", {}, bar));
  })));
}

async function usagePage() {
  const [usage, account] = await Promise.all([api("GET", "/v1/usage?group_by=day"), api("GET", "/v1/tasks/usage")]);
  const quota = (used, limit) => (limit ? `${used} of ${limit} (${Math.round((used / limit) * 100)}%)` : `${used}`);
  return [
    h("dl", { class: "kv", id: "quotas" },
      ...[["plan", account.plan], ["tasks this month", quota(account.monthly_requests, account.tasks_per_month)],
          ["cost this month", `$${account.total_usage_usd} of $${account.monthly_budget_usd}`],
          ["requests a minute", account.rate_limit_per_minute], ["workers", account.workers_limit]]
        .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "-")])),
    h("h2", {}, `Tasks per day (${usage.from} to ${usage.to})`), bars(usage.usage, "tasks_created", String),
    h("h2", {}, "Tokens per day"), bars(usage.usage, "tokens", String),
    h("h2", {}, "Cost per day"), bars(usage.usage, "cost_usd", (v) => `$${v}`),
  ];
}

async function clusterPage() {
  const c = await api("GET", "/v1/cluster");
  const partitions = Array.isArray(c.partitions) ? c.partitions : c.partition_state || [];
  return [h("p", {}, c.mode === "single" ? "One node on the embedded log." : `Cluster, seen from ${c.node_id}.`),
    c.nodes ? table(["node", "address", "partitions", "last seen"], c.nodes.map((n) => h("tr", {},
      h("td", {}, n.node_id, n.self ? " (this one)" : ""), h("td", {}, n.advertise), h("td", {}, n.partitions.join(", ")),
      h("td", {}, n.left ? "left" : `${n.last_seen_ms_ago} ms ago`)))) : null,
    h("h2", {}, "Partitions"),
    table(["partition", "owner", "log end", "views at", "lag"], partitions.map((p) => h("tr", {},
      h("td", {}, p.partition), h("td", {}, p.owner || "this node"), h("td", {}, p.log_end ?? "-"),
      h("td", {}, p.views_position), h("td", {}, p.log_end >= 0 ? p.log_end - p.views_position : "-"))),
    { id: "cluster" })];
}

// ---- routing -------------------------------------------------------------

const pages = {
  tasks: ["Tasks", tasksPage], approvals: ["Approvals", approvalsPage], artifacts: ["Artifacts", artifactsPage],
  webhooks: ["Webhooks", webhooksPage], triggers: ["Triggers", triggersPage], usage: ["Usage", usagePage],
  cluster: ["Cluster", clusterPage],
};

// Shows `hash`'s page once: a changed hash routes by its hashchange event,
// so calling route() as well would draw the page twice (and could replace a
// form someone is already typing in).
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function route() {
  routeGeneration++;
  stopStream();
  if (!key()) return signIn();
  if (document.getElementById("nav").hidden) {
    document.getElementById("nav").hidden = false;
    // The cluster page is for admin keys; others would get 403 there.
    const cluster = document.getElementById("nav-cluster");
    cluster.hidden = true;
    api("GET", "/v1/cluster").then(() => (cluster.hidden = false)).catch(() => {});
  }
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const [name, id] = path.split("/");
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.getAttribute("href") === `#/${name}`);
  if (name === "tasks" && id) return page(`Task ${decodeURIComponent(id)}`, () => taskPage(decodeURIComponent(id)));
  const [title, build] = pages[name] || pages.tasks;
  return page(title, () => build(new URLSearchParams(query)));
}

document.getElementById("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem("runlog.key");
  go("#/tasks"); // no key: the sign-in form
});
window.addEventListener("hashchange", route);
route();
