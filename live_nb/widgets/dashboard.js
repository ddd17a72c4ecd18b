// Dashboard panels (connection, usage, streaming, transcript, tools): one ESM, the `part` trait picks the panel.
//
// Clocks run here: connection age and the GoAway countdown are computed from absolute times
// (connection_started, go_away_deadline: time.time() seconds in the kernel) against the browser's
// clock, corrected by the offset seen when the kernel last changed a value, so they tick on with no
// kernel messages at all.
//
// Untrusted text (model replies, transcriptions, user text echoed back, tool calls, error messages,
// model names) is only ever set as textContent, title or a sanitised CSS class: no innerHTML,
// insertAdjacentHTML or HTML strings anywhere. It is shown as plain text, never as Markdown: the
// sanitiser JupyterLab applies to untrusted outputs does not run inside a widget view.

function fmtTokens(v) {
  v = Number(v) || 0;
  if (Math.abs(v) >= 1000) return (v / 1000).toFixed(1).replace(/\.0$/, "") + "k";
  return String(Math.round(v));
}

function fmtDuration(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  const neg = s < 0;
  s = Math.abs(Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return (neg ? "-" : "") + (h ? h + ":" : "") + mm + ":" + String(sec).padStart(2, "0");
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

// A CSS class suffix from a value the kernel sent: letters, digits, "-" and "_" only.
function token(v) {
  return String(v).replace(/[^A-Za-z0-9_-]/g, "");
}

function shortHandle(h) {
  if (!h) return "–";
  return h.length <= 13 ? h : `${h.slice(0, 6)}…${h.slice(-6)}`;
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (e) {
    // Clipboard API needs a secure context or permission: fall back to a hidden textarea.
    const ta = document.createElement("textarea");
    ta.value = text;
    ta.setAttribute("readonly", "");
    ta.style.position = "fixed";
    ta.style.opacity = "0";
    document.body.appendChild(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand("copy"); } catch (e2) { ok = false; }
    ta.remove();
    return ok;
  }
}

// ---------------------------------------------------------------- connection panel

function renderConnection(model, root) {
  root.classList.add("lnb-connection");
  const title = el("div", "lnb-panel-title", "Connection");
  const badge = el("span", "lnb-badge");
  title.appendChild(badge);
  const table = el("dl", "lnb-kv");
  const rows = {};
  const row = (key, label, help) => {
    const dt = el("dt", "", label);
    if (help) dt.title = help;
    const dd = el("dd", `lnb-v-${key}`);
    table.append(dt, dd);
    rows[key] = dd;
  };
  row("backend", "Backend");
  row("model", "Model");
  row("age", "Age", "How long this connection has been open, against its lifetime");
  row("goaway", "GoAway");
  row("reconnects", "Reconnects");
  row("handle", "Handle");
  row("resumable", "Resumable");
  row("index", "Last consumed", "lastConsumedClientMessageIndex: the last client message the server folded in");
  row("replay", "Replay buffer", "Client messages kept to re-send after resuming");
  root.append(title, table);

  const ageBar = el("div", "lnb-bar");
  const ageFill = el("div", "lnb-bar-fill");
  ageBar.appendChild(ageFill);
  const ageText = el("span", "lnb-age-text");
  rows.age.append(ageText, ageBar);

  const handleText = el("code", "lnb-handle");
  const copy = el("button", "lnb-copy jp-Button", "Copy");
  copy.type = "button";
  copy.title = "Copy the full resumption handle";
  copy.addEventListener("click", async () => {
    const ok = await copyText(model.get("handle") || "");
    copy.textContent = ok ? "Copied" : "Copy failed";
    setTimeout(() => { copy.textContent = "Copy"; }, 1200);
  });
  rows.handle.append(handleText, copy);

  let offset = 0; // kernel clock - browser clock, seconds
  const kernelNow = () => Date.now() / 1000 + offset;

  const tick = () => {
    const state = model.get("state") || "–";
    const started = model.get("connection_started");
    const limit = model.get("connection_limit") || 600;
    const deadline = model.get("go_away_deadline");
    const now = kernelNow();
    const live = state !== "closed";
    if (started && live) {
      const age = Math.max(0, now - started);
      ageText.textContent = `${fmtDuration(age)} / ${fmtDuration(limit)}`;
      const frac = Math.min(1, age / limit);
      ageFill.style.width = `${(frac * 100).toFixed(1)}%`;
      ageBar.classList.toggle("lnb-bar-warn", frac > 0.85);
    } else {
      ageText.textContent = started ? "–" : "not connected";
      ageFill.style.width = "0%";
    }
    const g = rows.goaway;
    if (deadline && live) {
      const left = deadline - now;
      g.textContent = left > 0 ? `closing in ${fmtDuration(left)}` : "closing now";
      g.dataset.remaining = Math.max(0, left).toFixed(1);
      g.classList.add("lnb-alert");
    } else {
      g.textContent = "none";
      g.dataset.remaining = "";
      g.classList.remove("lnb-alert");
    }
  };

  const update = () => {
    const state = model.get("state") || "–";
    badge.textContent = state.replace("_", " ");
    badge.className = `lnb-badge lnb-state-${token(state)}`;
    root.dataset.state = state;
    rows.backend.textContent = model.get("backend") || "–";
    const modelName = model.get("model") || "–";
    rows.model.textContent = modelName.replace(/^models\//, "");
    rows.model.title = modelName;
    rows.reconnects.textContent = String(model.get("reconnects") || 0);
    const handle = model.get("handle") || "";
    handleText.textContent = shortHandle(handle);
    handleText.title = handle;
    copy.disabled = !handle;
    const resumable = model.get("resumable");
    rows.resumable.textContent = resumable ? "yes" : "no";
    rows.resumable.className = `lnb-v-resumable ${resumable ? "lnb-yes" : "lnb-no"}`;
    const idx = model.get("last_consumed_index");
    rows.index.textContent = idx === null || idx === undefined ? "–" : String(idx);
    rows.replay.textContent = `${model.get("replay_depth") || 0} messages`;
    tick();
  };
  const onChange = () => {
    const kt = model.get("kernel_time");
    if (kt) offset = kt - Date.now() / 1000;
    // A large offset means a stale value (a reload long after): same machine, assume same clock.
    if (Math.abs(offset) > 5) offset = 0;
    update();
  };
  model.on("change", onChange);
  update();
  const timer = setInterval(tick, 250);
  return () => { clearInterval(timer); model.off("change", onChange); };
}

// ---------------------------------------------------------------- usage panel

const MODALITIES = ["TEXT", "AUDIO", "VIDEO", "IMAGE"];

function bars(title, data, cls) {
  const box = el("div", `lnb-bars ${cls}`);
  box.appendChild(el("div", "lnb-sub", title));
  const keys = Object.keys(data || {}).sort((a, b) => MODALITIES.indexOf(a) - MODALITIES.indexOf(b));
  const max = Math.max(1, ...keys.map((k) => data[k]));
  if (!keys.length) box.appendChild(el("div", "lnb-empty", "nothing yet"));
  for (const k of keys) {
    const r = el("div", "lnb-bar-row");
    r.appendChild(el("span", "lnb-bar-label", k.toLowerCase()));
    const bar = el("div", "lnb-bar");
    const fill = el("div", `lnb-bar-fill lnb-mod-${token(k).toLowerCase()}`);
    fill.style.width = `${((100 * data[k]) / max).toFixed(1)}%`;
    bar.appendChild(fill);
    r.append(bar, el("span", "lnb-bar-value", fmtTokens(data[k])));
    box.appendChild(r);
  }
  return box;
}

function renderUsage(model, root) {
  root.classList.add("lnb-usage");
  const update = () => {
    const title = el("div", "lnb-panel-title", "Tokens");
    const est = el("div", "lnb-note", `in context now ≈ ${fmtTokens(model.get("estimated"))} (estimate)`);
    const prompt = model.get("prompt_tokens");
    const server = el("div", "lnb-server");
    if (prompt === null || prompt === undefined) {
      server.appendChild(el("span", "lnb-empty", "no usage report from the server yet"));
    } else {
      const reports = model.get("reports");
      const cells = [["prompt", prompt], ["response", model.get("response_tokens")], ["total", model.get("total_tokens")]];
      for (const [label, v] of cells) {
        const c = el("div", "lnb-stat");
        c.append(el("div", "lnb-stat-value", fmtTokens(v || 0)), el("div", "lnb-stat-label", label));
        server.appendChild(c);
      }
      const byModality = Object.entries(model.get("prompt_by_modality") || {})
        .map(([k, v]) => `${k.toLowerCase()} ${fmtTokens(v)}`).join(", ");
      const note = `server count, last of ${reports} report${reports === 1 ? "" : "s"}` + (byModality ? ` · prompt: ${byModality}` : "");
      server.appendChild(el("div", "lnb-note", note));
    }
    root.replaceChildren(
      title,
      server,
      bars("sent (estimate)", model.get("input_by_modality"), "lnb-in"),
      bars("received (estimate)", model.get("output_by_modality"), "lnb-out"),
      est,
    );
    root.dataset.estimated = String(model.get("estimated"));
  };
  model.on("change", update);
  update();
  return () => model.off("change", update);
}

// ---------------------------------------------------------------- streaming panel

const KIND_TEXT = new Map([["on", "on"], ["off", "off"], ["muted", "muted"], ["waiting", "waiting for data"]]);
const kindText = (kind) => KIND_TEXT.get(kind) ?? String(kind);

function renderMedia(model, root) {
  root.classList.add("lnb-media");
  const update = () => {
    const present = model.get("present");
    const streaming = model.get("streaming");
    const mic = model.get("mic") || "off";
    const camera = model.get("camera") || "off";
    const rate = Number(model.get("token_rate")) || 0;
    const nominal = Number(model.get("nominal_rate")) || 0;
    root.dataset.present = String(!!present);
    root.dataset.streaming = String(!!streaming);
    root.dataset.mic = present ? mic : "none";
    root.dataset.camera = present ? camera : "none";
    root.dataset.rate = rate.toFixed(1);

    const title = el("div", "lnb-panel-title", "Streaming");
    const badge = el("span", "lnb-badge");
    badge.textContent = streaming ? "live" : present ? "idle" : "off";
    badge.className = `lnb-badge ${streaming ? "lnb-state-active" : ""}`;
    title.appendChild(badge);
    if (!present) {
      root.replaceChildren(
        title,
        el("div", "lnb-empty lnb-media-none", "not streaming"),
        el("div", "lnb-note", "start with %live mic on, %live camera on or session.stream(camera)"),
      );
      return;
    }
    const table = el("dl", "lnb-kv");
    const row = (label, value, cls, help) => {
      const dt = el("dt", "", label);
      if (help) dt.title = help;
      const dd = el("dd", cls || "", value);
      table.append(dt, dd);
      return dd;
    };
    const micCell = row("Mic", kindText(mic), `lnb-v-mic lnb-kind-${token(mic)}`);
    if (mic === "on") {
      const bar = el("div", "lnb-bar lnb-level");
      bar.title = "input level (updated about once a second)";
      const fill = el("div", "lnb-bar-fill");
      fill.style.width = `${Math.min(100, 100 * Math.sqrt(Number(model.get("level")) || 0)).toFixed(0)}%`;
      bar.appendChild(fill);
      micCell.appendChild(bar);
    }
    row("Camera", kindText(camera), `lnb-v-camera lnb-kind-${token(camera)}`);
    const cost = row(
      "Cost",
      undefined,
      "lnb-v-rate",
      "Input tokens per second the stream adds to the context (25/s of audio, 258 per video frame), measured over the last 5 s",
    );
    cost.appendChild(el("span", "lnb-rate-value", streaming ? `${rate.toFixed(rate >= 100 ? 0 : 1)} tokens/s` : "none"));
    if (streaming) {
      cost.appendChild(el("span", "lnb-note lnb-inline", `≈ ${fmtTokens(rate * 60)}/min · nominal ${nominal.toFixed(0)}/s`));
    }
    row("Received", `${model.get("chunks_received") || 0} chunks · ${model.get("frames_received") || 0} frames`,
      "lnb-v-received", "Audio chunks (100 ms each) and video frames that reached the kernel");
    const gaps = model.get("gaps") || 0;
    const missing = model.get("missing_chunks") || 0;
    row("Gaps", gaps ? `${gaps} (${missing} chunk${missing === 1 ? "" : "s"} lost)` : "none",
      `lnb-v-gaps ${gaps ? "lnb-alert" : "lnb-yes"}`, "Times chunks or frames never arrived");
    const state = model.get("capture_state");
    if (state) row("Capture", state, "lnb-v-capture");
    const children = [title, table];
    const error = model.get("error");
    if (error) children.push(el("div", "lnb-alert lnb-media-error", error));
    root.replaceChildren(...children);
  };
  model.on("change", update);
  update();
  return () => model.off("change", update);
}

// ---------------------------------------------------------------- transcript panel

function renderTranscript(model, root) {
  root.classList.add("lnb-transcript");
  const title = el("div", "lnb-panel-title", "Transcript");
  const list = el("div", "lnb-turns");
  root.append(title, list);
  let first = true;
  const update = () => {
    const turns = model.get("turns") || [];
    // Follow the newest turn unless the reader scrolled up to read an older one.
    const stick = first || list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
    list.replaceChildren();
    if (!turns.length) list.appendChild(el("div", "lnb-empty", "no turns yet"));
    for (const t of turns) {
      const item = el("div", `lnb-turn lnb-role-${token(String(t.role).split(" ")[0])}`);
      item.append(el("span", "lnb-role", String(t.role ?? "")), el("span", "lnb-text", String(t.text ?? "")));
      list.appendChild(item);
    }
    if (stick) requestAnimationFrame(() => { list.scrollTop = list.scrollHeight; });
    if (turns.length) first = false;
    root.dataset.turns = String(turns.length);
  };
  model.on("change:turns", update);
  update();
  return () => model.off("change:turns", update);
}

// ---------------------------------------------------------------- tools panel

const STATUS_TEXT = new Map([
  ["running", "running…"], ["returned", "returned"], ["failed", "failed"],
  ["cancelled", "cancelled"], ["timed_out", "timed out"],
]);

function renderTools(model, root) {
  root.classList.add("lnb-tools");
  const title = el("div", "lnb-panel-title", "Tools");
  const list = el("div", "lnb-tool-list");
  root.append(title, list);
  const update = () => {
    const runs = model.get("runs") || [];
    list.replaceChildren();
    if (!runs.length) list.appendChild(el("div", "lnb-empty", "no tool calls yet"));
    for (const r of runs) {
      const status = String(r.status ?? "");
      const row = el("div", `lnb-tool lnb-tool-${token(status)}`);
      row.dataset.name = String(r.name ?? "");
      row.dataset.status = status;
      const call = el("span", "lnb-tool-call", `${r.name ?? "?"}(${r.args ?? ""})`);
      call.title = [r.behavior, r.scheduling].filter(Boolean).join(" · ");
      const took = status === "running" ? "–" : `${(Number(r.seconds) || 0).toFixed(2)} s`;
      row.append(
        call,
        el("span", "lnb-tool-status", STATUS_TEXT.get(status) ?? status),
        el("span", "lnb-tool-seconds", took),
        el("span", "lnb-tool-result", String(r.result ?? "")),
      );
      list.appendChild(row);
    }
    root.dataset.runs = String(runs.length);
  };
  model.on("change:runs", update);
  update();
  return () => model.off("change:runs", update);
}

function render({ model, el: root }) {
  root.classList.add("lnb-panel");
  const part = model.get("part");
  if (part === "connection") return renderConnection(model, root);
  if (part === "usage") return renderUsage(model, root);
  if (part === "transcript") return renderTranscript(model, root);
  if (part === "media") return renderMedia(model, root);
  if (part === "tools") return renderTools(model, root);
  root.textContent = `unknown panel ${part}`;
  return undefined;
}

export default { render };
