// Microphone -> phone audio: low-pass, decimate from the context rate to 8 kHz, mu-law encode, and
// post 160-byte (20 ms) frames to the page, which sends them on the softphone WebSocket.
import { encodeSample } from "./mulaw.js";

const PHONE_RATE = 8000;
const FRAME_BYTES = 160;
const CUTOFF_HZ = 3400; // the phone band: what survives above it would alias at 8 kHz

/** Second-order Butterworth low-pass (RBJ biquad) coefficients. */
function lowPass(rate, cutoff) {
  const w = (2 * Math.PI * cutoff) / rate;
  const alpha = Math.sin(w) / Math.SQRT2;
  const cos = Math.cos(w);
  const a0 = 1 + alpha;
  const b1 = (1 - cos) / a0;
  return { b0: b1 / 2, b1, b2: b1 / 2, a1: (-2 * cos) / a0, a2: (1 - alpha) / a0 };
}

class MicEncoder extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / PHONE_RATE; // input samples per phone sample (6 at 48 kHz)
    this.filter = lowPass(sampleRate, Math.min(CUTOFF_HZ, sampleRate / 2.2));
    this.x1 = this.x2 = this.y1 = this.y2 = 0;
    this.phase = 0; // input samples since the last phone sample
    this.sum = 0; // of the filtered samples since then: averaging them is a second, gentler low-pass
    this.count = 0;
    this.frame = new Uint8Array(FRAME_BYTES);
    this.filled = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true; // no microphone (yet)
    const f = this.filter;
    for (let i = 0; i < channel.length; i++) {
      const x = channel[i];
      const y = f.b0 * x + f.b1 * this.x1 + f.b2 * this.x2 - f.a1 * this.y1 - f.a2 * this.y2;
      this.x2 = this.x1; this.x1 = x; this.y2 = this.y1; this.y1 = y;
      this.sum += y;
      this.count++;
      this.phase += 1;
      if (this.phase >= this.step) {
        this.phase -= this.step;
        this.frame[this.filled++] = encodeSample((this.sum / this.count) * 32767);
        this.sum = 0;
        this.count = 0;
        if (this.filled === FRAME_BYTES) {
          const frame = this.frame;
          this.port.postMessage(frame.buffer, [frame.buffer]);
          this.frame = new Uint8Array(FRAME_BYTES);
          this.filled = 0;
        }
      }
    }
    return true;
  }
}

registerProcessor("mic-encoder", MicEncoder);
