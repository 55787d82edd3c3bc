// Attachments: a file becomes an outbox entry at once (shown as pending with
// a local preview), is uploaded with tus (upload.js), and once the server
// named its media the entry is sent as a message of content_type image,
// video, voice or file with its media_id. Cancel deletes the upload and the
// entry: nothing is sent. A failed upload can be retried while the page
// still holds the file; after a reload only Delete remains.
import { Upload, AbortedError, kindOf } from './upload.js';

const PROGRESS_EVERY = 80; // ms between progress events per upload

export class Attachments {
  constructor(client) {
    this.client = client;
    this.jobs = new Map(); // message_id → {file, preview, upload, lastEmit}
    this.local = new Map(); // media_id → blob: URL of a file this page sent (shown without a download)
    // Uploads do not survive a reload (the page no longer has the file).
    for (const e of client.outbox.items) {
      if (e.state === 'uploading') {
        client.outbox.fail(e.message_id, { status: 0, code: 'upload_lost', upload: true, message: 'The upload was interrupted.' });
      }
    }
  }

  /** The URL of a media item for <img>, <video>, <audio> and downloads. */
  url(mediaId) {
    if (!mediaId) return null;
    return `/api/v1/media/${encodeURIComponent(mediaId)}?token=${encodeURIComponent(this.client.session.token)}`;
  }

  /** A local blob: URL for a message's media, if this page has the bytes. */
  localURL(m) {
    if (m.media_id && this.local.has(m.media_id)) return this.local.get(m.media_id);
    const job = m.client_message_id && this.jobs.get(m.client_message_id);
    return job ? job.preview : null;
  }

  /** Send a file to a conversation; returns the outbox entry. */
  send(convId, file, caption = '') {
    const c = this.client;
    const type = file.type || 'application/octet-stream';
    const kind = kindOf(type);
    const e = c.outbox.add(convId, caption, kind, {
      state: 'uploading',
      media: { content_type: type, size: file.size, name: file.name || '' },
      progress: 0,
    });
    const preview = kind === 'file' ? null : URL.createObjectURL(file);
    this.jobs.set(e.message_id, { file, preview, upload: null, lastEmit: 0 });
    if (kind === 'image' && preview) this.measure(e, preview);
    this.start(e);
    c.changed('list', `conv:${convId}`);
    return e;
  }

  /** Reserve the right box for a picture while it uploads. */
  measure(e, src) {
    const img = new Image();
    img.onload = () => {
      if (!img.naturalWidth || e.media.width) return;
      e.media.width = img.naturalWidth;
      e.media.height = img.naturalHeight;
      this.client.changed(`conv:${e.conversation_id}`);
    };
    img.src = src;
  }

  canRetry(e) { return this.jobs.has(e.message_id); }

  start(e) {
    const c = this.client;
    const job = this.jobs.get(e.message_id);
    if (!job) return;
    if (!job.upload) {
      job.upload = new Upload(job.file, {
        token: () => c.session.token,
        onProgress: (sent, total) => this.progress(e, total ? sent / total : 1),
      });
    }
    if (e.state !== 'uploading') {
      e.state = 'uploading';
      e.error = null;
      c.outbox.save();
    }
    job.upload.start().then((media) => {
      if (!c.outbox.get(e.message_id)) return; // deleted meanwhile
      if (job.preview) this.local.set(media.media_id, job.preview);
      this.jobs.delete(e.message_id);
      e.media_id = media.media_id;
      e.content_type = media.kind || kindOf(media.content_type);
      e.media = {
        content_type: media.content_type, size: media.size, name: media.name || e.media.name,
        width: media.width, height: media.height, duration_ms: media.duration_ms, thumbnail: media.thumbnail,
      };
      e.state = 'pending';
      e.progress = 1;
      c.outbox.save();
      c.sendEntry(e);
      c.changed('list', `conv:${e.conversation_id}`);
    }, (err) => {
      if (err instanceof AbortedError || !c.outbox.get(e.message_id)) return;
      if (err.status === 401) c.api.me().catch(() => {}); // ends the session through the API's 401 path
      c.outbox.fail(e.message_id, { status: err.status, code: err.code, message: err.message, upload: true });
      c.changed('list', `conv:${e.conversation_id}`);
    });
  }

  progress(e, fraction) {
    e.progress = fraction;
    const job = this.jobs.get(e.message_id);
    const now = Date.now();
    if (job && fraction < 1 && now - job.lastEmit < PROGRESS_EVERY) return;
    if (job) job.lastEmit = now;
    // Views update the progress in place (no re-render of the message).
    this.client.dispatchEvent(new CustomEvent('progress', { detail: { id: e.message_id, conv: e.conversation_id, fraction } }));
  }

  /** Stop an upload (the entry is removed by the caller). */
  cancel(messageId) {
    const job = this.jobs.get(messageId);
    if (!job) return;
    this.jobs.delete(messageId);
    if (job.upload) job.upload.cancel();
    if (job.preview) URL.revokeObjectURL(job.preview);
  }
}
