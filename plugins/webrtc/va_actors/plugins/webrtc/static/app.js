// The va-actors browser edge page: WebRTC to the edge, the live feed over a
// WebSocket. No build step and no libraries: what the browser has.
"use strict";

const $ = (id) => document.getElementById(id);
const SEGMENTS = [
  ["turn_detected", "turn"], ["final_transcript", "transcript"],
  ["first_token", "first token"], ["first_audio", "first audio"],
  ["audio_out", "audio out"], ["to_ear", "to your ear"],
];
const SPEAKING_RMS = 0.02; // a tap block this loud counts as sound

// Everything the page knows, also read by the tests (window.vaEdge).
const state = {
  config: null, peer: null, participant: null, pc: null, ws: null, stream: null,
  connected: false, muted: false, lines: [], latencies: [], pipeline: null, peers: [],
  epoch: 0, errors: [], levels: { mic: [], agent: [] }, recording: [], recordRate: 0,
  agentAudioAt: null, audio: null, pendingEar: [], faces: null, playing: false,
  lastHeard: null, live: false,
};
window.vaEdge = state;

// -- messages to the user ---------------------------------------------------------------
function banner(text, kind = "error") {
  const el = $("banner");
  if (!text) { el.hidden = true; return; }
  el.textContent = text;
  el.className = "banner" + (kind === "warn" ? " warn" : "");
  el.hidden = false;
  if (kind !== "warn") state.errors.push(text);
}

function setStatus(text, kind) {
  const el = $("status");
  el.textContent = text;
  el.className = "pill " + kind;
}

function permissionMessage(err, what) {
  switch (err && err.name) {
    case "NotAllowedError":
    case "SecurityError":
      return `The ${what} permission was refused. Allow it for this page (the icon at the ` +
        "left of the address bar) and press Connect again.";
    case "NotFoundError":
    case "OverconstrainedError":
      return `No ${what} was found. Plug one in, or pick another in Devices.`;
    case "NotReadableError":
      return `The ${what} is in use by another program or could not be started.`;
    default:
      return `The ${what} could not be opened: ${err && err.message ? err.message : err}`;
  }
}

// -- devices --------------------------------------------------------------------------------
async function listDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  const devices = await navigator.mediaDevices.enumerateDevices();
  fill($("mic"), devices.filter((d) => d.kind === "audioinput"), "microphone");
  fill($("camera"), devices.filter((d) => d.kind === "videoinput"), "camera", true);
}

function fill(select, devices, what, withOff = false) {
  const chosen = select.value;
  select.replaceChildren(new Option("default", ""));
  if (withOff) select.add(new Option("no camera", "off"));
  devices.forEach((d, i) => select.add(new Option(d.label || `${what} ${i + 1}`, d.deviceId)));
  if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
}

function audioConstraints() {
  const id = $("mic").value;
  return {
    echoCancellation: true, noiseSuppression: true, autoGainControl: true,
    ...(id ? { deviceId: { exact: id } } : {}),
  };
}

function videoConstraints() {
  const id = $("camera").value;
  if (id === "off" || !(state.config && state.config.accept_video)) return false;
  return { width: { ideal: 640 }, height: { ideal: 480 }, ...(id ? { deviceId: { exact: id } } : {}) };
}

async function openMedia() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("This page cannot use a microphone here: open it over https, or as " +
      "http://localhost / http://127.0.0.1 on the machine that runs the pipeline.");
  }
  let audio;
  try {
    audio = await navigator.mediaDevices.getUserMedia({ audio: audioConstraints() });
  } catch (err) {
    throw new Error(permissionMessage(err, "microphone"));
  }
  const video = videoConstraints();
  if (video) {
    try {
      const cam = await navigator.mediaDevices.getUserMedia({ video });
      cam.getVideoTracks().forEach((t) => audio.addTrack(t));
    } catch (err) {
      banner(permissionMessage(err, "camera") + " Talking works without it.", "warn");
    }
  }
  return audio;
}

// -- audio taps (levels for the meters; the agent's audio for the recording) -------------
async function startAudio() {
  if (state.audio) return state.audio;
  const ctx = new AudioContext();
  await ctx.audioWorklet.addModule("/static/tap.js");
  const sink = ctx.createGain();
  sink.gain.value = 0; // taps must reach the destination to run, silently
  sink.connect(ctx.destination);
  state.audio = { ctx, sink, taps: {} };
  state.recordRate = ctx.sampleRate;
  return state.audio;
}

function wallTime(ctx, contextTime) {
  // Context time -> ms since the Unix epoch, through the output timestamp.
  const stamp = ctx.getOutputTimestamp ? ctx.getOutputTimestamp() : null;
  if (stamp && stamp.performanceTime) {
    return performance.timeOrigin + stamp.performanceTime + (contextTime - stamp.contextTime) * 1000;
  }
  return performance.timeOrigin + performance.now();
}

function tap(name, stream) {
  const audio = state.audio;
  if (!audio) return;
  if (audio.taps[name]) audio.taps[name].source.disconnect();
  const source = audio.ctx.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(audio.ctx, "va-tap");
  source.connect(node).connect(audio.sink);
  if (name === "agent") node.port.postMessage({ record: true });
  const meter = $(name === "agent" ? "agent-level" : "mic-level");
  const levels = state.levels[name];
  node.port.onmessage = (e) => {
    const { t, rms, samples } = e.data;
    const at = wallTime(audio.ctx, t);
    levels.push([at, rms]);
    if (levels.length > 200000) levels.splice(0, 50000);
    meter.value = Math.min(1, rms * 4);
    if (name === "agent") {
      if (samples) state.recording.push(samples);
      if (rms > SPEAKING_RMS) onAgentSound(at);
    }
  };
  audio.taps[name] = { source, node };
}

function onAgentSound(at) {
  if (state.agentAudioAt === null) state.agentAudioAt = at;
  // The first sound after the edge said "playing" closes that turn's ear segment.
  while (state.pendingEar.length) {
    const item = state.pendingEar.shift();
    if (at >= item.since) finishEar(item, at - item.since);
  }
}

function recordingWav() {
  const chunks = state.recording;
  const n = chunks.reduce((sum, c) => sum + c.length, 0);
  const pcm = new Int16Array(n);
  let i = 0;
  for (const c of chunks) for (const v of c) pcm[i++] = Math.max(-1, Math.min(1, v)) * 32767;
  const header = new DataView(new ArrayBuffer(44));
  const rate = state.recordRate;
  const text = (o, s) => [...s].forEach((ch, k) => header.setUint8(o + k, ch.charCodeAt(0)));
  text(0, "RIFF"); header.setUint32(4, 36 + n * 2, true); text(8, "WAVE"); text(12, "fmt ");
  header.setUint32(16, 16, true); header.setUint16(20, 1, true); header.setUint16(22, 1, true);
  header.setUint32(24, rate, true); header.setUint32(28, rate * 2, true);
  header.setUint16(32, 2, true); header.setUint16(34, 16, true); text(36, "data");
  header.setUint32(40, n * 2, true);
  return new Blob([header, pcm], { type: "audio/wav" });
}

// The agent's audio as received, for tests: base64 of 16-bit PCM at recordRate.
state.takeRecording = async () => {
  const blob = recordingWav();
  const bytes = new Uint8Array(await blob.arrayBuffer()).subarray(44);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return { rate: state.recordRate, pcm: btoa(binary) };
};

// The receiving side of the agent's voice, from the browser's WebRTC statistics.
state.audioStats = async () => {
  if (!state.pc) return null;
  const report = await state.pc.getStats();
  let found = null;
  report.forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "audio") found = r;
  });
  if (!found) return null;
  const per = (total) => (found.jitterBufferEmittedCount
    ? (1000 * total) / found.jitterBufferEmittedCount : null);
  return {
    jitter_buffer_ms: per(found.jitterBufferDelay),
    jitter_buffer_target_ms: per(found.jitterBufferTargetDelay || 0),
    jitter_ms: 1000 * (found.jitter || 0),
    packets_received: found.packetsReceived, packets_lost: found.packetsLost,
    concealed_share: found.totalSamplesReceived
      ? found.concealedSamples / found.totalSamplesReceived : null,
  };
};

// -- connecting -------------------------------------------------------------------------------
async function connect() {
  banner("");
  $("connect").disabled = true;
  setStatus("connecting…", "busy");
  try {
    state.stream = await openMedia();
    await listDevices();
    await startAudio();
    tap("mic", state.stream);
    $("local-video").srcObject = state.stream.getVideoTracks().length ? state.stream : null;
    await negotiate();
  } catch (err) {
    fail(err.message || String(err));
  }
}

async function negotiate() {
  const pc = new RTCPeerConnection({ iceServers: [] });
  state.pc = pc;
  const audioTrack = state.stream.getAudioTracks()[0];
  pc.addTransceiver(audioTrack, { direction: "sendrecv", streams: [state.stream] });
  const videoTrack = state.stream.getVideoTracks()[0];
  if (videoTrack) pc.addTransceiver(videoTrack, { direction: "sendrecv", streams: [state.stream] });
  else pc.addTransceiver("video", { direction: "recvonly" });
  pc.ontrack = (e) => onRemoteTrack(e.track);
  pc.onconnectionstatechange = () => onConnectionState(pc);
  await pc.setLocalDescription(await pc.createOffer());
  await iceGathered(pc, 2000);
  const response = await fetch("/offer", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp, name: $("name").value }),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(`The edge refused the connection (${response.status}): ` +
      (answer.error || response.statusText));
  }
  state.peer = answer.peer;
  state.participant = answer.participant;
  await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  openFeed();
}

function iceGathered(pc, timeoutMs) {
  // One offer/answer, no trickle: wait for the candidates (quick on a LAN).
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs);
  });
}

function onRemoteTrack(track) {
  const stream = new MediaStream([track]);
  if (track.kind === "audio") {
    $("remote-audio").srcObject = stream; // Chrome feeds WebAudio only from a playing element
    $("remote-audio").play().catch(() => {});
    tap("agent", stream);
  } else {
    const video = $("remote-video");
    video.srcObject = stream;
    video.onresize = () => { $("remote-figure").hidden = !(video.videoWidth > 0); };
  }
}

function onConnectionState(pc) {
  if (pc !== state.pc) return;
  const s = pc.connectionState;
  if (s === "connected") {
    state.connected = true;
    setStatus("connected", "live");
    $("hangup").disabled = false;
    $("mute").disabled = false;
  } else if (s === "failed") {
    fail("The connection to the edge failed (ICE): the browser and the edge could not " +
      "reach each other. On another machine, serve the page over https and check that " +
      "UDP between the two is allowed.");
  } else if (s === "disconnected") {
    setStatus("reconnecting…", "busy");
  }
}

function fail(message) {
  banner(message);
  teardown();
  setStatus("not connected", "bad");
}

function teardown() {
  state.connected = false;
  if (state.pc) { state.pc.close(); state.pc = null; }
  if (state.stream) { state.stream.getTracks().forEach((t) => t.stop()); state.stream = null; }
  $("connect").disabled = false;
  $("hangup").disabled = true;
  $("mute").disabled = true;
  $("save").disabled = state.recording.length === 0;
}

// Opened through a session server's GET /call, the page ends its session when the
// call ends (?end=<the session's close URL>): one session per peer.
const endSession = new URLSearchParams(window.location.search).get("end");

function closeSession() {
  if (endSession) navigator.sendBeacon(endSession);
}

async function hangUp() {
  const peer = state.peer;
  teardown();
  setStatus("not connected", "idle");
  if (peer) await fetch(`/peers/${peer}/hangup`, { method: "POST" }).catch(() => {});
  closeSession();
}

function toggleMute() {
  state.muted = !state.muted;
  if (state.stream) state.stream.getAudioTracks().forEach((t) => { t.enabled = !state.muted; });
  $("mute").textContent = state.muted ? "Unmute" : "Mute";
}

async function switchDevice(kind) {
  if (!state.pc || !state.stream) return;
  const constraints = kind === "audio" ? { audio: audioConstraints() } : { video: videoConstraints() };
  if (kind === "video" && !constraints.video) return;
  try {
    const fresh = await navigator.mediaDevices.getUserMedia(constraints);
    const track = kind === "audio" ? fresh.getAudioTracks()[0] : fresh.getVideoTracks()[0];
    const sender = state.pc.getSenders().find((s) => s.track && s.track.kind === kind);
    if (sender) await sender.replaceTrack(track);
    state.stream.getTracks().filter((t) => t.kind === kind).forEach((t) => {
      state.stream.removeTrack(t); t.stop();
    });
    state.stream.addTrack(track);
    if (kind === "audio") tap("mic", state.stream);
  } catch (err) {
    banner(permissionMessage(err, kind === "audio" ? "microphone" : "camera"), "warn");
  }
}

// -- the live feed --------------------------------------------------------------------------
function openFeed() {
  if (state.ws) state.ws.close();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws?peer=${state.peer || ""}`);
  state.ws = ws;
  ws.onmessage = (e) => onFeed(JSON.parse(e.data));
  ws.onclose = () => {
    if (state.ws !== ws) return;
    state.ws = null;
    if (state.connected) fail("Lost the edge: the pipeline stopped or the edge restarted.");
    setTimeout(watchOnly, 2000);
  };
}

function watchOnly() {
  // Not in a call: still show the pipeline and the conversation.
  if (!state.ws && !state.pc) { state.peer = null; openFeed(); }
}

function onFeed(m) {
  switch (m.type) {
    case "hello":
      // The conversation so far follows (replayed): start the views afresh.
      resetViews();
      state.config = m;
      $("title").textContent = m.title;
      document.title = m.title;
      showPeers(m.peers || []);
      break;
    case "live": state.live = true; break;
    case "user": onUser(m); break;
    case "agent": onAgent(m); break;
    case "heard": onHeard(m); break;
    case "latency": onLatency(m); break;
    case "pipeline": showPipeline(m); break;
    case "actor": flashActor(m); break;
    case "epoch": state.epoch = m.epoch; break;
    case "peers": showPeers(m.peers || []); break;
    case "state": showProcessorState(m); break;
    default: break;
  }
}

function resetViews() {
  state.live = false;
  state.lines.length = 0;
  state.latencies.length = 0;
  state.pendingEar.length = 0;
  live.user.clear();
  live.agent.clear();
  $("transcript").replaceChildren();
  $("latency").replaceChildren();
}

// -- transcript -------------------------------------------------------------------------------
const live = { user: new Map(), agent: new Map() };

function bubble(kind, key, who) {
  let item = live[kind].get(key);
  if (!item) {
    const li = document.createElement("li");
    li.className = kind;
    li.innerHTML = '<span class="who"></span><span class="text"></span>';
    li.querySelector(".who").textContent = who;
    $("transcript").append(li);
    item = { li, text: "", line: { kind, who, text: "", final: false, key } };
    state.lines.push(item.line);
    live[kind].set(key, item);
  }
  return item;
}

function render(item) {
  item.li.querySelector(".text").textContent = item.text;
  item.line.text = item.text;
  const list = $("transcript");
  list.scrollTop = list.scrollHeight;
}

function onUser(m) {
  const key = m.participant || "user";
  const mine = state.participant && state.participant.user_id === m.participant;
  const item = bubble("user", key, mine ? "you" : (m.participant || "user"));
  item.text = m.text;
  item.li.classList.toggle("partial", !m.final);
  if (m.final) {
    item.line.final = true;
    live.user.delete(key); // the next words start a new bubble
  }
  render(item);
}

function onAgent(m) {
  const item = bubble("agent", m.response_id || "reply", "agent");
  item.text = m.final ? (m.text || item.text) : item.text + m.text;
  if (m.final) item.line.final = true;
  render(item);
}

function onHeard(m) {
  state.playing = m.playing;
  state.lastHeard = m;
  const item = live.agent.get(m.response_id || "reply");
  if (m.playing && !m.interrupted && state.live) {
    state.pendingEar.push({ since: performance.timeOrigin + performance.now(), id: m.response_id });
  }
  if (!item || !m.interrupted) return;
  const heard = m.heard_text || "";
  const text = item.text;
  const cut = heard && text.startsWith(heard) ? heard.length : 0;
  const el = item.li.querySelector(".text");
  el.textContent = text.slice(0, cut);
  const rest = document.createElement("span");
  rest.className = "unheard";
  rest.textContent = text.slice(cut);
  el.append(rest);
  const note = document.createElement("span");
  note.className = "note";
  note.textContent = heard ? "interrupted: you heard up to here" : "interrupted before you heard it";
  item.li.append(note);
  item.line.interrupted = true;
  item.line.heard = heard;
}

// -- latency ----------------------------------------------------------------------------------
function legend() {
  $("latency-legend").innerHTML = SEGMENTS.map(
    ([k, label]) => `<span><i class="s-${k}"></i>${label}</span>`).join("");
}

function onLatency(m) {
  const turn = { ...m, segments_ms: { ...m.segments_ms } };
  state.latencies.push(turn);
  const li = document.createElement("li");
  li.innerHTML = '<div class="label"></div><div class="bar"></div>';
  turn.li = li;
  drawTurn(turn);
  $("latency").prepend(li);
  while ($("latency").children.length > 8) $("latency").lastChild.remove();
}

function finishEar(item, ms) {
  const turn = state.latencies.find((t) => t.response_id === item.id);
  if (!turn || turn.segments_ms.to_ear !== undefined) return;
  turn.segments_ms.to_ear = ms;
  drawTurn(turn);
}

function drawTurn(turn) {
  const s = turn.segments_ms;
  const ear = s.to_ear !== undefined ? ` + to ear ~${Math.round(s.to_ear)}` : "";
  const parts = SEGMENTS.filter(([k]) => s[k] !== undefined && k !== "to_ear")
    .map(([k, label]) => `${label} ${Math.round(s[k])}`).join(" + ");
  turn.li.querySelector(".label").textContent =
    `${Math.round(turn.total_ms)} ms = ${parts}${ear}` + (turn.user_text ? `: "${turn.user_text}"` : "");
  const total = SEGMENTS.reduce((sum, [k]) => sum + Math.max(0, s[k] || 0), 0) || 1;
  turn.li.querySelector(".bar").replaceChildren(...SEGMENTS.filter(([k]) => (s[k] || 0) > 0)
    .map(([k, label]) => {
      const span = document.createElement("span");
      span.className = `s-${k}`;
      span.title = `${label} ${Math.round(s[k])} ms`;
      span.style.width = `${(100 * s[k]) / total}%`; // CSSOM: allowed by the page's CSP
      return span;
    }));
}

// -- processors (faces found, text read, ...) ----------------------------------------------
const processorStates = new Map();

function showProcessorState(m) {
  const s = m.summary || {};
  if (typeof s.detection_count === "number") state.faces = s.detection_count;
  const shown = Object.entries(s).filter(([k]) => !k.endsWith("_ms") && k !== "model_id")
    .map(([k, v]) => `${k.replace(/_/g, " ")} ${v}`).join(", ");
  processorStates.set(m.source, shown);
  $("processor-state").textContent = [...processorStates].map(([k, v]) => `(${k}: ${v})`)
    .join(" ");
}

// -- pipeline ---------------------------------------------------------------------------------
function showPipeline(m) {
  state.pipeline = m;
  $("pipeline-name").textContent = m.pipeline ? `${m.pipeline}, epoch ${m.epoch}` : "";
  const body = $("pipeline").tBodies[0];
  const rows = (m.instances || []).map((i) => {
    const tr = document.createElement("tr");
    tr.dataset.name = i.name;
    const cells = [i.name, i.state, i.restarts, i.drops,
      i.cpu_percent == null ? "" : `${Math.round(i.cpu_percent)}%`,
      i.loop_lag_ms == null ? "" : `${Math.round(i.loop_lag_ms)} ms`];
    cells.forEach((v, k) => {
      const td = document.createElement("td");
      td.textContent = v;
      if (k === 1) td.className = `state-${i.state}`;
      if (k >= 2) td.classList.add("num");
      if (k === 1 && i.reason) td.title = i.reason;
      tr.append(td);
    });
    return tr;
  });
  body.replaceChildren(...rows);
  const lat = m.latency;
  $("pipeline-summary").textContent = `${m.up}/${m.total} up, ${m.restarts} restarts, ` +
    `${m.drops} drops` + (m.services && m.services.length
      ? `; services: ${m.services.map((s) => `${s.name} ${s.state}`).join(", ")}` : "");
  $("latency-summary").textContent = lat
    ? `${lat.turns} turn(s): median ${Math.round(lat.median_ms)} ms, p90 ${Math.round(lat.p90_ms)} ms`
    : "";
}

function flashActor(m) {
  const row = [...$("pipeline").tBodies[0].rows].find((r) => r.dataset.name === m.name);
  if (!row) return;
  row.cells[1].textContent = m.state;
  row.cells[1].className = `state-${m.state}`;
  row.classList.add("flash");
  setTimeout(() => row.classList.remove("flash"), 1500);
}

function showPeers(peers) {
  state.peers = peers;
  $("peers").replaceChildren(...peers.map((p) => {
    const li = document.createElement("li");
    li.textContent = `${p.user_id} (${p.state}${p.camera ? ", camera" : ""})`;
    if (p.id === state.peer) li.className = "me";
    return li;
  }));
  if (!peers.length) $("peers").innerHTML = "<li>nobody is connected</li>";
}

// -- start ------------------------------------------------------------------------------------
$("connect").onclick = connect;
$("hangup").onclick = hangUp;
$("mute").onclick = toggleMute;
$("mic").onchange = () => switchDevice("audio");
$("camera").onchange = () => switchDevice("video");
$("save").onclick = () => {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(recordingWav());
  a.download = "agent.wav";
  a.click();
};
if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
  navigator.mediaDevices.addEventListener("devicechange", listDevices);
}
window.addEventListener("pagehide", () => {
  if (state.peer && state.pc) navigator.sendBeacon(`/peers/${state.peer}/hangup`);
  closeSession();
});
legend();
listDevices().catch(() => {});
fetch("/config").then((r) => r.json()).then((c) => { state.config = c; }).catch(() => {});
openFeed();
