// Resumable uploads over tus 1.0 (/api/v1/uploads, see docs/protocol.md
// "Media"). A file is created with POST, sent in chunks with PATCH (XHR, for
// progress events), and each dropped connection resumes from the offset the
// server holds (HEAD). The PATCH that completes the upload names the media
// item; GET /api/v1/uploads/{id} then returns it with its thumbnail.

const BASE = '/api/v1/uploads';
const TUS = { 'Tus-Resumable': '1.0.0' };
const CHUNK = 8 * 1024 * 1024; // bytes per PATCH: progress is smooth anyway (XHR upload events)
const RETRIES = [500, 1500, 4000]; // automatic retries after a network failure, then "failed"

export class UploadError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status; // 0: the network failed
    this.code = code;
  }
}

export class AbortedError extends Error {
  constructor() { super('upload cancelled'); this.name = 'AbortError'; }
}

/** The message content_type that fits a file type: image, video, voice or file. */
export function kindOf(type) {
  if (/^image\//.test(type)) return 'image';
  if (/^video\//.test(type)) return 'video';
  if (/^audio\//.test(type)) return 'voice';
  return 'file';
}

function b64(s) {
  const bytes = new TextEncoder().encode(s);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/**
 * One file's upload. onProgress(sent, total) is called as bytes go out.
 * start() resolves with the media object ({media_id, content_type, size,
 * width?, height?, thumbnail?, name?, kind, ...}); after a failure, start()
 * again resumes where the server left off. cancel() aborts and deletes it.
 */
export class Upload {
  constructor(file, { token, onProgress = () => {} }) {
    this.file = file;
    this.token = token; // () => bearer token
    this.onProgress = onProgress;
    this.url = null; // /api/v1/uploads/{id} once created
    this.offset = 0;
    this.xhr = null;
    this.cancelled = false;
    this.running = null;
  }

  start() {
    if (!this.running) this.running = this.run().finally(() => { this.running = null; });
    return this.running;
  }

  async run() {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.once();
      } catch (e) {
        if (this.cancelled) throw new AbortedError();
        const transient = e.status === 0 || e.status >= 500 || e.status === 409;
        if (!transient || attempt >= RETRIES.length) throw e;
        await new Promise((r) => setTimeout(r, RETRIES[attempt]));
        if (this.cancelled) throw new AbortedError();
      }
    }
  }

  async once() {
    const size = this.file.size;
    if (!this.url) {
      const res = await this.request('POST', BASE, {
        'Upload-Length': String(size),
        'Upload-Metadata': `filename ${b64(this.file.name || 'file')}`,
      });
      this.url = res.getResponseHeader('Location');
      if (!this.url) throw new UploadError(500, 'upload', 'the server did not name the upload');
      this.offset = 0;
    } else {
      // Resume: ask how much the server holds (a cut PATCH still counts).
      const res = await this.request('HEAD', this.url);
      this.offset = Number(res.getResponseHeader('Upload-Offset')) || 0;
    }
    this.onProgress(this.offset, size);
    let mediaId = null;
    while (this.offset < size || mediaId === null) {
      const end = Math.min(this.offset + CHUNK, size);
      const res = await this.request('PATCH', this.url, {
        'Content-Type': 'application/offset+octet-stream',
        'Upload-Offset': String(this.offset),
      }, this.file.slice(this.offset, end));
      this.offset = Number(res.getResponseHeader('Upload-Offset')) || end;
      mediaId = res.getResponseHeader('Parley-Media-Id');
      this.onProgress(this.offset, size);
      if (this.offset >= size && !mediaId) throw new UploadError(500, 'upload', 'the server did not finish the upload');
    }
    const status = await this.request('GET', this.url, { Accept: 'application/json' });
    const body = JSON.parse(status.responseText || '{}');
    if (!body.media) throw new UploadError(500, 'upload', 'the upload has no media');
    return body.media;
  }

  /** One XHR with the bearer token and Tus-Resumable; resolves for 2xx. */
  request(method, url, headers = {}, body = null) {
    return new Promise((resolve, reject) => {
      if (this.cancelled) { reject(new AbortedError()); return; }
      const xhr = new XMLHttpRequest();
      this.xhr = xhr;
      xhr.open(method, url);
      xhr.setRequestHeader('Authorization', `Bearer ${this.token()}`);
      for (const [k, v] of Object.entries({ ...TUS, ...headers })) xhr.setRequestHeader(k, v);
      if (body && method === 'PATCH') {
        const base = this.offset;
        xhr.upload.onprogress = (ev) => this.onProgress(Math.min(base + ev.loaded, this.file.size), this.file.size);
      }
      xhr.onload = () => {
        this.xhr = null;
        if (xhr.status >= 200 && xhr.status < 300) { resolve(xhr); return; }
        let err = {};
        try { err = JSON.parse(xhr.responseText).error || {}; } catch { /* not JSON */ }
        reject(new UploadError(xhr.status, err.code || 'http', err.message || `HTTP ${xhr.status}`));
      };
      xhr.onerror = () => { this.xhr = null; reject(new UploadError(0, 'network', "Can't reach the server.")); };
      xhr.onabort = () => { this.xhr = null; reject(new AbortedError()); };
      xhr.send(body);
    });
  }

  /** Stop and delete what the server holds (best effort). */
  cancel() {
    if (this.cancelled) return;
    this.cancelled = true;
    if (this.xhr) this.xhr.abort();
    if (this.url) {
      fetch(this.url, { method: 'DELETE', headers: { ...TUS, Authorization: `Bearer ${this.token()}` } }).catch(() => {});
    }
  }
}
