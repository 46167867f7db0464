// The EchoStream page: microphone (AudioWorklet, 16 kHz float32) or a file streamed in real time
// to the stream endpoint; shows the transcript and translation as they grow, plays the speech.
"use strict";

const CAPTURE_RATE = 16000;
const $ = (id) => document.getElementById(id);
// messages received per type, for scripts and tests: window.echostreamCounts
const counts = (window.echostreamCounts = {});
const state = { info: null, ws: null, capture: null, media: null, sent: 0, done: 0, speech: 0,
                player: null, playAt: 0, speechHeader: null, fileTimer: null };

function status(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function appendWords(pane, text) {
  const box = $(pane);
  let p = box.lastElementChild;
  if (!p || p.dataset.closed) { p = document.createElement("p"); box.appendChild(p); }
  p.textContent = p.textContent ? p.textContent + " " + text : text;
}

function closeSentence() {
  for (const pane of ["source", "target"]) {
    const p = $(pane).lastElementChild;
    if (p) p.dataset.closed = "1";
  }
}

function readout() {
  $("sent-seconds").textContent = state.sent.toFixed(1);
  $("done-seconds").textContent = state.done.toFixed(1);
  $("lag").textContent = Math.max(0, state.sent - state.done).toFixed(2);
  $("speech-seconds").textContent = state.speech.toFixed(2);
}

function playSpeech(samples) {
  const rate = state.info.output_sample_rate;
  state.speech += samples.length / rate;
  readout();
  try {
    if (!state.player) { state.player = new AudioContext({ sampleRate: rate }); state.playAt = 0; }
    const buffer = state.player.createBuffer(1, samples.length, rate);
    buffer.copyToChannel(samples, 0);
    const source = state.player.createBufferSource();
    source.buffer = buffer;
    source.connect(state.player.destination);
    state.playAt = Math.max(state.playAt, state.player.currentTime + 0.05);
    source.start(state.playAt);
    state.playAt += buffer.duration;
  } catch (e) { /* no audio output here: the speech is still counted */ }
}

function onMessage(event) {
  const kind = typeof event.data === "string" ? JSON.parse(event.data).type : "speech_samples";
  counts[kind] = (counts[kind] || 0) + 1;
  if (typeof event.data !== "string") {
    playSpeech(new Float32Array(event.data));
    return;
  }
  const m = JSON.parse(event.data);
  if (m.source_seconds !== undefined) state.done = Math.max(state.done, m.source_seconds);
  switch (m.type) {
    case "ready": status(`streaming (stream ${m.stream_id}, ${m.chunk_ms} ms chunks)`); break;
    case "source_text": appendWords("source", m.text); break;
    case "target_text": appendWords("target", m.text); break;
    case "sentence_end": closeSentence(); break;
    case "progress":
      $("compute").textContent = m.compute_ms.toFixed(0);
      $("batch").textContent = m.batch > 1 ? `(batch of ${m.batch})` : "";
      break;
    case "finished": status("finished"); break;
    case "error": status(`error: ${m.message}`, true); break;
  }
  readout();
}

function connect(onOpen) {
  const url = new URL(state.info.stream_endpoint, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const token = $("token").value || new URLSearchParams(location.search).get("token");
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  ws.onmessage = onMessage;
  ws.onopen = () => {
    const start = { type: "start", sample_rate: CAPTURE_RATE, format: "f32le", channels: 1,
                    chunk_ms: Number($("chunk").value) };
    if (token) start.token = token;
    ws.send(JSON.stringify(start));
    onOpen(ws);
  };
  ws.onclose = () => { if (state.ws === ws) stopCapture(false); };
  state.ws = ws;
  state.sent = state.done = 0;
  closeSentence();
}

function sendPcm(samples) {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  ws.send(samples.buffer);
  state.sent += samples.length / CAPTURE_RATE;
  readout();
}

function finishStream() {
  const ws = state.ws;
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "finish" }));
}

async function startMic() {
  const capture = new AudioContext({ sampleRate: CAPTURE_RATE });
  await capture.audioWorklet.addModule("/static/worklet.js");
  const media = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
  const node = new AudioWorkletNode(capture, "pcm-sender");
  capture.createMediaStreamSource(media).connect(node);
  node.connect(capture.destination);
  Object.assign(state, { capture, media });
  connect(() => { node.port.onmessage = (e) => sendPcm(e.data); });
  $("mic").textContent = "Stop";
  $("mic").classList.add("on");
}

function stopCapture(finish) {
  if (finish) finishStream();
  if (state.media) state.media.getTracks().forEach((t) => t.stop());
  if (state.capture) state.capture.close();
  if (state.fileTimer) clearTimeout(state.fileTimer);
  Object.assign(state, { media: null, capture: null, fileTimer: null });
  $("mic").textContent = "Start microphone";
  $("mic").classList.remove("on");
}

async function streamFile() {
  const file = $("file").files[0];
  if (!file) { status("choose a file first", true); return; }
  const decoder = new OfflineAudioContext(1, 1, CAPTURE_RATE);
  const audio = await decoder.decodeAudioData(await file.arrayBuffer());
  const samples = audio.getChannelData(0);  // resampled to 16 kHz by the browser
  const piece = CAPTURE_RATE / 10;
  connect(() => {
    let at = 0;
    const t0 = performance.now();
    const next = () => {
      if (at >= samples.length) { finishStream(); return; }
      sendPcm(samples.slice(at, at + piece));
      at += piece;
      // real-time pace: piece k leaves at k * 100 ms after the first
      state.fileTimer = setTimeout(next, Math.max(0, t0 + (at / CAPTURE_RATE) * 1000 - performance.now()));
    };
    next();
  });
}

async function init() {
  try {
    state.info = await (await fetch("/api/info")).json();
  } catch (e) {
    status(`cannot reach the server: ${e}`, true);
    return;
  }
  const info = state.info;
  for (const ms of info.chunk_sizes) {
    const option = new Option(String(ms), String(ms), false, ms === info.default_chunk_ms);
    $("chunk").add(option);
  }
  $("system").textContent = `output: ${info.output}` +
    (info.output_sample_rate ? ` at ${info.output_sample_rate} Hz` : "") + ` · ${info.open_streams} streams open`;
  $("token-label").hidden = !info.token_required;
  $("mic").disabled = false;
  $("play-file").disabled = false;
  $("mic").onclick = () => {
    if (state.media) stopCapture(true);
    else startMic().catch((e) => status(`microphone: ${e}`, true));
  };
  $("play-file").onclick = () => streamFile().catch((e) => status(`file: ${e}`, true));
}

init();
