// vod-ingest upload page: asks the API for an upload address and credential, then sends the file
// straight to OSS with ali-oss (multipart, resumable across page reloads).
//
// Machine-readable state for tests, on <body>: data-state (idle|uploading|resuming|done|error),
// data-job-id, data-media-id, data-progress (0..1), data-resumed ("true" after a resume),
// data-resumed-parts (parts already stored when a resume started), data-error-code.
'use strict';

(() => {
  const KEY_STORAGE = 'vod-ingest.api-key';
  const UPLOAD_STORAGE = 'vod-ingest.pending-upload';
  const PART_SIZE = 100 * 1024; // ali-oss's minimum part size
  const PARALLEL = 3;
  const RETRY_DELAYS_MS = [500, 1000, 2000, 4000];
  const EXPIRED_CODES = ['SecurityTokenExpired', 'InvalidAccessKeyId', 'InvalidSecurityToken'];

  const $ = (id) => document.getElementById(id);
  const form = $('upload-form');
  const keyInput = $('api-key');
  const kindSelect = $('kind');
  const businessField = $('business-type-field');
  const businessSelect = $('business-type');
  const fileInput = $('file');
  const button = $('upload');
  const bar = $('progress');
  const percent = $('percent');
  const statusLine = $('status');
  const result = $('result');
  const body = document.body;

  let busy = false;

  // ---- presentation -------------------------------------------------------------------------

  function setState(state) {
    body.dataset.state = state;
  }

  function setStatus(text, tone) {
    statusLine.textContent = text;
    statusLine.className = tone || '';
  }

  function setProgress(fraction) {
    const f = Math.max(0, Math.min(1, Number(fraction) || 0));
    bar.value = Math.round(f * 1000) / 10;
    percent.textContent = `${Math.floor(f * 100)}%`;
    body.dataset.progress = f.toFixed(3);
  }

  function showIds(jobId, mediaId) {
    $('job-id').textContent = jobId || '';
    $('media-id').textContent = mediaId || '';
    result.hidden = !jobId;
    if (jobId) body.dataset.jobId = jobId;
    else delete body.dataset.jobId;
    if (mediaId) body.dataset.mediaId = mediaId;
    else delete body.dataset.mediaId;
  }

  function showKind() {
    businessField.hidden = kindSelect.value !== 'attached_media';
  }

  // ---- API ----------------------------------------------------------------------------------

  // Own enumerable properties only: ali-oss copies a failed part's error field by field, so the
  // class and the message do not survive, these do.
  function apiError(status, code, detail, retryAfter) {
    const e = new Error(`${code}: ${detail}`);
    e.name = 'ApiError';
    e.apiError = true;
    e.status = status;
    e.code = code;
    e.detail = detail;
    if (retryAfter) e.retryAfter = retryAfter;
    return e;
  }

  async function api(path, payload) {
    const key = keyInput.value.trim();
    let res;
    try {
      res = await fetch(path, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${key}`,
          'Content-Type': 'application/json',
          Accept: 'application/json',
        },
        body: JSON.stringify(payload || {}),
      });
    } catch (e) {
      throw apiError(0, 'network_error', `could not reach the upload API (${e.message})`);
    }
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!res.ok) {
      const code = (data && data.code) || `http_${res.status}`;
      const detail = (data && data.message) || text.slice(0, 200) || res.statusText || 'request failed';
      throw apiError(res.status, code, detail, res.headers.get('Retry-After'));
    }
    if (!data || typeof data !== 'object') {
      throw apiError(res.status, 'bad_response', 'the upload API did not answer with JSON');
    }
    return data;
  }

  // UploadAddress / UploadAuth: Base64 of UTF-8 JSON, exactly as VOD returns them.
  function decodeBase64Json(value, what) {
    try {
      let b64 = String(value).trim().replace(/-/g, '+').replace(/_/g, '/');
      while (b64.length % 4) b64 += '=';
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    } catch (e) {
      throw apiError(0, 'bad_response', `${what} is not Base64 JSON (${e.message})`);
    }
  }

  function decodeJob(job) {
    const address = decodeBase64Json(job.upload_address, 'upload_address');
    const auth = decodeBase64Json(job.upload_auth, 'upload_auth');
    if (!address.Endpoint || !address.Bucket || !address.FileName) {
      throw apiError(0, 'bad_response', 'upload_address lacks Endpoint, Bucket or FileName');
    }
    if (!auth.AccessKeyId || !auth.AccessKeySecret || !auth.SecurityToken) {
      throw apiError(0, 'bad_response', 'upload_auth lacks AccessKeyId, AccessKeySecret or SecurityToken');
    }
    return { address, auth };
  }

  function refreshPath(jobId) {
    return `/v1/uploads/${encodeURIComponent(jobId)}/refresh`;
  }

  // ---- saved state (resume after reload) ------------------------------------------------------

  function loadSaved() {
    try {
      const s = JSON.parse(localStorage.getItem(UPLOAD_STORAGE) || 'null');
      return s && s.job_id && s.file ? s : null;
    } catch {
      return null;
    }
  }

  function save(record) {
    record.saved_at = new Date().toISOString();
    try {
      localStorage.setItem(UPLOAD_STORAGE, JSON.stringify(record));
    } catch {
      // Storage full or disabled: the upload goes on, it just cannot resume after a reload.
    }
  }

  function clearSaved() {
    localStorage.removeItem(UPLOAD_STORAGE);
  }

  function sameFile(saved, file) {
    return (
      saved.file.name === file.name &&
      saved.file.size === file.size &&
      saved.file.lastModified === file.lastModified
    );
  }

  // The checkpoint minus its `file` (a File cannot be stored; the user picks it again).
  function storableCheckpoint(cpt) {
    return {
      name: cpt.name,
      fileSize: cpt.fileSize,
      partSize: cpt.partSize,
      uploadId: cpt.uploadId,
      doneParts: cpt.doneParts.map((p) => ({ number: p.number, etag: p.etag })),
    };
  }

  function partCount(cpt) {
    return Math.ceil(cpt.fileSize / cpt.partSize);
  }

  // ---- OSS ------------------------------------------------------------------------------------

  function isLocalHost(hostname) {
    return (
      /^\d{1,3}(\.\d{1,3}){3}$/.test(hostname) || hostname.startsWith('[') || hostname === 'localhost'
    );
  }

  // How long a credential lives, from its own fields: Expiration (seconds) does not depend on
  // this machine's clock; ExpireUTCTime does. The shorter wins.
  function lifetimeMs(auth) {
    const candidates = [];
    const secs = Number(auth.Expiration);
    if (Number.isFinite(secs) && secs > 0) candidates.push(secs * 1000);
    const until = Date.parse(auth.ExpireUTCTime);
    if (Number.isFinite(until) && until > Date.now()) candidates.push(until - Date.now());
    return candidates.length ? Math.min(...candidates) : 3000 * 1000;
  }

  function newClient(address, auth, refreshSTSToken) {
    const endpoint = new URL(address.Endpoint);
    const life = lifetimeMs(auth);
    const options = {
      endpoint: address.Endpoint,
      bucket: address.Bucket,
      accessKeyId: auth.AccessKeyId,
      accessKeySecret: auth.AccessKeySecret,
      stsToken: auth.SecurityToken,
      secure: endpoint.protocol === 'https:',
      // A browser cannot set Host, so with an IP endpoint (the emulator) the bucket goes in the
      // path; real OSS endpoints are hostnames and get virtual-hosted requests.
      sldEnable: isLocalHost(endpoint.hostname),
      timeout: 120000,
      // Renew a bit before the credential expires: 1/5 of its life early, at most 5 minutes.
      refreshSTSTokenInterval: Math.max(1000, life - Math.min(5 * 60 * 1000, life / 5)),
    };
    if (auth.Region) options.region = auth.Region.startsWith('oss-') ? auth.Region : `oss-${auth.Region}`;
    if (refreshSTSToken) options.refreshSTSToken = refreshSTSToken;
    const client = new window.OSS(options);
    // ali-oss counts the interval from its first request; the credential's life began earlier.
    client.stsTokenFreshTime = new Date();
    return client;
  }

  function describe(e) {
    if (!e) return 'unknown_error: the upload failed';
    if (e.apiError) {
      const retry = e.retryAfter && !/try again/i.test(e.detail) ? ` (retry after ${e.retryAfter} s)` : '';
      return `${e.code}: ${e.detail}${retry}`;
    }
    const message = String(e.message || e)
      .split('\n')[0]
      .replace(/^Failed to upload some parts with error: /, '')
      .replace(/ -1 \(connected: .*$/, '');
    if (e.code === 'etag_hidden') return `etag_hidden: ${message}`;
    if (e.status === -1 || e.status === 0 || e.name === 'RequestError' || e.name === 'ConnectionTimeoutError') {
      return (
        `storage_unreachable: the browser could not talk to storage (${message}). ` +
        'Storage must allow this page\'s origin (CORS) and expose the ETag header.'
      );
    }
    if (e.code) return `${e.code}: ${message}${e.requestId ? ` (request ${e.requestId})` : ''}`;
    return `upload_failed: ${message}`;
  }

  // ---- the upload -----------------------------------------------------------------------------

  async function upload(job, file, kind, businessType, checkpoint) {
    let { address, auth } = decodeJob(job);
    const videoId = job.video_id || (kind === 'video' ? job.media_id : undefined);
    const record = {
      job_id: job.job_id,
      media_id: job.media_id,
      video_id: videoId,
      kind,
      business_type: businessType,
      file: { name: file.name, size: file.size, lastModified: file.lastModified },
      upload_address: job.upload_address,
      checkpoint: checkpoint ? storableCheckpoint(checkpoint) : null,
    };
    save(record);
    showIds(job.job_id, job.media_id);

    // Only a video's credential can be renewed for the same address (RefreshUploadVideo); a
    // refresh for an image or attached media makes a new asset, which is no use mid-upload.
    const refresh =
      kind === 'video'
        ? async () => {
            const fresh = await api(refreshPath(job.job_id), videoId ? { video_id: videoId } : {});
            const next = decodeJob(fresh);
            if (next.address.Bucket !== address.Bucket || next.address.FileName !== address.FileName) {
              throw apiError(0, 'address_changed', 'the refreshed credential is for another object');
            }
            record.upload_address = fresh.upload_address;
            save(record);
            return {
              accessKeyId: next.auth.AccessKeyId,
              accessKeySecret: next.auth.AccessKeySecret,
              stsToken: next.auth.SecurityToken,
            };
          }
        : null;

    const client = newClient(address, auth, refresh);
    let live = checkpoint; // ali-oss's own checkpoint object, with the File in it
    let doneBefore = checkpoint ? checkpoint.doneParts.length : 0;
    let retries = 0;
    let restarted = false;
    const options = {
      parallel: PARALLEL,
      partSize: PART_SIZE,
      mime: file.type || undefined,
      progress: async (p, cpt) => {
        if (cpt) {
          if (cpt.doneParts.some((part) => !part.etag)) {
            const e = new Error('storage does not expose the ETag header to this page (CORS ExposeHeaders)');
            e.code = 'etag_hidden';
            throw e;
          }
          if (cpt.doneParts.length > doneBefore) retries = 0; // progress: a full set of retries again
          doneBefore = cpt.doneParts.length;
          live = cpt;
          record.checkpoint = storableCheckpoint(cpt);
          save(record);
        }
        setProgress(p);
      },
    };

    setState('uploading');
    setStatus(
      checkpoint
        ? `Resuming ${file.name}: ${checkpoint.doneParts.length} of ${partCount(checkpoint)} parts were already stored…`
        : `Uploading ${file.name}…`,
    );
    let renew = false;
    for (;;) {
      if (live) options.checkpoint = live;
      else delete options.checkpoint;
      try {
        if (renew) {
          // Renew now, before any request: ali-oss renews lazily in one request while the
          // others still go out with the old credential.
          renew = false;
          Object.assign(client.options, await refresh());
          client.stsTokenFreshTime = new Date();
        }
        await client.multipartUpload(address.FileName, file, options);
        break;
      } catch (e) {
        if (live && (e.name === 'abort' || e.code === 'NoSuchUpload') && !restarted) {
          // The multipart upload the checkpoint named is gone (aborted or expired): start again.
          restarted = true;
          live = null;
          record.checkpoint = null;
          save(record);
          setProgress(0);
          setStatus(`The stored parts are gone; uploading ${file.name} from the start…`);
          continue;
        }
        const expired = EXPIRED_CODES.includes(e.code);
        const transient = e.apiError
          ? e.code === 'network_error' || e.status === 429 || e.status >= 500 // from a refresh
          : [-2, -1, 0].includes(e.status) ||
            e.status >= 500 ||
            ['RequestError', 'ConnectionTimeoutError', 'ResponseTimeoutError'].includes(e.name);
        if (!((expired && refresh) || transient) || retries >= RETRY_DELAYS_MS.length) throw e;
        // The credential ran out under an in-flight request (a sleeping laptop, a slow part):
        // renew it before the next request, then go on from the checkpoint.
        if (expired) renew = true;
        const retryAfterMs = Number(e.retryAfter) * 1000;
        const delay = retryAfterMs > 0 ? Math.min(retryAfterMs, 60000) : RETRY_DELAYS_MS[retries];
        retries += 1;
        setStatus(`${describe(e)}; retrying (${retries}/${RETRY_DELAYS_MS.length})…`);
        await new Promise((resolve) => setTimeout(resolve, delay));
        setStatus(`Uploading ${file.name}…`);
      }
    }

    clearSaved();
    setProgress(1);
    setState('done');
    setStatus(`Uploaded ${file.name}. VOD takes it from here.`, 'ok');
  }

  function stem(name) {
    return name.replace(/\.[^.]*$/, '') || name;
  }

  async function start(event) {
    event.preventDefault();
    if (busy) return;
    const key = keyInput.value.trim();
    const file = fileInput.files && fileInput.files[0];
    const kind = kindSelect.value;
    const businessType = kind === 'attached_media' ? businessSelect.value : undefined;
    if (!key) return fail(apiError(0, 'missing_api_key', 'enter the API key'));
    if (!file) return fail(apiError(0, 'missing_file', 'choose a file'));
    localStorage.setItem(KEY_STORAGE, key);

    busy = true;
    button.disabled = true;
    delete body.dataset.errorCode;
    delete body.dataset.resumed;
    delete body.dataset.resumedParts;
    try {
      const saved = loadSaved();
      let job = null;
      let checkpoint = null;
      if (saved && saved.kind === kind && sameFile(saved, file)) {
        setState('resuming');
        body.dataset.resumed = 'true';
        showIds(saved.job_id, saved.media_id);
        setStatus(`Resuming the upload of ${file.name} (job ${saved.job_id})…`);
        try {
          job = await api(refreshPath(saved.job_id), saved.video_id ? { video_id: saved.video_id } : {});
        } catch (e) {
          if (!(e.apiError && e.status === 404)) throw e;
          clearSaved();
          setStatus(`The server no longer knows job ${saved.job_id}; starting a new upload…`);
        }
        if (job) {
          const { address } = decodeJob(job);
          const cpt = saved.checkpoint;
          if (
            cpt &&
            cpt.uploadId &&
            cpt.name === address.FileName &&
            cpt.fileSize === file.size &&
            saved.upload_address &&
            decodeBase64Json(saved.upload_address, 'saved upload_address').Bucket === address.Bucket
          ) {
            checkpoint = { ...cpt, doneParts: cpt.doneParts.slice() };
            body.dataset.resumedParts = String(cpt.doneParts.length);
            setProgress(cpt.doneParts.length / (partCount(cpt) + 1));
            setStatus(
              `Resuming ${file.name}: ${cpt.doneParts.length} of ${partCount(cpt)} parts are already stored…`,
            );
          } else {
            body.dataset.resumedParts = '0';
            setProgress(0);
            setStatus(`Resuming job ${saved.job_id} with a new upload address: ${file.name} starts over…`);
          }
        }
      }
      if (!job) {
        setState('uploading');
        setProgress(0);
        showIds(null, null);
        setStatus('Asking for an upload address…');
        const request = { kind, file_name: file.name, file_size: file.size, title: stem(file.name) };
        if (businessType) request.business_type = businessType;
        job = await api('/v1/uploads', request);
      }
      await upload(job, file, kind, businessType, checkpoint);
    } catch (e) {
      fail(e);
    } finally {
      busy = false;
      button.disabled = false;
    }
  }

  function fail(e) {
    const text = describe(e);
    body.dataset.errorCode = (e && e.code) || 'error';
    setState('error');
    setStatus(text, 'error');
    if (!e || !e.apiError || e.status === 0) console.error('upload failed:', e);
  }

  // ---- start-up -------------------------------------------------------------------------------

  keyInput.value = localStorage.getItem(KEY_STORAGE) || '';
  keyInput.addEventListener('change', () => localStorage.setItem(KEY_STORAGE, keyInput.value.trim()));
  kindSelect.addEventListener('change', showKind);
  form.addEventListener('submit', start);

  const saved = loadSaved();
  if (saved) {
    kindSelect.value = saved.kind;
    if (saved.business_type) businessSelect.value = saved.business_type;
    showIds(saved.job_id, saved.media_id);
    const done = saved.checkpoint ? saved.checkpoint.doneParts.length / (partCount(saved.checkpoint) + 1) : 0;
    setProgress(done);
    setStatus(
      `The upload of ${saved.file.name} (${Math.floor(done * 100)}%) was interrupted. ` +
        'Pick the same file and press Upload to resume.',
    );
  }
  showKind();
  if (!window.OSS) {
    // Without it `new window.OSS` would fail later with "window.OSS is not a constructor".
    fail(
      apiError(
        0,
        'sdk_missing',
        'the OSS browser SDK (/upload/vendor/aliyun-oss-sdk.min.js) is not installed on this server: ' +
          'run `npm ci --prefix web` in the vod-ingest checkout (or point VOD_INGEST_WEB_DIR at a web ' +
          'directory that has it), then reload this page',
      ),
    );
  }
})();
