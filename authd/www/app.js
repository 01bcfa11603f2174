// SPDX-License-Identifier: BSD-2-Clause
// apikey-authd's dashboard. Every text from the server goes into the page
// through textContent (never innerHTML), rows and checkboxes are cloned
// from <template>s, and a new key lives only in its dialog's DOM until
// Done: it is never stored, put in a URL or logged.
'use strict';

(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const state = { account: '', maxKeys: 10, keys: [], scopes: [] };

  // The server's answers in words a customer can act on.
  function words(status, detail) {
    switch (status) {
      case 400: return 'The request was not accepted' + (detail ? ': ' + detail + '.' : '.');
      case 401: return 'You are not signed in, or your session has ended. Reload the page to sign in again.';
      case 403: return 'This action was refused. Reload the page and try again.';
      case 404: return 'That key does not exist any more.';
      case 409: return 'This cannot be done now' + (detail ? ': ' + detail + '.' : '.');
      case 413: return 'The request is too large.';
      case 503: return 'Your keys cannot be reached right now. Try again in a moment.';
      default: return 'Something went wrong on the server. Try again later.';
    }
  }

  // The page's own header marks its requests (the server refuses a change
  // without it, and a cross-origin page cannot send it).
  async function call(method, path, body) {
    const init = { method, headers: { 'X-Apikey-Dashboard': '1' }, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new Error('The server cannot be reached. Check your connection and try again.');
    }
    let data = null;
    if (res.status !== 204) {
      try { data = await res.json(); } catch (e) { data = null; }
    }
    if (!res.ok) throw new Error(words(res.status, data && typeof data.error === 'string' ? data.error : ''));
    return data;
  }

  function showError(el, err) {
    el.textContent = err ? err.message : '';
    el.hidden = !err;
  }

  const day = (t) => (t ? t.slice(0, 10) : '');

  function fillRow(k) {
    const row = $('#row').content.firstElementChild.cloneNode(true);
    $('.name', row).textContent = k.name;
    $('.prefix', row).textContent = k.id + '...';
    $('.scopes', row).textContent = k.scopes.join(', ');
    $('.used', row).textContent = k.last_used ? day(k.last_used) : 'Never';
    $('.expires', row).textContent = day(k.expires);
    $('.created', row).textContent = day(k.created);
    if (k.status !== 'active') {
      row.classList.add('inactive');
      const badge = $('.badge', row);
      badge.textContent = k.status === 'revoked' ? 'Revoked' : 'Expired';
      badge.hidden = false;
      $('.actions', row).replaceChildren();
    } else {
      const rot = $('.rotate', row), rev = $('.revoke', row);
      rot.setAttribute('aria-label', 'Rotate ' + k.name);
      rev.setAttribute('aria-label', 'Revoke ' + k.name);
      rot.addEventListener('click', () => openConfirm('#rotate-dialog', k));
      rev.addEventListener('click', () => openConfirm('#revoke-dialog', k));
    }
    row.dataset.id = k.id;
    return row;
  }

  function render() {
    const active = state.keys.filter((k) => k.status === 'active');
    const single = state.maxKeys === 1;
    $('#loading').hidden = true;
    $('#many').hidden = single;
    $('#single').hidden = !single;
    if (single) {
      const k = active[0];
      $('#single-key').hidden = !k;
      $('#single-none').hidden = !!k;
      if (k) {
        $('#single-prefix').textContent = k.id + '...';
        $('#single-scopes').textContent = k.scopes.join(', ');
        $('#single-created').textContent = day(k.created);
        $('#single-expires').textContent = k.expires ? ', expires ' + day(k.expires) : ', never expires';
        $('#regenerate').onclick = () => openConfirm('#regen-dialog', k);
      }
      return;
    }
    const full = active.length >= state.maxKeys;
    $('#create').disabled = full;
    $('#limit').hidden = !full;
    $('#limit').textContent = full
      ? 'You have ' + active.length + ' active keys, the most an account may hold. Revoke a key before creating another.'
      : '';
    const showOld = $('#show-old').checked;
    const rows = state.keys.filter((k) => showOld || k.status === 'active').map(fillRow);
    $('#keys tbody').replaceChildren(...rows);
    $('#keys').hidden = rows.length === 0;
    $('#empty').hidden = rows.length > 0;
  }

  async function refresh() {
    try {
      state.keys = await call('GET', 'api/keys');
      showError($('#error'), null);
    } catch (e) {
      showError($('#error'), e);
    }
    render();
  }

  // Checkboxes grouped by area, the part of a scope's name before ':'.
  function buildScopes() {
    const groups = new Map();
    for (const s of state.scopes) {
      const area = s.scope.includes(':') ? s.scope.slice(0, s.scope.indexOf(':')) : s.scope;
      if (!groups.has(area)) {
        const g = $('#scope-group').content.firstElementChild.cloneNode(true);
        $('legend', g).textContent = area;
        groups.set(area, g);
      }
      const item = $('#scope-item').content.firstElementChild.cloneNode(true);
      $('input', item).value = s.scope;
      $('.scope-name', item).textContent = s.scope;
      $('.scope-desc', item).textContent = s.description;
      groups.get(area).append(item);
    }
    $('#scope-groups').replaceChildren(...groups.values());
  }

  // ---- The new key, shown once ----
  function showKey(issued) {
    $('#new-key').textContent = issued.key;
    $('#copied').textContent = '';
    $('#key-dialog').showModal();
    $('#copy').focus();
    refresh(); // the list behind it shows the new key's prefix
  }
  // Done, Escape or any close: the key leaves the page.
  $('#key-dialog').addEventListener('close', () => {
    $('#new-key').textContent = '';
    $('#copied').textContent = '';
    refresh();
  });
  $('#done').addEventListener('click', () => $('#key-dialog').close());
  $('#copy').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('#new-key').textContent);
      $('#copied').textContent = 'Copied to the clipboard.';
    } catch (e) {
      $('#copied').textContent = 'The browser did not allow copying: select the key and copy it by hand.';
    }
  });

  // ---- Create ----
  function openCreate() {
    const form = $('#create-form');
    form.reset();
    showError($('.error', form), null);
    $('#create-dialog').showModal();
    $('#name').focus();
  }
  $('#create').addEventListener('click', openCreate);
  $('#single-create').addEventListener('click', openCreate);
  $('#create-dialog .cancel').addEventListener('click', () => $('#create-dialog').close());
  $('#create-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = ev.target, err = $('.error', form);
    const name = $('#name').value.trim();
    const scopes = [...form.querySelectorAll('input[name=scope]:checked')].map((i) => i.value);
    const allow = $('#allow').value.split(/[\s,]+/).filter((a) => a);
    if (!name) return showError(err, new Error('Give the key a name, such as "CI pipeline".'));
    if (!scopes.length) return showError(err, new Error('Choose at least one permission.'));
    const body = { name, scopes, expires: $('#expires').value };
    if (allow.length) body.allow_from = allow;
    const submit = $('button[type=submit]', form);
    submit.disabled = true;
    try {
      const issued = await call('POST', 'api/change/keys', body);
      $('#create-dialog').close();
      showKey(issued);
    } catch (e) {
      showError(err, e);
    } finally {
      submit.disabled = false;
    }
  });

  // ---- Revoke, rotate, regenerate: each confirmed in its dialog ----
  let target = null;
  function openConfirm(sel, k) {
    target = k;
    const d = $(sel);
    $('.what', d).textContent = k.name + ' (' + k.id + '...)';
    showError($('.error', d), null);
    d.showModal();
    $('.cancel', d).focus();
  }
  async function confirmed(sel, method, path, body) {
    const d = $(sel), button = $('.confirm', d);
    button.disabled = true;
    try {
      const issued = await call(method, path, body);
      d.close();
      if (issued && issued.key) showKey(issued);
      else refresh();
    } catch (e) {
      showError($('.error', d), e);
    } finally {
      button.disabled = false;
    }
  }
  for (const sel of ['#revoke-dialog', '#rotate-dialog', '#regen-dialog'])
    $(sel + ' .cancel').addEventListener('click', () => $(sel).close());
  $('#revoke-dialog .confirm').addEventListener('click', () =>
    confirmed('#revoke-dialog', 'DELETE', 'api/change/keys/' + encodeURIComponent(target.id)));
  $('#rotate-dialog .confirm').addEventListener('click', () => {
    const grace = $('#grace').value;
    confirmed('#rotate-dialog', 'POST', 'api/change/keys/' + encodeURIComponent(target.id) + '/rotate',
      grace ? { grace } : {});
  });
  $('#regen-dialog .confirm').addEventListener('click', () =>
    confirmed('#regen-dialog', 'POST', 'api/change/keys/' + encodeURIComponent(target.id) + '/rotate', {}));

  $('#show-old').addEventListener('change', render);

  async function start() {
    try {
      const [session, scopes] = await Promise.all([call('GET', 'api/session'), call('GET', 'api/scopes')]);
      state.account = session.account;
      state.maxKeys = session.max_keys;
      state.scopes = scopes;
      $('#who').textContent = 'Signed in as ' + state.account;
      buildScopes();
    } catch (e) {
      $('#loading').hidden = true;
      return showError($('#error'), e);
    }
    refresh();
  }
  start();
})();
