// A minimal PNG encoder (RGB, 8 bits, zlib from node) for the browser tests
// and screenshots: pictures are made here, none are checked in.
import { deflateSync } from 'node:zlib';

const CRC = new Int32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});

function crc32(buf) {
  let c = -1;
  for (const b of buf) c = CRC[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

/** makePNG(w, h, (x, y) => [r, g, b]) → Buffer */
export function makePNG(w, h, pixel) {
  const raw = Buffer.alloc((w * 3 + 1) * h);
  let i = 0;
  for (let y = 0; y < h; y++) {
    raw[i++] = 0; // filter: none
    for (let x = 0; x < w; x++) {
      const [r, g, b] = pixel(x, y);
      raw[i++] = r; raw[i++] = g; raw[i++] = b;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level: 6 })), chunk('IEND', Buffer.alloc(0)),
  ]);
}

const clamp = (v) => Math.max(0, Math.min(255, Math.round(v)));
const mix = (a, b, t) => a.map((v, i) => v + (b[i] - v) * t);

const PALETTES = {
  dusk: { top: [58, 72, 140], mid: [236, 132, 120], low: [250, 200, 140], glow: [255, 226, 170], far: [[112, 104, 150], [92, 88, 134]], near: [[46, 58, 88], [30, 38, 60]], water: [40, 52, 90] },
  day: { top: [70, 140, 210], mid: [140, 195, 235], low: [210, 232, 240], glow: [255, 250, 225], far: [[120, 160, 170], [100, 140, 150]], near: [[46, 110, 84], [30, 80, 60]], water: [30, 90, 110] },
};

/**
 * A landscape that reads as a photo at a glance: a sky with a sun, two
 * mountain ranges and a lake reflecting them (palette 'dusk' or 'day').
 * Deterministic.
 */
export function landscapePNG(w = 1200, h = 800, palette = 'dusk') {
  const P = PALETTES[palette];
  const horizon = h * 0.66;
  const ridge = (x, f, a, base) => base - a * (0.55 * Math.sin(x * f) + 0.3 * Math.sin(x * f * 2.7 + 1.3) + 0.15 * Math.sin(x * f * 6.1 + 0.4));
  const far = (x) => ridge(x, 0.006, h * 0.09, h * 0.46);
  const near = (x) => ridge(x + 400, 0.011, h * 0.07, h * 0.58);
  const sun = [w * 0.7, h * 0.36, h * 0.07];
  const sky = (x, y) => {
    const t = y / horizon;
    let c = t < 0.55 ? mix(P.top, P.mid, t / 0.55) : mix(P.mid, P.low, (t - 0.55) / 0.45);
    const d = Math.hypot(x - sun[0], y - sun[1]);
    if (d < sun[2]) c = [255, 240, 205];
    else c = mix(c, P.glow, Math.max(0, 1 - (d - sun[2]) / (h * 0.35)) * 0.55);
    return c;
  };
  const land = (x, y) => {
    if (y >= near(x)) return mix(P.near[0], P.near[1], (y - near(x)) / (horizon - near(x) + 1));
    if (y >= far(x)) return mix(P.far[0], P.far[1], (y - far(x)) / (h * 0.2));
    return sky(x, y);
  };
  return makePNG(w, h, (x, y) => {
    let c;
    if (y < horizon) c = land(x, y);
    else {
      const my = 2 * horizon - y; // the mirrored point, rippled
      c = mix(land(x + 3 * Math.sin(y * 0.35), my), P.water, 0.35 + 0.4 * (y - horizon) / (h - horizon));
    }
    let n = Math.imul(x, 374761393) + Math.imul(y, 668265263); // a little grain
    n = Math.imul(n ^ (n >>> 13), 1274126177);
    n = ((n ^ (n >>> 16)) >>> 0) % 7;
    return c.map((v) => clamp(v + n - 3));
  });
}
