// Local stand-ins for the push services of the browser tests (no internet
// here):
//
//   - startGCM(): what Chromium talks to when a page calls
//     pushManager.subscribe(): the GCM check-in (protobuf) and registration
//     (form) endpoints, which Chromium takes from --gcm-checkin-url and
//     --gcm-registration-url. Without them subscribe() waits forever. It
//     records every registration (the VAPID key arrives as `sender`, an
//     unsubscribe as `delete=true`) and can hold registrations back (stall)
//     to act out an unreachable push service.
//   - startReceiver(): a Web Push endpoint that parleyd sends to (it needs
//     --push-allow-loopback: plain http on 127.0.0.1); it decrypts the RFC
//     8291 aes128gcm body with its own keys, so the test gets the exact
//     payload the server sends to browsers.
import http from 'node:http';
import crypto from 'node:crypto';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${server.address().port}`)));
}

function body(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** A protobuf AndroidCheckinResponse: stats_ok, android_id, security_token, settings_diff. */
function checkinResponse(androidId, securityToken) {
  const fixed64 = (tag, n) => { const b = Buffer.alloc(9); b[0] = tag; b.writeBigUInt64LE(n, 1); return b; };
  return Buffer.concat([Buffer.from([0x08, 0x01]), fixed64(0x39, androidId), fixed64(0x41, securityToken), Buffer.from([0x48, 0x00])]);
}

export async function startGCM() {
  const gcm = {
    registrations: [], // Web Push registrations: {form, token}
    deletions: [], // unsubscribes: {form}
    stall: false,
    held: [],
    /** Answer the registrations held back while stalled, and stop holding. */
    release() {
      this.stall = false;
      for (const answer of this.held.splice(0)) answer();
    },
    args: null,
    close: null,
  };
  const server = http.createServer(async (req, res) => {
    const data = await body(req);
    if (req.url.startsWith('/checkin')) {
      res.writeHead(200, { 'Content-Type': 'application/x-protobuf' });
      res.end(checkinResponse(4242424242424242n, 1717171717171717n));
      return;
    }
    if (!req.url.startsWith('/register')) { res.writeHead(404); res.end(); return; }
    const form = Object.fromEntries(new URLSearchParams(data.toString()));
    const webPush = String(form['X-subtype'] || '').startsWith('wp:');
    if (form.delete === 'true') {
      if (webPush) gcm.deletions.push({ form });
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end(`deleted=${form.app}`);
      return;
    }
    const token = `fake-${crypto.randomBytes(12).toString('hex')}`;
    const answer = () => {
      if (webPush) gcm.registrations.push({ form, token });
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end(`token=${token}`);
    };
    if (webPush && gcm.stall) gcm.held.push(answer);
    else answer();
  });
  const url = await listen(server);
  gcm.args = [`--gcm-checkin-url=${url}/checkin`, `--gcm-registration-url=${url}/register`,
    // The connection for incoming messages is not needed: pushes reach the
    // service worker through the DevTools protocol.
    '--gcm-mcs-endpoint=https://127.0.0.1:9'];
  gcm.close = () => { gcm.release(); server.closeAllConnections(); server.close(); };
  return gcm;
}

/** RFC 8291: decrypt one aes128gcm body for the user agent keys (ecdh, auth). */
export function decrypt(buf, ecdh, auth) {
  const salt = buf.subarray(0, 16);
  const rs = buf.readUInt32BE(16);
  const idlen = buf[20];
  const serverKey = buf.subarray(21, 21 + idlen);
  const ct = buf.subarray(21 + idlen);
  if (idlen !== 65) throw new Error(`keyid is ${idlen} bytes, not an uncompressed P-256 point`);
  if (ct.length > rs) throw new Error(`${ct.length} bytes in more than one record (rs ${rs})`);
  const secret = ecdh.computeSecret(serverKey);
  const info = Buffer.concat([Buffer.from('WebPush: info\0'), ecdh.getPublicKey(), serverKey]);
  const ikm = Buffer.from(crypto.hkdfSync('sha256', secret, auth, info, 32));
  const cek = Buffer.from(crypto.hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
  const nonce = Buffer.from(crypto.hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));
  const d = crypto.createDecipheriv('aes-128-gcm', cek, nonce);
  d.setAuthTag(ct.subarray(ct.length - 16));
  const plain = Buffer.concat([d.update(ct.subarray(0, ct.length - 16)), d.final()]);
  let end = plain.length - 1;
  while (end >= 0 && plain[end] === 0) end--; // padding
  if (plain[end] !== 2) throw new Error('no last-record delimiter');
  return plain.subarray(0, end);
}

export async function startReceiver() {
  const ecdh = crypto.createECDH('prime256v1');
  ecdh.generateKeys();
  const auth = crypto.randomBytes(16);
  const rx = {
    got: [], // {text, json, headers}
    errors: [],
    waiters: [],
    keys: { p256dh: b64url(ecdh.getPublicKey()), auth: b64url(auth) },
    endpoint: '',
    /** Wait until n payloads arrived; returns them all. */
    wait(n, timeout) {
      if (this.got.length >= n) return Promise.resolve(this.got.slice());
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for push ${n}; got ${JSON.stringify(this.got.map((g) => g.json))}, errors ${JSON.stringify(this.errors)}`)), timeout);
        this.waiters.push({ n, resolve: (v) => { clearTimeout(timer); resolve(v); } });
      });
    },
    close: null,
  };
  const server = http.createServer(async (req, res) => {
    const data = await body(req);
    try {
      if (req.method !== 'POST' || req.headers['content-encoding'] !== 'aes128gcm') throw new Error(`${req.method} with Content-Encoding ${req.headers['content-encoding']}`);
      const text = decrypt(data, ecdh, auth).toString('utf8');
      rx.got.push({ text, json: JSON.parse(text), headers: req.headers });
      res.writeHead(201);
      res.end();
    } catch (e) {
      rx.errors.push(String(e.message || e));
      res.writeHead(400);
      res.end();
    }
    for (const w of rx.waiters.splice(0)) {
      if (rx.got.length >= w.n) w.resolve(rx.got.slice());
      else rx.waiters.push(w);
    }
  });
  rx.endpoint = `${await listen(server)}/push/receiver`;
  rx.close = () => { server.closeAllConnections(); server.close(); };
  return rx;
}
