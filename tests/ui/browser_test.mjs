// The dashboard in a real browser (Debian's chromium, driven by
// puppeteer-core): a person signs in, creates a task with an approval step
// through the UI, watches it live, opens its timeline, approves the artifact
// in the inbox and sees the plan continue; another tenant's key sees none of
// it. Screenshots of every page go to OUT_DIR. With 10,000 tasks in the log,
// it prints how long each page takes to load (measured, not asserted).
//   node browser_test.mjs RUNLOGD OUT_DIR
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer from "puppeteer-core";

const [runlogd, outDir] = process.argv.slice(2);
mkdirSync(outDir, { recursive: true });
const dataDir = mkdtempSync(join(tmpdir(), "runlog-ui-"));
const adminKey = "rl_live_ui_test_admin";
let failures = 0;
const check = (ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures++;
};

const port = await new Promise((resolve) => {
  const s = createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
});
const base = `http://127.0.0.1:${port}`;
const server = spawn(runlogd, ["--listen", `127.0.0.1:${port}`, "--data", dataDir], {
  env: { ...process.env, RUNLOG_ADMIN_KEY: adminKey }, stdio: ["ignore", "ignore", "inherit"],
});
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
async function call(method, path, key, body) {
  const res = await fetch(base + path, { method, headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined });
  return { status: res.status, json: await res.json().catch(() => null), headers: res.headers };
}

let browser;
let page; // kept for the failure's screenshot
let shot;
try {
  for (let i = 0; i < 100; i++) {
    try { if ((await fetch(`${base}/readyz`)).ok) break; } catch { /* not up yet */ }
    await sleep(100);
  }
  // Two tenants of their own, as a person would register them.
  const alice = (await call("POST", "/v1/keys/register", "", {})).json.apiKey;
  const bob = (await call("POST", "/v1/keys/register", "", {})).json.apiKey;
  check(alice && bob && alice !== bob, "two tenants registered");

  // The pages' security headers.
  const ui = await fetch(`${base}/ui/`);
  const csp = ui.headers.get("content-security-policy") || "";
  check(ui.status === 200 && csp.includes("script-src 'self'") && !csp.includes("unsafe-inline") &&
        csp.includes("frame-ancestors 'none'") && ui.headers.get("x-content-type-options") === "nosniff",
        `/ui/ sends CSP without inline scripts, frame-ancestors 'none', nosniff (${csp})`);

  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  const violations = [];
  page.on("console", (m) => { if (/Content Security Policy|Refused/.test(m.text())) violations.push(m.text()); });
  page.on("pageerror", (e) => violations.push(`page error: ${e.message}`));
  shot = (name) => page.screenshot({ path: join(outDir, `${name}.png`), fullPage: true });
  const text = (sel) => page.$eval(sel, (el) => el.textContent);

  // Sign in.
  await page.goto(`${base}/ui/`);
  await page.waitForSelector("#api-key");
  await shot("sign-in");
  await page.type("#api-key", "rl_live_wrong");
  await page.click("#sign-in");
  await page.waitForFunction(() => document.querySelector(".signin .error")?.textContent.includes("UNAUTHENTICATED"));
  check(true, "a wrong key is refused with UNAUTHENTICATED");
  await page.$eval("#api-key", (el) => (el.value = ""));
  await page.type("#api-key", alice);
  await page.click("#sign-in");
  await page.waitForSelector("#tasks");
  check(await page.evaluate(() => sessionStorage.getItem("runlog.key") !== null && localStorage.length === 0),
        "the key is held in sessionStorage (this tab) only");

  // Create a task through the UI: a step, an approval, a step.
  const plan = JSON.stringify([
    { tool: "math", input: { expression: "6*7" } },
    { tool: "approval", input: { type: "ui.review", data: { draft: "hello" } } },
    { tool: "math", input: { expression: "1+1" } },
  ]);
  await page.$eval("#new-type", (el) => (el.value = ""));
  await page.type("#new-type", "ui-demo");
  await page.type("#new-plan", plan);
  await page.click("#create-task");
  await page.waitForSelector("#tasks tr[data-task]");
  const id = await page.$eval("#tasks tr[data-task]", (el) => el.dataset.task);
  check(id.length > 0, `created ${id} from the UI`);
  // Live: the list follows the task to its approval wait without a reload.
  await page.evaluate(() => (window.__sameDocument = true));
  await page.waitForFunction((id) => document.querySelector(`#tasks tr[data-task="${id}"] .status`)?.dataset.status === "running",
    { timeout: 20000 }, id);
  check(await page.evaluate(() => window.__sameDocument === true), "the list updated live (no reload) to running");
  await shot("tasks");

  // The timeline: the approval step is waiting.
  // The live list may redraw its rows between finding one and a mouse click
  // on it; a click inside the page lands on whichever row is there.
  await page.$eval(`#tasks tr[data-task="${id}"] a`, (a) => a.click());
  await page.waitForSelector("#timeline li[data-step='2'].waiting", { timeout: 20000 });
  check((await text("#timeline li[data-step='1']")).includes("succeeded"), "step 1 succeeded in the timeline");
  check((await text("#timeline li[data-step='2']")).includes("waiting for approval"), "step 2 waits for approval");
  await shot("task-timeline");

  // The approvals inbox: approve; the plan continues to the end.
  await page.goto(`${base}/ui/#/approvals`);
  await page.waitForSelector("#approvals [data-approve]");
  await shot("approvals");
  await page.click("#approvals [data-approve]");
  await page.waitForFunction(() => !document.querySelector("#approvals [data-approve]"));
  await page.goto(`${base}/ui/#/tasks/${id}`);
  await page.waitForFunction(() => document.querySelector("#task .status")?.dataset.status === "succeeded", { timeout: 20000 });
  check((await text("#timeline li[data-step='3']")).includes("succeeded"), "after the approval the plan ran step 3");
  await shot("task-succeeded");
  // Replay from the page, with its verdict.
  await page.click("#replay");
  await page.waitForSelector("#replay-verdict [data-matches]", { timeout: 30000 });
  check(await page.$eval("#replay-verdict [data-matches]", (el) => el.dataset.matches === "true" || el.dataset.matches === "false"),
        `the replay's verdict is shown: ${await text("#replay-verdict")}`);
  await page.click("#receipt");
  await page.waitForSelector("#receipt-summary, #replay-verdict .error", { timeout: 20000 });
  await shot("task-receipt");

  // The timeline follows a running plan step by step, without a reload.
  const slow = await call("POST", "/v1/tasks", alice, { type: "ui-steps", plan: { steps: [
    { tool: "shell_sandbox", input: { command: "sleep 1.5" } },
    { tool: "shell_sandbox", input: { command: "sleep 1.5" } },
    { tool: "math", input: { expression: "2+2" } }] } });
  check(slow.status === 201, `a three-step plan was created (${slow.status})`);
  await page.goto(`${base}/ui/#/tasks/${slow.json.id}`);
  await page.waitForSelector("#task");
  await page.evaluate(() => {
    window.__sameDocument = true;
    window.__timelines = [];
    const record = () => {
      const items = [...document.querySelectorAll("#timeline li[data-step]")];
      const seen = items.map((li) => `${li.dataset.step}:${li.className}`).join(" ");
      if (seen && window.__timelines.at(-1) !== seen) window.__timelines.push(seen);
    };
    record();
    new MutationObserver(record).observe(document.body, { childList: true, subtree: true });
  });
  await page.waitForFunction(() => document.querySelector("#task .status")?.dataset.status === "succeeded", { timeout: 30000 });
  const timelines = await page.evaluate(() => window.__timelines);
  check(await page.evaluate(() => window.__sameDocument === true) &&
        timelines.includes("1:succeeded 2:running") && timelines.at(-1) === "1:succeeded 2:succeeded 3:succeeded",
        `the timeline showed each step as it ran: ${timelines.join(" | ")}`);

  // The filters are the server's: an agent's task is found among many newer
  // ones, and a time window or an unknown agent narrows the list.
  const needle = await call("POST", "/v1/tasks", alice, { type: "ui-needle", agent_id: "needle-agent" });
  const hay = [];
  await Promise.all(Array.from({ length: 4 }, async (_, w) => {
    for (let i = w; i < 150; i += 4) hay.push((await call("POST", "/v1/tasks", alice, { type: "ui-hay" })).status);
  }));
  check(needle.status === 201 && hay.every((st) => st === 201),
        `a task for needle-agent and 150 newer ones were created (${needle.status}, ${[...new Set(hay)]})`);
  await page.goto(`${base}/ui/#/tasks?agent=needle-agent`);
  await page.waitForSelector(`#tasks tr[data-task="${needle.json.id}"]`);
  check((await page.$$("#tasks tr[data-task]")).length === 1, "the agent filter finds the one task under 150 newer ones");
  await page.goto(`${base}/ui/#/tasks?agent=nobody`);
  await page.waitForFunction(() => document.querySelector("#tasks")?.textContent.includes("No tasks match."));
  await page.goto(`${base}/ui/#/tasks?type=ui-needle&since=1h`);
  await page.waitForSelector(`#tasks tr[data-task="${needle.json.id}"]`);
  check(true, "type and age filters show the task created this hour");
  await shot("tasks-filtered");

  for (const name of ["artifacts", "webhooks", "triggers", "usage"]) {
    await page.goto(`${base}/ui/#/${name}`);
    await page.waitForFunction(() => !document.querySelector("main p.muted")?.textContent.startsWith("Loading"));
    check(!(await page.$("main .error")), `the ${name} page loads without an error`);
    await shot(name);
  }

  // Another tenant sees none of it.
  await page.click("#sign-out");
  await page.waitForSelector("#api-key");
  await page.type("#api-key", bob);
  await page.click("#sign-in");
  await page.waitForSelector("#tasks");
  check(!(await page.$(`#tasks tr[data-task="${id}"]`)), "the other tenant's task list does not show it");
  await page.goto(`${base}/ui/#/tasks/${id}`);
  await page.waitForSelector("main .error");
  check((await text("main .error")).includes("TASK_NOT_FOUND"), "the other tenant gets TASK_NOT_FOUND for its id");
  await page.goto(`${base}/ui/#/approvals`);
  await page.waitForSelector("#approvals");
  check(!(await page.$("#approvals [data-approve]")) && !(await text("#approvals")).includes(id),
        "the other tenant's inbox is empty");
  await shot("other-tenant");
  check(violations.length === 0, `no CSP violation or page error (${violations.join("; ")})`);

  // Load times with 10,000 tasks, as the admin (whose plan has no quota);
  // the admin also sees the cluster page.
  let refused = 0;
  await Promise.all(Array.from({ length: 16 }, async (_, w) => {
    for (let i = w; i < 10000; i += 16) {
      if ((await call("POST", "/v1/tasks", adminKey, { type: `bulk-${i % 5}` })).status !== 201) refused++;
    }
  }));
  check(refused === 0, `10,000 tasks created (${refused} refused)`);
  await page.click("#sign-out");
  await page.waitForSelector("#api-key");
  await page.type("#api-key", adminKey);
  await page.click("#sign-in");
  await page.waitForSelector("#tasks");
  await page.waitForFunction(() => !document.getElementById("nav-cluster").hidden);
  await page.goto(`${base}/ui/#/cluster`);
  await page.waitForFunction(() => !document.querySelector("main p.muted")?.textContent.startsWith("Loading"));
  check(!(await page.$("main .error")), "the admin's cluster page loads");
  await shot("cluster");
  await page.goto(`${base}/ui/#/usage`);
  await page.waitForSelector("#quotas");
  const times = [];
  for (const [name, ready] of [["tasks", "#tasks tr[data-task]"], ["approvals", "#approvals"], ["artifacts", "#artifacts"],
                               ["usage", "#quotas"], ["triggers", "#triggers"]]) {
    const runs = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await page.goto(`${base}/ui/#/${name}`);
      await page.reload();
      await page.waitForSelector(ready);
      runs.push(performance.now() - t0);
    }
    runs.sort((a, b) => a - b);
    times.push(`${name} ${runs[2].toFixed(0)} ms`);
  }
  await shot("tasks-10000");
  console.log(`load times with 10,000 tasks (median of 5, full reload to content): ${times.join(", ")}`);
} catch (e) {
  check(false, `the test broke off: ${e.stack || e}`);
  // What the page showed when it broke off, to tell a slow server from a page fault.
  try {
    console.log(`the page at ${page.url()} shows: ${(await page.$eval("main", (el) => el.innerText)).slice(0, 600)}`);
    await shot("failure");
  } catch { /* the browser itself is gone */ }
} finally {
  if (browser) await browser.close();
  server.kill("SIGTERM");
  await new Promise((ok) => server.once("exit", ok));
  rmSync(dataDir, { recursive: true, force: true });
}
console.log(failures ? `${failures} checks failed` : "all checks passed");
process.exit(failures ? 1 : 0);
