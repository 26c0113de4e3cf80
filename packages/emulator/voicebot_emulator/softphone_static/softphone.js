// The softphone page: dials over the emulator's softphone WebSocket (/emulator/softphone/ws), sends
// the microphone as 8 kHz mu-law frames, plays the bot's audio, and exposes its state as
// window.softphone for automated browser tests.

const $ = (id) => document.getElementById(id);
const STATIC = new URL(".", import.meta.url); // the worklet modules sit next to this file
const MAX_LOG = 200;

const softphone = {
  state: "idle", // idle | dialing | ringing | in-progress | ended
  callSid: null,
  botFrames: 0, // binary bot audio messages received (20 ms each)
  botAudioMs: 0,
  firstBotAudioAt: null, // Date.now() of the first bot audio
  clears: 0,
  micFrames: 0, // 20 ms caller frames sent
  dtmfSent: 0,
  events: [], // {t: Date.now(), kind, ...} for every message and local action
};
window.softphone = softphone;

let audioContext = null;
let player = null; // AudioWorkletNode playing the bot
let mic = null; // {stream, source, encoder}
let socket = null;

// -- log and state ----------------------------------------------------------------------------------
function record(kind, detail = {}) {
  const event = { t: Date.now(), kind, ...detail };
  softphone.events.push(event);
  const item = document.createElement("li");
  if (kind === "error") item.className = "error";
  const text = Object.entries(detail).map(([k, v]) => `${k}=${v}`).join(" ");
  item.textContent = `${new Date(event.t).toLocaleTimeString()} ${kind} ${text}`;
  const log = $("log");
  log.append(item);
  while (log.children.length > MAX_LOG) log.firstElementChild.remove();
  log.scrollTop = log.scrollHeight;
}

function setState(state, label = state) {
  softphone.state = state;
  const status = $("status");
  status.dataset.state = state;
  status.textContent = label;
  const live = state === "dialing" || state === "ringing" || state === "in-progress";
  $("call").disabled = live;
  $("hangup").disabled = !live;
}

const TERMINAL = new Set(["completed", "busy", "failed", "no-answer", "canceled"]);

// -- audio ------------------------------------------------------------------------------------------
async function startAudio(context) {
  if (!player) {
    await context.audioWorklet.addModule(new URL("player-worklet.js", STATIC));
    await context.audioWorklet.addModule(new URL("mic-worklet.js", STATIC));
    player = new AudioWorkletNode(context, "bot-player", { numberOfInputs: 0, outputChannelCount: [1] });
    player.connect(context.destination);
  }
  player.port.postMessage({ type: "clear" }); // nothing left from a previous call
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: false },
    });
    const source = context.createMediaStreamSource(stream);
    const encoder = new AudioWorkletNode(context, "mic-encoder", { numberOfOutputs: 1 });
    encoder.port.onmessage = (event) => sendMicFrame(event.data);
    source.connect(encoder);
    encoder.connect(context.destination); // keeps it pulled; it outputs silence
    mic = { stream, source, encoder };
    record("microphone", { rate: context.sampleRate });
  } catch (error) {
    record("error", { message: `no microphone (${error.name}): listening only` });
  }
}

function stopMicrophone() {
  if (!mic) return;
  mic.stream.getTracks().forEach((track) => track.stop());
  mic.source.disconnect();
  mic.encoder.disconnect();
  mic.encoder.port.onmessage = null;
  mic = null;
}

function sendMicFrame(frame) {
  if (socket && socket.readyState === WebSocket.OPEN && softphone.callSid && softphone.state !== "ended") {
    socket.send(frame);
    softphone.micFrames++;
  }
}

function playBotFrame(buffer) {
  softphone.botFrames++;
  softphone.botAudioMs += buffer.byteLength / 8;
  if (softphone.firstBotAudioAt === null) {
    softphone.firstBotAudioAt = Date.now();
    record("bot-audio");
  }
  player.port.postMessage(buffer, [buffer]);
}

// -- the call -----------------------------------------------------------------------------------------
function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify(message));
    return true;
  }
  return false;
}

async function call() {
  if (socket) return;
  // created and resumed inside the click: browsers only start audio on a user gesture
  audioContext = audioContext || new AudioContext();
  const resumed = audioContext.resume();
  Object.assign(softphone, {
    callSid: null, botFrames: 0, botAudioMs: 0, firstBotAudioAt: null, clears: 0, micFrames: 0, dtmfSent: 0,
  });
  $("call-sid").textContent = "";
  setState("dialing");
  const dial = { type: "dial", to: $("to").value.trim(), from: $("from").value.trim(), agent_profile: $("profile").value };
  record("dial", { to: dial.to, from: dial.from, profile: dial.agent_profile || "(number's)" });
  await resumed;
  await startAudio(audioContext);

  const url = new URL("/emulator/softphone/ws", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  socket.onopen = () => socket.send(JSON.stringify(dial));
  socket.onmessage = (event) => {
    if (typeof event.data === "string") onMessage(JSON.parse(event.data));
    else playBotFrame(event.data);
  };
  socket.onclose = (event) => {
    socket = null;
    stopMicrophone();
    if (softphone.state !== "ended") {
      record("closed", { code: event.code });
      setState("ended", softphone.callSid ? "ended" : "not connected");
    }
  };
}

function onMessage(message) {
  switch (message.type) {
    case "call":
      softphone.callSid = message.call_sid;
      $("call-sid").textContent = message.call_sid;
      record("call", { sid: message.call_sid });
      break;
    case "status":
      record("status", { status: message.status });
      if (TERMINAL.has(message.status)) setState("ended", message.status);
      else setState(message.status);
      break;
    case "clear":
      softphone.clears++;
      player.port.postMessage({ type: "clear" });
      record("clear");
      break;
    case "ended":
      record("ended", { status: message.status, reason: message.reason });
      setState("ended", `${message.status} (${message.reason})`);
      stopMicrophone();
      break;
    case "error":
      record("error", { message: message.message });
      if (!softphone.callSid) setState("ended", "not connected"); // the dial was refused
      if (!softphone.callSid && socket) socket.close();
      break;
    default:
      record("unknown", { message: JSON.stringify(message) });
  }
}

function hangUp() {
  record("hangup");
  if (!send({ type: "hangup" }) && socket) socket.close();
}

function pressKey(digit) {
  if (send({ type: "dtmf", digit })) {
    softphone.dtmfSent++;
    record("dtmf", { digit });
  }
}

// -- page ------------------------------------------------------------------------------------------------
async function loadConfig() {
  try {
    const response = await fetch("/emulator/softphone/config");
    const config = await response.json();
    for (const number of config.numbers) $("numbers").append(new Option(number, number));
    if (!$("to").value) $("to").value = config.default_to || "";
    if (!$("from").value) $("from").value = config.default_from;
    for (const name of config.agent_profiles) $("profile").append(new Option(name, name));
  } catch (error) {
    record("error", { message: `could not load the softphone settings: ${error}` });
  }
}

$("call").addEventListener("click", (event) => {
  event.preventDefault();
  call().catch((error) => {
    record("error", { message: String(error) });
    setState("ended", "failed to start");
  });
});
$("dial").addEventListener("submit", (event) => {
  event.preventDefault();
  if (!$("call").disabled) $("call").click();
});
$("hangup").addEventListener("click", hangUp);
for (const key of document.querySelectorAll("[data-digit]")) {
  key.addEventListener("click", () => pressKey(key.dataset.digit));
}
setState("idle");
loadConfig();
