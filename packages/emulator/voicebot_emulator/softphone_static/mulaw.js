// G.711 mu-law, the phone network's 8 kHz audio (what Twilio Media Streams carry).
const BIAS = 0x84;
const CLIP = 32635;

/** One int16 sample -> one mu-law byte. */
export function encodeSample(sample) {
  let s = Math.max(-32768, Math.min(32767, Math.round(sample)));
  const sign = s < 0 ? 0x80 : 0;
  if (sign) s = -s;
  s = Math.min(s, CLIP) + BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (s >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

/** One mu-law byte -> one int16 sample. */
export function decodeSample(byte) {
  const u = ~byte & 0xff;
  const magnitude = ((((u & 0x0f) << 3) + BIAS) << ((u >> 4) & 0x07)) - BIAS;
  return u & 0x80 ? -magnitude : magnitude;
}

/** mu-law byte -> float sample in [-1, 1). */
export const DECODE = Float32Array.from({ length: 256 }, (_, byte) => decodeSample(byte) / 32768);
