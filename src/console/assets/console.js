// The console's only script: asks before a form that changes something is sent, and keeps
// the progress bars of uploads in progress moving. Every page works without it (forms are
// then sent without asking, and progress shows as of the page load).
'use strict';

document.addEventListener('submit', (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

const POLL_MS = 2000;

function cell(text, className) {
  const td = document.createElement('td');
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

function progressCell(u) {
  const td = document.createElement('td');
  td.className = 'progress';
  if (u.bytes_total > 0) {
    const bar = document.createElement('progress');
    bar.max = u.bytes_total;
    bar.value = Math.min(u.bytes_uploaded, u.bytes_total);
    td.append(bar, ' ');
  }
  const span = document.createElement('span');
  span.className = 'bytes';
  span.textContent = u.bytes_text;
  td.append(span);
  return td;
}

// The overview's table: rebuilt from the JSON with DOM calls (no HTML from strings).
function renderUploads(tbody, uploads) {
  const rows = uploads.map((u) => {
    const tr = document.createElement('tr');
    tr.dataset.jobId = u.job_id;
    const first = document.createElement('td');
    const link = document.createElement('a');
    link.href = u.href;
    link.textContent = u.job_id;
    first.append(link);
    if (u.title) {
      const small = document.createElement('small');
      small.textContent = u.title;
      first.append(document.createElement('br'), small);
    }
    tr.append(first, cell(u.kind), progressCell(u), cell(u.rate_text, 'speed'), cell(String(u.attempts), 'num'));
    return tr;
  });
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    const td = cell('No upload is running.', 'empty');
    td.colSpan = 5;
    tr.append(td);
    rows.push(tr);
  }
  tbody.replaceChildren(...rows);
  document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
}

// A job's page: its bar follows the upload; when the upload ends, the page reloads once to
// show where the job went. Returns false to stop polling.
function renderJob(box, uploads) {
  const u = uploads.find((x) => x.job_id === box.dataset.liveJob);
  if (!u) {
    if (box.dataset.state !== 'uploading') return true; // not started yet: keep watching
    window.location.reload();
    return false;
  }
  box.dataset.state = 'uploading';
  const bar = box.querySelector('progress');
  if (bar) {
    bar.max = u.bytes_total;
    bar.value = Math.min(u.bytes_uploaded, u.bytes_total);
  }
  const bytes = box.querySelector('.bytes');
  if (bytes) bytes.textContent = u.bytes_text;
  const speed = box.querySelector('.speed');
  if (speed) speed.textContent = u.rate_text;
  document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  return true;
}

function poll(element, render) {
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    try {
      const res = await fetch(element.dataset.liveUploads, {
        headers: { accept: 'application/json' },
        credentials: 'same-origin',
      });
      if (res.ok) {
        const data = await res.json();
        if (render(element, data.uploads) === false) stopped = true;
      }
    } catch (err) {
      // The service is restarting or the network is down: try again at the next tick.
    }
    if (!stopped) window.setTimeout(tick, POLL_MS);
  };
  window.setTimeout(tick, POLL_MS);
}

const uploadsTable = document.querySelector('tbody[data-live-uploads]');
if (uploadsTable) poll(uploadsTable, renderUploads);
const jobBox = document.querySelector('[data-live-job]');
if (jobBox && ['uploading', 'queued', 'retrying'].includes(jobBox.dataset.state)) poll(jobBox, renderJob);
