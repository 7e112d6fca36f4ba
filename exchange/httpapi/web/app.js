// MedX web portal: plain JavaScript over the /v1 API, no build step and no
// dependencies. Every value from the API is put in the page as text
// (never as HTML). The bearer token lives in sessionStorage only.
'use strict';

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

const state = { token: '', me: null, stream: null, refreshTimer: 0, lastEventId: '' };

// h builds an element: h('td', {class: 'num'}, 'text', child...).
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function setContent(el, ...children) { el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined)); }

function flash(msg) { $('#flash').textContent = msg; }

// api calls the API and returns {ok, status, data}; on failure data is the
// problem document (RFC 9457) or a synthetic one.
async function api(method, path, body, extraHeaders) {
  const headers = Object.assign({ Authorization: 'Bearer ' + state.token }, extraHeaders || {});
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    return { ok: false, status: 0, data: { title: 'Network error', detail: String(e) } };
  }
  const ct = res.headers.get('Content-Type') || '';
  let data = null;
  if (ct.includes('json')) data = await res.json().catch(() => null);
  else if (res.status !== 204) data = await res.text();
  if (!res.ok && (!data || typeof data !== 'object')) data = { title: res.statusText, detail: String(data || '') };
  return { ok: res.ok, status: res.status, data };
}

function problemText(p) {
  if (!p) return 'failed';
  return (p.title || 'Error') + (p.detail ? ': ' + p.detail : '');
}

// --- formatting in plain language -------------------------------------

const scopeWords = {
  demographics: 'your age, sex and year of birth',
  conditions: 'your diagnoses (condition codes)',
  labs: 'your lab results (such as HbA1c and cholesterol)',
  vitals: 'your measurements (such as blood pressure and BMI)',
  medications: 'your medications',
};

function scopeText(scope) { return (scope || []).map((s) => scopeWords[s] || s).join('; '); }

function duration(seconds) {
  const days = Math.round(seconds / 86400);
  if (days >= 365 && days % 365 === 0) return days / 365 === 1 ? '1 year' : days / 365 + ' years';
  if (days >= 30 && days % 30 === 0) return days / 30 === 1 ? '1 month' : days / 30 + ' months';
  return days === 1 ? '1 day' : days + ' days';
}

function when(t) {
  if (!t) return '';
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

function day(t) {
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toLocaleDateString(undefined, { dateStyle: 'long' });
}

function tokens(n) { return n + (Math.abs(n) === 1 ? ' MedToken' : ' MedTokens'); }

const statusWords = { pending_approval: 'waiting for ethics approval', open: 'open', rejected: 'rejected', closed: 'closed', halted: 'halted by the ethics board', expired: 'expired' };

function eps(millionths) { return (millionths / 1e6).toFixed(2); }

function table(caption, head, rows, empty) {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  // On a phone each row stacks as a card; each cell carries its header.
  for (const row of rows) Array.from(row.children).forEach((cell, i) => { if (head[i]) cell.dataset.label = head[i].label || head[i]; });
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label || c)))),
    h('tbody', {}, rows)));
}

function dl(pairs) { return h('dl', {}, pairs.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])); }

// --- sign in ----------------------------------------------------------

async function signIn(token) {
  state.token = token.trim();
  const r = await api('GET', '/v1/me');
  if (!r.ok) {
    state.token = '';
    $('#signin-error').textContent = 'That token was not accepted (' + problemText(r.data) + ').';
    return false;
  }
  sessionStorage.setItem('medx.token', state.token);
  state.me = r.data;
  $('#signin-error').textContent = '';
  $('#signin').hidden = true;
  $('#who').hidden = false;
  $('#who').textContent = 'Signed in as ' + r.data.id + ' (' + r.data.role.replace('_', ' ') + ')';
  $('#signout').hidden = false;
  const view = { patient: 'patient', sponsor: 'sponsor', ethics_board: 'board' }[r.data.role] || 'other';
  for (const v of $$('.view')) v.hidden = v.id !== view;
  document.body.dataset.view = view;
  $('#notices-section').hidden = false;
  await refresh();
  listen();
  $('#main').focus();
  return true;
}

function signOut() {
  sessionStorage.removeItem('medx.token');
  if (state.stream) state.stream.abort();
  state.stream = null;
  state.token = '';
  state.me = null;
  location.hash = '';
  location.reload();
}

async function refresh() {
  const view = document.body.dataset.view;
  const jobs = [loadTokens()];
  if (view === 'patient') jobs.push(loadOffers(), loadLicences(), loadAccesses());
  if (view === 'sponsor') jobs.push(loadSponsorRequests());
  if (view === 'board') jobs.push(loadBoard(), loadVerify(), loadTrail());
  await Promise.all(jobs);
  document.body.dataset.loaded = String(Date.now());
}

function refreshSoon() {
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(refresh, 300);
}

// --- tokens (every role) -----------------------------------------------

const moveWords = { mint: 'issued to you', transfer_in: 'received', transfer_out: 'sent', escrow: 'held in escrow for a request', refund: 'unspent escrow returned', reward: 'reward for accepting a study' };

async function loadTokens() {
  const [bal, hist] = await Promise.all([api('GET', '/v1/tokens/balance'), api('GET', '/v1/tokens/history')]);
  for (const el of $$('[data-tokens]')) {
    if (el.closest('.view').hidden) continue;
    if (!bal.ok) { setContent(el, h('p', { class: 'error' }, problemText(bal.data))); continue; }
    const rows = hist.ok ? hist.data.slice().reverse().map((m) => h('tr', {},
      h('td', {}, when(m.time)), h('td', {}, moveWords[m.kind] || m.kind), h('td', { class: 'mono' }, m.request || ''),
      h('td', { class: 'num' }, (m.amount > 0 ? '+' : '') + m.amount), h('td', { class: 'num' }, m.balance))) : [];
    setContent(el,
      h('p', {}, 'Balance: ', h('strong', { 'data-balance': bal.data.balance }, tokens(bal.data.balance))),
      hist.ok ? table('Token history, newest first', ['When', 'What', 'Request', { label: 'Change', num: true }, { label: 'Balance', num: true }], rows, 'No token movements yet.')
        : h('p', { class: 'error' }, problemText(hist.data)));
  }
}

// --- patient ------------------------------------------------------------

async function loadOffers() {
  const r = await api('GET', '/v1/offers');
  const box = $('#offers');
  if (!r.ok) return setContent(box, h('p', { class: 'error' }, problemText(r.data)));
  if (!r.data.length) return setContent(box, h('p', { class: 'empty' }, 'No studies are asking for your data right now.'));
  setContent(box, r.data.map(({ request: q, terms }) => h('article', { class: 'card', 'data-request': q.id, 'aria-labelledby': 'offer-' + q.id },
    h('h3', { id: 'offer-' + q.id }, q.title),
    dl([
      ['Who is asking', q.sponsor],
      ['Why', q.purpose],
      ['What data', scopeText(terms.scope)],
      ['Who can take part', h('code', {}, q.criteria)],
      ['For how long', duration(terms.licenceSeconds) + ' from when you accept'],
      ['Reward', tokens(terms.reward) + ', paid when you accept'],
      ['Places left', String(q.maxParticipants - q.participants) + ' of ' + q.maxParticipants],
    ]),
    h('p', { class: 'hint' }, 'Researchers only see counts and averages over many patients, never your record. You can revoke later.'),
    h('div', { class: 'actions' },
      h('button', { type: 'button', 'data-action': 'accept', 'data-request': q.id, onclick: () => accept(q, terms) }, 'Accept and sign'),
      h('button', { type: 'button', class: 'secondary', 'data-action': 'decline', 'data-request': q.id, onclick: () => decline(q) }, 'Decline')))));
}

async function accept(q, terms) {
  let r;
  if ($('#device-sign').checked) {
    try {
      r = await acceptOnDevice(q, terms);
    } catch (e) {
      return flash('Could not sign on this device: ' + e.message);
    }
  } else {
    r = await api('POST', '/v1/requests/' + encodeURIComponent(q.id) + '/accept');
  }
  if (!r.ok) return flash('Accepting "' + q.title + '" failed: ' + problemText(r.data));
  flash('You accepted "' + q.title + '". Licence ' + r.data.id + ' runs until ' + day(r.data.expires) + '; ' + tokens(r.data.reward) + ' paid.');
  await refresh();
}

async function decline(q) {
  const r = await api('POST', '/v1/requests/' + encodeURIComponent(q.id) + '/decline');
  if (!r.ok) return flash('Declining failed: ' + problemText(r.data));
  flash('You declined "' + q.title + '". It will not be offered again.');
  await refresh();
}

async function loadLicences() {
  const r = await api('GET', '/v1/licences');
  const box = $('#licences');
  if (!r.ok) return setContent(box, h('p', { class: 'error' }, problemText(r.data)));
  const now = Date.now();
  const rows = r.data.map((l) => {
    const status = l.revoked ? 'revoked ' + day(l.revoked) : new Date(l.expires).getTime() <= now ? 'expired' : 'active';
    return h('tr', { 'data-licence': l.id, 'data-status': l.revoked ? 'revoked' : status },
      h('td', { class: 'mono' }, l.request), h('td', {}, scopeText(l.scope)), h('td', {}, day(l.granted)), h('td', {}, day(l.expires)),
      h('td', {}, status),
      h('td', {}, status === 'active' ? h('button', { type: 'button', class: 'danger', 'data-action': 'revoke', 'data-licence': l.id,
        'aria-label': 'Revoke licence for ' + l.request, onclick: () => revoke(l) }, 'Revoke') : ''));
  });
  setContent(box, table('Licences you signed', ['Request', 'Data', 'Granted', 'Expires', 'Status', 'Action'], rows, 'You have not accepted any study.'));
}

async function revoke(l) {
  if (!window.confirm('Revoke your licence for ' + l.request + '?\n\nRevoking stops every later query from using your data. Results already released stay released.')) return;
  const dev = await deviceKey(l.request).catch(() => null);
  const r = dev ? await revokeOnDevice(l, dev) : await api('POST', '/v1/licences/' + encodeURIComponent(l.id) + '/revoke');
  if (!r.ok) return flash('Revoking failed: ' + problemText(r.data));
  flash('Licence ' + l.id + ' is revoked. No later query will use your data; results already released stay released.');
  await refresh();
}

async function loadAccesses() {
  const r = await api('GET', '/v1/accesses');
  const box = $('#accesses');
  if (!r.ok) return setContent(box, h('p', { class: 'error' }, problemText(r.data)));
  const rows = r.data.map((q) => h('tr', {},
    h('td', {}, when(q.completed || q.authorized)), h('td', {}, q.sponsor), h('td', { class: 'mono' }, q.request),
    h('td', {}, scopeText(q.categories)), h('td', { class: 'num' }, q.licences), h('td', {}, q.status)));
  setContent(box, table('Queries that used your licences', ['When', 'By', 'Request', 'Data read', { label: 'Patients in the aggregate', num: true }, 'Status'], rows, 'No query has used your data.'));
}

// --- signing on the patient's device (WebCrypto Ed25519) ---------------

const b64 = {
  enc: (u8) => btoa(String.fromCharCode(...u8)),
  dec: (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0)),
};

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let i = 0;
  for (const p of parts) { out.set(p, i); i += p.length; }
  return out;
}

// signingBytes is ledger.Action.SigningBytes: a domain tag, then
// length-prefixed fn, actor, nonce and the payload's SHA-256.
async function signingBytes(fn, actor, nonce, payloadText) {
  const te = new TextEncoder();
  const sum = new Uint8Array(await crypto.subtle.digest('SHA-256', te.encode(payloadText)));
  const field = (b) => { const n = new Uint8Array(4); new DataView(n.buffer).setUint32(0, b.length); return concat(n, b); };
  return concat(te.encode('medx/action/v1'), field(te.encode(fn)), field(te.encode(actor)), field(te.encode(nonce)), field(sum));
}

function idb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open('medx-device-keys', 1);
    req.onupgradeneeded = () => req.result.createObjectStore('keys');
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function keyOp(mode, f) {
  const db = await idb();
  return new Promise((resolve, reject) => {
    const tx = db.transaction('keys', mode);
    const req = f(tx.objectStore('keys'));
    tx.oncomplete = () => resolve(req.result);
    tx.onerror = () => reject(tx.error);
  });
}

function storageKey(requestID) { return (state.me ? state.me.id : '') + '|' + requestID; }
function deviceKey(requestID) { return keyOp('readonly', (s) => s.get(storageKey(requestID))); }

// acceptOnDevice makes a per-study key in the browser (its private half
// cannot be exported), has the custodian certify it, checks that the
// action to sign carries the terms shown, and signs it.
async function acceptOnDevice(q, terms) {
  const kp = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
  const pub = new Uint8Array(await crypto.subtle.exportKey('raw', kp.publicKey));
  const id = encodeURIComponent(q.id);
  const c = await api('POST', '/v1/requests/' + id + '/certificate', { publicKey: b64.enc(pub) });
  if (!c.ok) return c;
  const act = c.data.action;
  const payloadText = JSON.stringify(act.payload); // what is hashed is exactly what is sent
  const signed = act.payload.terms;
  if (signed.request !== q.id || signed.reward !== terms.reward || signed.licenceSeconds !== terms.licenceSeconds || signed.scope.join() !== terms.scope.join()) {
    throw new Error('the terms to sign differ from the offer shown');
  }
  const bytes = await signingBytes(act.fn, act.actor, act.nonce, payloadText);
  const sig = new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, kp.privateKey, bytes));
  const body = '{"action":{"fn":' + JSON.stringify(act.fn) + ',"actor":' + JSON.stringify(act.actor) + ',"nonce":' + JSON.stringify(act.nonce) +
    ',"payload":' + payloadText + ',"sig":' + JSON.stringify(b64.enc(sig)) + '}}';
  const r = await rawPost('/v1/requests/' + id + '/accept', body);
  if (r.ok) await keyOp('readwrite', (s) => s.put({ key: kp.privateKey, actor: act.actor }, storageKey(q.id)));
  return r;
}

async function revokeOnDevice(l, dev) {
  const nonce = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
  const payloadText = JSON.stringify({ licence: l.id });
  const bytes = await signingBytes('RevokeLicence', dev.actor, nonce, payloadText);
  const sig = new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, dev.key, bytes));
  const body = '{"action":{"fn":"RevokeLicence","actor":' + JSON.stringify(dev.actor) + ',"nonce":"' + nonce + '","payload":' + payloadText +
    ',"sig":"' + b64.enc(sig) + '"}}';
  return rawPost('/v1/licences/' + encodeURIComponent(l.id) + '/revoke', body);
}

async function rawPost(path, body) {
  const res = await fetch(path, { method: 'POST', headers: { Authorization: 'Bearer ' + state.token, 'Content-Type': 'application/json' }, body });
  const data = await res.json().catch(() => ({ title: res.statusText }));
  return { ok: res.ok, status: res.status, data };
}

// --- sponsor --------------------------------------------------------------

function draftFromForm() {
  const f = $('#post-form');
  return {
    title: f.title.value.trim(), purpose: f.purpose.value.trim(), criteria: f.criteria.value,
    scope: $$('input[name=scope]:checked', f).map((c) => c.value),
    rewardPerPatient: Number(f.reward.value), maxParticipants: Number(f.max.value), licenceSeconds: Number(f.days.value) * 86400,
  };
}

let validateTimer = 0;
let validateSeq = 0;

function validateSoon() {
  clearTimeout(validateTimer);
  validateTimer = setTimeout(validateCriteria, 250);
  const d = draftFromForm();
  $('#budget').textContent = 'Budget held in escrow when you post: ' + tokens(d.rewardPerPatient * d.maxParticipants) + '.';
}

async function validateCriteria() {
  const d = draftFromForm();
  const out = $('#criteria-check');
  const field = $('#rq-criteria');
  if (!d.criteria.trim()) { out.textContent = ''; field.removeAttribute('aria-invalid'); return null; }
  const seq = ++validateSeq;
  const r = await api('POST', '/v1/criteria/validate', { criteria: d.criteria, scope: d.scope });
  if (seq !== validateSeq) return null; // a later keystroke won
  if (!r.ok) { out.className = 'check bad'; out.textContent = problemText(r.data); return false; }
  if (r.data.valid) {
    out.className = 'check ok';
    out.textContent = '✓ Valid. Reads ' + (r.data.categories.join(', ') || 'no data') + '. Stored as: ' + r.data.normalised;
    field.removeAttribute('aria-invalid');
    return true;
  }
  out.className = 'check bad';
  out.textContent = r.data.errors.map((e) => (e.line ? 'Line ' + e.line + ', column ' + e.column + ': ' : '') + e.message).join('; ');
  field.setAttribute('aria-invalid', 'true');
  return false;
}

// feasibilityAnswer is a released feasibility count as the API gives it,
// "about N" or "fewer than T" patients, with the disclosure control that
// was applied to it.
function feasibilityAnswer(f) {
  const what = f.belowThreshold ? 'Fewer than ' + f.threshold + ' patients' : 'About ' + f.count + ' patients';
  return h('div', { 'data-feasibility': f.record.id },
    h('p', {}, h('strong', { 'data-count': f.belowThreshold ? 'below ' + f.threshold : f.count }, what), ' meet ', h('code', {}, f.criteria)),
    dl([
      ['Noise', f.mechanism === 'none' ? 'none (turned off on this exchange)' : f.mechanism + ', scale ' + Number(f.noiseScale).toPrecision(3)],
      ['Withheld under', f.threshold + ' patients'],
      ['Rounding', f.rounding > 1 ? 'to a multiple of ' + f.rounding : 'none'],
      ['ε spent', f.cached ? '0 (the same criteria were answered before, in ' + f.record.cachedFrom + ')' : Number(f.epsilonSpent).toFixed(2)],
      ['Allowance left', 'ε ' + Number(f.epsilonLeft).toFixed(2) + ', ' + f.asksLeft + (f.asksLeft === 1 ? ' ask' : ' asks')],
      ['Ledger record', h('span', { class: 'mono' }, f.record.id)],
    ]));
}

let feasibilityBusy = false;

// askFeasibility asks, before posting, how many patients meet the typed
// criteria. Criteria that do not validate are not asked (nothing is spent);
// the validation error shows by the field and here.
async function askFeasibility() {
  if (feasibilityBusy) return;
  const out = $('#feasibility-answer');
  const field = $('#rq-criteria');
  if (!field.value.trim()) {
    setContent(out, h('p', { class: 'error' }, 'Type the inclusion criteria first.'));
    return field.focus();
  }
  feasibilityBusy = true;
  out.setAttribute('aria-busy', 'true');
  try {
    clearTimeout(validateTimer);
    const valid = await validateCriteria();
    if (valid !== true) {
      setContent(out, h('p', { class: 'error' }, 'Not asked, nothing spent: ' + ($('#criteria-check').textContent || 'the criteria did not validate')));
      return field.focus();
    }
    setContent(out, h('p', {}, 'Counting across the custodians…'));
    const r = await api('POST', '/v1/feasibility', { criteria: field.value });
    if (!r.ok) return setContent(out, h('p', { class: 'error' }, 'Feasibility not answered: ' + problemText(r.data)));
    setContent(out, feasibilityAnswer(r.data));
  } finally {
    feasibilityBusy = false;
    out.removeAttribute('aria-busy');
  }
}

async function postRequest(ev) {
  ev.preventDefault();
  const d = draftFromForm();
  if (!d.title || !d.purpose) return flash('A request needs a title and a purpose.');
  const r = await api('POST', '/v1/requests', d);
  if (!r.ok) return flash('Posting failed: ' + problemText(r.data));
  flash('Posted ' + r.data.id + ': ' + tokens(r.data.budget) + ' in escrow. An ethics board must approve it before patients see it.');
  await refresh();
}

async function loadSponsorRequests() {
  const r = await api('GET', '/v1/requests');
  const box = $('#s-requests');
  if (!r.ok) return setContent(box, h('p', { class: 'error' }, problemText(r.data)));
  const sel = $('#q-request');
  const keep = sel.value;
  setContent(sel, r.data.filter((q) => q.status === 'open').map((q) => h('option', { value: q.id }, q.id + ' — ' + q.title)));
  if (keep) sel.value = keep;
  const rows = r.data.map((q) => h('tr', { 'data-request': q.id },
    h('td', { class: 'mono' }, q.id), h('td', {}, q.title), h('td', {}, statusWords[q.status] || q.status),
    h('td', { class: 'num', 'data-licences': q.participants }, q.participants + ' / ' + q.maxParticipants),
    h('td', { class: 'num' }, q.escrow),
    h('td', {}, q.approval ? 'min cell ' + q.approval.minCell + ', ε ' + eps(q.approval.epsilonSpent) + ' of ' + eps(q.approval.epsilonBudget) : ''),
    h('td', {}, h('div', { class: 'buttons' },
      h('button', { type: 'button', class: 'secondary', 'data-action': 'feasibility', onclick: (e) => feasibility(q, e.target) }, 'Feasibility'),
      q.status === 'open' || q.status === 'pending_approval'
        ? h('button', { type: 'button', class: 'secondary', 'data-action': 'close', onclick: () => closeRequest(q) }, 'Close') : ''))));
  setContent(box, table('Your requests', ['Id', 'Title', 'Status', { label: 'Licences', num: true }, { label: 'Escrow', num: true }, 'Limits', 'Actions'], rows, 'You have posted no request.'));
}

// feasibility lists the counts released for a request's criteria and
// states the latest in words.
async function feasibility(q, button) {
  const r = await api('GET', '/v1/requests/' + encodeURIComponent(q.id) + '/feasibility');
  let text;
  if (!r.ok) text = problemText(r.data);
  else if (!r.data.length) text = 'no count has been asked for these criteria.';
  else text = r.data.length + (r.data.length === 1 ? ' count' : ' counts') + ' released; the latest: ' + r.data[r.data.length - 1].answer + '.';
  flash('Feasibility of ' + q.id + ': ' + text);
  if (button) button.focus();
}

async function closeRequest(q) {
  if (!window.confirm('Close ' + q.id + '? Unspent escrow returns to you; no more licences or queries.')) return;
  const r = await api('POST', '/v1/requests/' + encodeURIComponent(q.id) + '/close', { reason: 'closed by the sponsor' });
  if (!r.ok) return flash('Closing failed: ' + problemText(r.data));
  flash(q.id + ' is closed; ' + tokens(q.escrow) + ' returned.');
  await refresh();
}

async function chooseCustodialKey() {
  const r = await api('POST', '/v1/custodial-sponsor-key');
  const out = $('#custodial-state');
  if (!r.ok) { out.textContent = problemText(r.data); return; }
  out.textContent = r.data.created ? 'The exchange now holds a result key for you.' : 'The exchange already holds a result key for you.';
  sessionStorage.setItem('medx.custodial', '1');
}

async function runQuery(ev) {
  ev.preventDefault();
  const f = $('#query-form');
  const out = $('#result');
  if (!f.request.value) return setContent(out, h('p', { class: 'error' }, 'No open request to query.'));
  setContent(out, h('p', {}, 'Running under encryption…'));
  const r = await api('POST', '/v1/requests/' + encodeURIComponent(f.request.value) + '/custodial-queries', { query: f.query.value, epsilon: Number(f.epsilon.value) });
  if (!r.ok) {
    const hint = r.data && r.data.type === 'urn:medx:problem:no-custodial-key' ? ' Choose "Let the exchange hold my result key" first, or decrypt with the CLI.' : '';
    return setContent(out, h('p', { class: 'error', role: 'alert' }, problemText(r.data) + hint));
  }
  const res = r.data;
  const t = res.table;
  const d = res.disclosure;
  const groups = t.columns.length - (t.rows[0] ? t.rows[0].values.length : 0);
  const rows = t.rows.map((row) => h('tr', {}, row.group.map((g) => h('th', { scope: 'row' }, g)),
    row.values.map((v) => h('td', { class: 'num' }, v.suppressed ? h('span', { title: v.note || 'suppressed' }, 'suppressed' + (v.note ? ' (' + v.note + ')' : '')) : fmtNum(v.value)))));
  const suppressed = (d.suppressedSlots || []).length;
  setContent(out,
    h('h3', {}, 'Result of ' + res.record.id),
    h('p', {}, h('code', {}, res.query)),
    table('Released aggregate (decrypted with your custodial result key)', t.columns.map((c, i) => (i < groups ? c : { label: c, num: true })), rows, 'No cells.'),
    h('h3', {}, 'Disclosure control applied'),
    dl([
      ['Patients in the cohort', String(res.record.licences) + ' active licences'],
      ['Minimum cell size', String(d.minCell)],
      ['Suppressed values', suppressed ? suppressed + ' (cells under the minimum are withheld)' : 'none'],
      ['Noise', d.mechanism === 'none' ? 'none' : d.mechanism + ', scales ' + (d.noiseScales || []).map(fmtNum).join(', ')],
      ['Privacy budget', 'ε ' + fmtNum(d.epsilonSpent) + ' spent, ' + fmtNum(d.epsilonLeft) + ' left'],
      ['Key holders who took part', String(d.keyHolders)],
      ['Ledger record', h('span', { class: 'mono' }, res.record.id + ', result hash ' + (res.record.resultHash || ''))],
    ]));
  await refresh();
}

function fmtNum(x) { return Number.isInteger(x) ? String(x) : Number(x).toFixed(2); }

// --- ethics board ---------------------------------------------------------

async function loadBoard() {
  const r = await api('GET', '/v1/requests');
  if (!r.ok) return setContent($('#pending'), h('p', { class: 'error' }, problemText(r.data)));
  const card = (q, ...actions) => h('article', { class: 'card', 'data-request': q.id, 'aria-labelledby': 'b-' + q.id },
    h('h3', { id: 'b-' + q.id }, q.title),
    dl([
      ['Request', h('span', { class: 'mono' }, q.id)], ['Sponsor', q.sponsor], ['Purpose', q.purpose],
      ['Criteria', h('code', {}, q.criteria)], ['Data', (q.scope || []).join(', ')],
      ['Licence', duration(q.licenceSeconds)], ['Reward', tokens(q.rewardPerPatient) + ' × ' + q.maxParticipants + ' places'],
      ['Licences', String(q.participants)],
      q.approval ? ['Limits', 'min cell ' + q.approval.minCell + '; ε ' + eps(q.approval.epsilonSpent) + ' spent of ' + eps(q.approval.epsilonBudget)] : ['Status', statusWords[q.status] || q.status],
    ]),
    h('div', { class: 'actions' }, actions));
  const pending = r.data.filter((q) => q.status === 'pending_approval').map((q) => card(q,
    h('div', {}, h('label', { for: 'mc-' + q.id }, 'Minimum cell size'), h('input', { id: 'mc-' + q.id, name: 'minCell', type: 'number', min: 1, value: 10 })),
    h('div', {}, h('label', { for: 'ep-' + q.id }, 'Privacy budget ε'), h('input', { id: 'ep-' + q.id, name: 'epsilon', type: 'number', min: 0.01, step: 0.05, value: 1 })),
    h('div', {}, h('label', { for: 'rs-' + q.id }, 'Reason'), h('input', { id: 'rs-' + q.id, name: 'reason' })),
    h('button', { type: 'button', 'data-action': 'approve', onclick: () => decide(q, 'approve') }, 'Approve'),
    h('button', { type: 'button', class: 'danger', 'data-action': 'reject', onclick: () => decide(q, 'reject') }, 'Reject')));
  setContent($('#pending'), pending.length ? pending : h('p', { class: 'empty' }, 'Nothing waits for approval.'));
  const open = r.data.filter((q) => q.status === 'open').map((q) => card(q,
    h('div', {}, h('label', { for: 'hr-' + q.id }, 'Reason to halt'), h('input', { id: 'hr-' + q.id, name: 'reason' })),
    h('button', { type: 'button', class: 'danger', 'data-action': 'halt', onclick: () => decide(q, 'halt') }, 'Halt study'),
    h('button', { type: 'button', class: 'secondary', 'data-action': 'feasibility', onclick: (e) => feasibility(q, e.target) }, 'Feasibility')));
  setContent($('#open'), open.length ? open : h('p', { class: 'empty' }, 'No study is running.'));
}

async function decide(q, verb) {
  const cardEl = $('article[data-request="' + CSS.escape(q.id) + '"]', $('#board'));
  const val = (n) => { const el = $('[name=' + n + ']', cardEl); return el ? el.value : ''; };
  let body = { reason: val('reason') };
  if (verb === 'approve') body = { minCell: Number(val('minCell')), epsilonBudget: Number(val('epsilon')), reason: val('reason') };
  if (verb === 'halt' && !window.confirm('Halt ' + q.id + '? No further query will run; unspent escrow returns to the sponsor.')) return;
  const r = await api('POST', '/v1/requests/' + encodeURIComponent(q.id) + '/' + verb, body);
  if (!r.ok) return flash(verb + ' failed: ' + problemText(r.data));
  flash(q.id + ' is now ' + (statusWords[r.data.status] || r.data.status) + '.');
  await refresh();
}

async function loadVerify() {
  const r = await api('GET', '/v1/audit/summary');
  const box = $('#verify');
  if (!r.ok) return setContent(box, h('p', { class: 'error' }, problemText(r.data)));
  const s = r.data;
  const badge = (ok, yes, no) => h('span', { class: 'badge ' + (ok ? 'ok' : 'bad') }, ok ? yes : no);
  setContent(box, dl([
    ['Ledger', h('span', { 'data-verified': String(s.verified) }, badge(s.verified, 'verified', 'NOT verified'), ' ', s.report.blocks + ' blocks, ' + s.report.transactions + ' transactions; replay ' + (s.report.stateMatches ? 'reproduces the state' : 'does NOT reproduce the state'))],
    ['Head', h('span', { class: 'mono' }, s.report.head || '')],
    ['MedTokens', h('span', {}, badge(s.conserved, 'conserved', 'NOT conserved'), ' balances ' + s.tokens.balances + ' + escrow ' + s.tokens.escrow + ' = minted ' + s.tokens.minted)],
    ['Licences', s.licencesActive + ' active, ' + s.licencesRevoked + ' revoked, ' + s.licencesExpired + ' expired'],
    ['Requests and queries', s.requests + ' requests, ' + s.queries + ' queries'],
    ['Problems', (s.report.problems || []).length ? s.report.problems.join('; ') : 'none'],
    ['Checked', when(s.at)],
  ]));
}

function trailFilters() {
  const f = $('#trail-form');
  return { status: f.status.value, request: f.request.value.trim(), patient: f.patient.value.trim(), from: f.from.value.trim(), to: f.to.value.trim(), format: f.format.value };
}

async function loadTrail(ev) {
  if (ev) ev.preventDefault();
  const f = trailFilters();
  const r = await api('GET', '/v1/audit/trail' + (f.status ? '?status=' + encodeURIComponent(f.status) : ''));
  const box = $('#trail');
  if (!r.ok) return setContent(box, h('p', { class: 'error' }, problemText(r.data)));
  const studies = r.data.filter((s) => !f.request || s.request.id === f.request)
    .filter((s) => !f.patient || s.licences.some((l) => l.patient === f.patient));
  const rows = studies.map((s) => h('tr', {},
    h('td', { class: 'mono' }, s.request.id), h('td', {}, s.request.title), h('td', {}, statusWords[s.request.status] || s.request.status),
    h('td', { class: 'num' }, s.licences.length), h('td', { class: 'num' }, s.licences.filter((l) => l.revoked).length),
    h('td', { class: 'num' }, s.queries.length),
    h('td', { class: 'num' }, eps(s.queries.reduce((n, q) => n + q.epsilonCharged, 0)))));
  setContent(box, table('Requests with their licences and queries', ['Request', 'Title', 'Status', { label: 'Licences', num: true }, { label: 'Revoked', num: true }, { label: 'Queries', num: true }, { label: 'ε spent', num: true }], rows, 'No request matches.'));
}

async function exportTrail() {
  const f = trailFilters();
  const q = new URLSearchParams({ format: f.format });
  for (const k of ['request', 'patient', 'from', 'to']) if (f[k]) q.set(k, f[k]);
  const res = await fetch('/v1/audit/export?' + q, { headers: { Authorization: 'Bearer ' + state.token } });
  const out = $('#export-link');
  if (!res.ok) {
    const p = await res.json().catch(() => null);
    return setContent(out, h('span', { class: 'error', role: 'alert' }, 'Export failed: ' + problemText(p)));
  }
  const blob = await res.blob();
  const lines = (await blob.text()).split('\n').filter(Boolean).length - (f.format === 'csv' ? 1 : 0);
  const url = URL.createObjectURL(blob);
  setContent(out, h('a', { href: url, download: 'medx-trail.' + f.format }, 'Download the trail (' + lines + ' records, ' + f.format + ')'));
}

// --- notifications: server-sent events over fetch (EventSource cannot
// send the bearer token), resumed with Last-Event-ID ----------------------

const noticeWords = {
  request_posted: 'A request was posted', request_approved: 'A request was approved', request_rejected: 'A request was rejected',
  request_halted: 'A study was halted', request_closed: 'A request was closed', request_expired: 'A request expired',
  licence_granted: 'A licence was granted', licence_revoked: 'A licence was revoked', query_authorized: 'A query was authorised',
  query_completed: 'A query completed', notebook_recorded: 'A notebook run was recorded', dataset_registered: 'A dataset was registered',
  participant_registered: 'A participant was registered', feasibility_asked: 'A feasibility count was asked',
  feasibility_released: 'A feasibility count was released',
};

async function listen() {
  if (state.stream) state.stream.abort();
  const ctl = new AbortController();
  state.stream = ctl;
  while (!ctl.signal.aborted && state.token) {
    try {
      const headers = { Authorization: 'Bearer ' + state.token };
      if (state.lastEventId) headers['Last-Event-ID'] = state.lastEventId;
      const res = await fetch('/v1/events', { headers, signal: ctl.signal });
      if (!res.ok || !res.body) throw new Error('events: ' + res.status);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          handleEvent(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function handleEvent(block) {
  let id = '';
  let name = '';
  let data = '';
  for (const line of block.split('\n')) {
    if (line.startsWith('id: ')) id = line.slice(4);
    else if (line.startsWith('event: ')) name = line.slice(7);
    else if (line.startsWith('data: ')) data += line.slice(6);
  }
  if (!name) return;
  if (id) state.lastEventId = id;
  let p = {};
  try { p = JSON.parse(data).payload || {}; } catch (e) { /* keep going */ }
  const list = $('#notices');
  list.prepend(h('li', {}, when(new Date()) + ' — ' + (noticeWords[name] || name) + (p.request ? ' (' + p.request + ')' : '')));
  while (list.children.length > 20) list.lastChild.remove();
  refreshSoon();
}

// --- wiring -----------------------------------------------------------------

document.addEventListener('DOMContentLoaded', () => {
  $('#signin-form').addEventListener('submit', (ev) => { ev.preventDefault(); signIn($('#token').value); });
  $('#signout').addEventListener('click', signOut);
  const pf = $('#post-form');
  pf.addEventListener('submit', postRequest);
  pf.addEventListener('input', validateSoon);
  $('#feasibility-check').addEventListener('click', askFeasibility);
  $('#rq-criteria').addEventListener('input', () => setContent($('#feasibility-answer'))); // an answer is for the criteria asked
  $('#custodial-key').addEventListener('click', chooseCustodialKey);
  $('#query-form').addEventListener('submit', runQuery);
  $('#trail-form').addEventListener('submit', loadTrail);
  $('#export').addEventListener('click', exportTrail);
  if (sessionStorage.getItem('medx.custodial')) $('#custodial-state').textContent = 'You chose a custodial result key in this session.';
  // A token may come in the fragment (never sent to the server): #token=...
  const m = /^#token=(.+)$/.exec(location.hash);
  if (m) history.replaceState(null, '', location.pathname);
  const token = m ? decodeURIComponent(m[1]) : sessionStorage.getItem('medx.token');
  if (token) signIn(token);
});
