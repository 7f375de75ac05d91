// The tracker's dashboard page refreshes itself: every 2 s it fetches the
// page again and swaps in the new <main>, so nothing flickers. Whatever the
// server sends was escaped there; nothing here builds HTML from strings.
'use strict';

(function () {
  const PERIOD_MS = 2000;

  function lost(why) {
    let note = document.getElementById('live-status');
    if (!note) {
      note = document.createElement('p');
      note.id = 'live-status';
      note.className = 'error';
      document.querySelector('main').prepend(note);
    }
    note.textContent = 'Lost contact with the tracker (' + why + '); retrying…';
  }

  async function refresh() {
    try {
      const r = await fetch(location.pathname, { cache: 'no-store', headers: { Accept: 'text/html' } });
      if (!r.ok) throw new Error(r.status + ' ' + r.statusText);
      const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
      const fresh = doc.querySelector('main');
      if (!fresh) throw new Error('the answer had no dashboard');
      document.querySelector('main').replaceWith(document.adoptNode(fresh));
    } catch (e) {
      lost(e.message);
    }
    setTimeout(refresh, PERIOD_MS);
  }

  setTimeout(refresh, PERIOD_MS);
})();
