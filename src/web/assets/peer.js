// The peer's web UI made live: progress bars on Home and Download, uploads
// with a progress bar, fetches without a page reload. Plain DOM, no
// libraries; text from the server is set with textContent, never as HTML.
'use strict';

(function () {
  const page = document.body.dataset.page;
  const POLL_MS = 1000;

  function el(tag, props, children) {
    const e = document.createElement(tag);
    Object.assign(e, props || {});
    for (const c of children || []) e.append(c);
    return e;
  }

  // As units::percent: never 100.0% before the last block (the fraction
  // is 1 only then).
  function percent(fraction) {
    const p = fraction >= 1 ? 100 : Math.min(Math.max(fraction, 0) * 100, 99.9);
    return p.toFixed(1) + '%';
  }

  function bar(fraction) {
    return [el('progress', { max: 1, value: fraction }), ' ', el('span', { className: 'pct', textContent: percent(fraction) })];
  }

  function liveStatus(text) {
    let note = document.getElementById('live-status');
    if (!note) {
      note = el('p', { id: 'live-status', className: 'error' });
      document.querySelector('main').prepend(note);
    }
    note.textContent = text;
    note.hidden = !text;
  }

  // Changes carry proof that they come from our own page (CSRF): the
  // custom header under /api/, the page's token in a form's address.
  const API_HEADER = 'X-Requested-With';
  const tokenMeta = document.querySelector('meta[name="p2p-form-token"]');
  const formToken = tokenMeta ? tokenMeta.content : '';

  async function postJSON(url) {
    const r = await fetch(url, { method: 'POST', headers: { Accept: 'application/json', [API_HEADER]: 'p2pshare' } });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || r.status + ' ' + r.statusText);
    return body;
  }

  async function getJSON(url) {
    const r = await fetch(url, { cache: 'no-store', headers: { Accept: 'application/json' } });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || r.status + ' ' + r.statusText);
    return body;
  }

  // Home: downloads in progress, redrawn every poll.
  function drawActive(list) {
    const body = document.querySelector('#active tbody');
    if (!body) return;
    const rows = list.map((a) => el('tr', {}, [
      el('td', { className: 'name', textContent: a.name }),
      el('td', {}, bar(a.fraction)),
      el('td', { className: 'num', textContent: a.mbps.toFixed(1) }),
      el('td', { className: 'num', textContent: String(a.sources) }),
    ]));
    if (!rows.length) rows.push(el('tr', { className: 'empty' }, [el('td', { colSpan: 4, textContent: 'None right now.' })]));
    body.replaceChildren(...rows);
  }

  function drawTracker(connected) {
    const t = document.getElementById('tracker-state');
    if (!t) return;
    t.textContent = connected ? 'connected' : 'not connected';
    t.className = connected ? 'ok' : 'warn';
  }

  // Download: one row per file of the swarm, its status cell kept live.
  function rowFor(name) {
    for (const tr of document.querySelectorAll('#swarm tr[data-name]')) {
      if (tr.dataset.name === name) return tr;
    }
    return null;
  }

  function saveLink(name) {
    return el('a', { className: 'save', href: '/files/' + encodeURIComponent(name), download: name, textContent: 'Save' });
  }

  function fetchForm(name, label) {
    return el('form', { className: 'fetch', method: 'post', action: '/fetch?name=' + encodeURIComponent(name) + '&csrf=' + encodeURIComponent(formToken) },
      [el('button', { type: 'submit', textContent: label })]);
  }

  function showFailure(cell, name, message) {
    cell.dataset.failed = message;
    cell.replaceChildren(el('span', { className: 'error', textContent: message }), ' ', fetchForm(name, 'Retry'));
  }

  function drawFetch(f) {
    const tr = rowFor(f.name);
    if (!tr) return;
    const cell = tr.querySelector('td.status');
    if (f.state === 'running') {
      delete cell.dataset.failed;
      const progress = cell.querySelector('progress');
      if (progress) {
        progress.value = f.fraction;
        cell.querySelector('.pct').textContent = percent(f.fraction);
      } else {
        cell.replaceChildren(...bar(f.fraction));
      }
    } else if (cell.querySelector('a.save')) {
      // Already saved or shared: an old outcome changes nothing.
    } else if (f.state === 'done') {
      cell.replaceChildren(saveLink(f.name), ' ', el('span', { className: 'ok', textContent: 'done, ' + f.message }));
    } else if (f.state === 'failed' && cell.dataset.failed !== f.message) {
      showFailure(cell, f.name, f.message);
    }
  }

  document.addEventListener('submit', async (ev) => {
    const form = ev.target;
    if (!form.classList.contains('fetch')) return;
    ev.preventDefault();
    const tr = form.closest('tr');
    const cell = form.closest('td');
    const name = tr.dataset.name;
    form.querySelector('button').disabled = true;
    try {
      await postJSON('/api/fetch?name=' + encodeURIComponent(name));
      delete cell.dataset.failed;
      cell.replaceChildren(...bar(0));
    } catch (e) {
      showFailure(cell, name, e.message);
    }
  });

  async function poll() {
    try {
      const d = await getJSON('/api/progress');
      liveStatus('');
      drawTracker(d.connected);
      if (page === 'home') {
        drawActive(d.active);
        const mine = document.getElementById('my-files');
        // A file arrived or was uploaded: show the new list.
        if (mine && Number(mine.dataset.count) !== d.file_count) location.reload();
      } else if (page === 'download') {
        d.fetches.forEach(drawFetch);
      }
    } catch (e) {
      liveStatus('Lost contact with the peer (' + e.message + '); retrying…');
    }
    setTimeout(poll, POLL_MS);
  }

  // Upload: each chosen file is sent as the request body, with a bar.
  function upload(file, list) {
    return new Promise((resolve) => {
      const progress = el('progress', { max: 1, value: 0 });
      const note = el('span', { className: 'pct', textContent: 'sending…' });
      const li = el('li', {}, [el('span', { className: 'name', textContent: file.name }), progress, ' ', note]);
      li.dataset.name = file.name;
      li.dataset.state = 'sending';
      list.prepend(li);
      const finish = (state, cls, text) => {
        li.dataset.state = state;
        note.className = cls;
        note.textContent = text;
        resolve();
      };
      const xhr = new XMLHttpRequest();
      xhr.open('POST', '/api/upload?name=' + encodeURIComponent(file.name));
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.setRequestHeader(API_HEADER, 'p2pshare');
      xhr.setRequestHeader('Content-Type', 'application/octet-stream');
      xhr.upload.onprogress = (e) => {
        if (!e.lengthComputable || e.total === 0) return;
        progress.value = e.loaded / e.total;
        note.textContent = percent(e.loaded / e.total);
      };
      xhr.upload.onload = () => { note.textContent = 'hashing and announcing…'; };
      xhr.onload = () => {
        let body = {};
        try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON: use the status */ }
        if (xhr.status === 200) {
          progress.value = 1;
          const extra = body.note ? ' (' + body.note + ')' : '';
          finish('done', 'ok', 'shared, ' + body.size + ' bytes, MD5 ' + body.md5 + extra);
        } else {
          finish('failed', 'error', body.error || 'HTTP ' + xhr.status + ' ' + xhr.statusText);
        }
      };
      xhr.onerror = () => finish('failed', 'error', 'the connection to the peer failed');
      xhr.send(file);
    });
  }

  const form = document.getElementById('upload-form');
  if (form) {
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const input = document.getElementById('file');
      const button = document.getElementById('upload-button');
      const list = document.getElementById('uploads');
      const files = Array.from(input.files);
      button.disabled = true;
      for (const f of files) await upload(f, list);
      input.value = '';
      button.disabled = false;
    });
  }

  if (page === 'home' || page === 'download') poll();
})();
