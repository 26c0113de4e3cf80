// Bot audio -> speakers: a small FIFO of 8 kHz samples (mu-law frames decoded as they arrive),
// upsampled to the context rate by linear interpolation. {type: "clear"} empties the FIFO, as the
// phone drops the cleared audio; an underrun waits for a little audio again before resuming.
import { DECODE } from "./mulaw.js";

const PHONE_RATE = 8000;
const CAPACITY = PHONE_RATE * 2; // 2 s; beyond it the oldest audio goes, so latency cannot grow
const PREBUFFER = PHONE_RATE * 0.06; // 60 ms of audio before (re)starting: rides out network jitter

class BotPlayer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.fifo = new Float32Array(CAPACITY);
    this.read = 0;
    this.size = 0;
    this.frac = 0; // position between fifo[read] and fifo[read + 1]
    this.step = PHONE_RATE / sampleRate;
    this.playing = false;
    this.port.onmessage = (event) => this.receive(event.data);
  }

  receive(data) {
    if (data && data.type === "clear") {
      this.read = this.size = this.frac = 0;
      this.playing = false;
      return;
    }
    const bytes = new Uint8Array(data);
    for (let i = 0; i < bytes.length; i++) {
      if (this.size === CAPACITY) { this.read = (this.read + 1) % CAPACITY; this.size--; }
      this.fifo[(this.read + this.size) % CAPACITY] = DECODE[bytes[i]];
      this.size++;
    }
  }

  process(_, outputs) {
    const output = outputs[0];
    const out = output[0];
    if (!this.playing && this.size >= PREBUFFER) this.playing = true;
    for (let n = 0; n < out.length; n++) {
      if (!this.playing || this.size < 2) {
        this.playing = false;
        out[n] = 0;
        continue;
      }
      const a = this.fifo[this.read];
      const b = this.fifo[(this.read + 1) % CAPACITY];
      out[n] = a + (b - a) * this.frac;
      this.frac += this.step;
      while (this.frac >= 1) {
        this.frac -= 1;
        this.read = (this.read + 1) % CAPACITY;
        this.size--;
      }
    }
    for (let c = 1; c < output.length; c++) output[c].set(out);
    return true;
  }
}

registerProcessor("bot-player", BotPlayer);
