/* The dashboard: reads /api/k8s/*, acts with POST .../actions (ctl
 * grammar), and refreshes on server-sent events, with a 5 s poll as the
 * fallback.  Plain DOM, no framework, no inline script (CSP). */
'use strict';

const state = {
  vms: [], templates: [], snapshots: [], operations: [],
  tab: 'running', prevCpu: new Map(), cpuPct: new Map(),
  busy: new Set(), refreshing: false, again: false, timer: null,
};
const RUNNING = new Set(['Running', 'Paused', 'Migrating']);

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else if (k === 'text') e.textContent = v;
    else e[k] = v;
  }
  for (const kid of kids) if (kid != null) e.append(kid);
  return e;
}

function fmtBytes(n) {
  if (!n) return '-';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)) + ' ' + u[i];
}

function items(doc) {
  if (Array.isArray(doc)) return doc;
  return doc && Array.isArray(doc.items) ? doc.items : [];
}

/* Off loopback every API request carries the token, reads included. */
function withToken(headers) {
  const token = sessionStorage.getItem('hypersdk-token');
  if (token) headers.Authorization = 'Bearer ' + token;
  return headers;
}

async function getJSON(path) {
  const r = await fetch(path, { headers: withToken({ Accept: 'application/json' }), cache: 'no-store' });
  if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
  return r.json();
}

function toast(msg, bad) {
  const t = $('toast');
  t.textContent = msg;
  t.className = 'toast' + (bad ? ' bad' : '');
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, bad ? 8000 : 3000);
}

/* CPU use between two samples of cumulative cpu seconds. */
function sampleCpu(vm) {
  const key = vm.metadata.namespace + '/' + vm.metadata.name;
  const u = vm.usage || {};
  const now = performance.now() / 1000;
  const prev = state.prevCpu.get(key);
  if (u.cpuSeconds > 0 && prev && now - prev.t > 0.5 && u.cpuSeconds >= prev.s) {
    const pct = 100 * (u.cpuSeconds - prev.s) / (now - prev.t) / Math.max(1, u.cpus || 1);
    state.cpuPct.set(key, Math.min(100, pct));
  }
  if (!prev || now - prev.t > 0.5) state.prevCpu.set(key, { s: u.cpuSeconds || 0, t: now });
  if (!RUNNING.has(vm.status.phase)) state.cpuPct.delete(key);
  return state.cpuPct.get(key);
}

function actionButton(vm, action, label, enabled, cls) {
  const name = vm.metadata.name;
  const b = el('button', { text: label, class: cls || '', 'data-action': action,
    title: action + ' ' + name });
  b.disabled = !enabled || state.busy.has(name) || !!vm.status.operation;
  b.addEventListener('click', () => onAction(vm, action));
  return b;
}

function vmRow(vm) {
  const st = vm.status || {}, u = vm.usage || {};
  const phase = st.phase || 'Unknown';
  const pct = sampleCpu(vm);
  const bar = el('span', { class: 'bar' }, el('span'));
  bar.firstChild.style.width = (pct || 0).toFixed(0) + '%';
  const cpuCell = el('td', {}, bar, pct == null ? '-' : pct.toFixed(1) + '%');
  const status = el('td', {}, el('span', { class: 'phase ' + phase, text: phase }));
  if (st.operation) status.append(el('span', { class: 'op' }, el('span', { class: 'spinner' }), st.operation + '…'));
  if (vm.err) status.append(el('span', { class: 'err', text: vm.err }));
  const run = RUNNING.has(phase);
  const actions = el('td', { class: 'actions' },
    actionButton(vm, 'start', 'Start', !run),
    actionButton(vm, 'stop', 'Stop', run),
    actionButton(vm, 'clone', 'Clone', true),
    actionButton(vm, 'snapshot', 'Snapshot', true),
    actionButton(vm, 'delete', 'Delete', true, 'danger'));
  return el('tr', { 'data-vm': vm.metadata.name, 'data-phase': phase },
    el('td', { text: vm.metadata.name, title: vm.metadata.namespace + '/' + vm.metadata.name }),
    status,
    el('td', { text: String(u.cpus || '-') }),
    el('td', { text: fmtBytes(u.memoryBytes) }),
    el('td', { text: fmtBytes(u.diskBytes) }),
    cpuCell,
    el('td', { text: fmtBytes(u.memoryRssBytes) }),
    el('td', { text: st.nodeName || '-' }),
    actions);
}

function fill(kind, rows) {
  $('rows-' + kind).replaceChildren(...rows);
  $('empty-' + kind).hidden = rows.length > 0;
  $('c-' + kind).textContent = String(rows.length);
}

function renderTotals() {
  let cpus = 0, mem = 0, disk = 0, rss = 0, running = 0, cpuUse = 0;
  for (const vm of state.vms) {
    const u = vm.usage || {};
    cpus += u.cpus || 0; mem += u.memoryBytes || 0; disk += u.diskBytes || 0;
    rss += u.memoryRssBytes || 0;
    if (RUNNING.has(vm.status.phase)) running++;
    const pct = state.cpuPct.get(vm.metadata.namespace + '/' + vm.metadata.name);
    if (pct != null) cpuUse += pct * (u.cpus || 1) / 100;
  }
  $('t-vms').textContent = String(state.vms.length);
  $('t-running').textContent = running + ' running';
  $('t-cpus').textContent = String(cpus);
  $('t-cpu-use').textContent = cpuUse.toFixed(2) + ' in use';
  $('t-mem').textContent = fmtBytes(mem);
  $('t-rss').textContent = fmtBytes(rss) + ' resident';
  $('t-disk').textContent = fmtBytes(disk);
}

const ACTIVE = new Set(['Pending', 'Running']);
const OPS_DONE_SHOWN = 5;

function progressBar(pct) {
  const bar = el('span', { class: 'bar' }, el('span'));
  bar.firstChild.style.width = Math.max(0, Math.min(100, pct || 0)).toFixed(0) + '%';
  return bar;
}

/* Operations in flight, then the last few finished (newest first). */
function shownOps() {
  const phase = (op) => (op.status || {}).phase || 'Pending';
  const when = (op) => { const st = op.status || {}; return st.completionTime || st.startTime || ''; };
  const active = state.operations.filter((op) => ACTIVE.has(phase(op)));
  const done = state.operations.filter((op) => !ACTIVE.has(phase(op)))
    .sort((x, y) => when(y).localeCompare(when(x))).slice(0, OPS_DONE_SHOWN);
  return active.concat(done);
}

function renderOps() {
  const ops = shownOps();
  $('ops').hidden = ops.length === 0;
  $('ops-list').replaceChildren(...ops.map((op) => {
    const spec = op.spec || {}, st = op.status || {};
    const vm = (spec.vmRef || {}).name || '';
    const phase = st.phase || 'Pending';
    const active = ACTIVE.has(phase);
    return el('li', { 'data-op': (op.metadata || {}).name || '', 'data-phase': phase },
      active ? el('span', { class: 'spinner' }) : null,
      el('span', { class: 'op-what', text: (spec.operation || 'operation') + ' ' + vm }),
      el('span', { class: 'phase ' + phase, text: phase }),
      st.progress != null ? progressBar(st.progress) : null,
      st.progress != null ? el('span', { class: 'pct', text: st.progress + '%' }) : null,
      st.message ? el('span', { class: 'msg', text: st.message }) : null);
  }));
}

function templateRow(t) {
  const s = t.spec || {}, st = t.status || {}, os = s.osInfo || {};
  const phase = st.phase || 'Pending';
  return el('tr', { 'data-template': t.metadata.name },
    el('td', { text: t.metadata.name }), el('td', { text: s.displayName || '' }),
    el('td', { text: [os.type, os.distribution, os.version].filter(Boolean).join(' ') }),
    el('td', { text: s.version || '' }),
    el('td', {}, el('span', { class: 'phase ' + phase, text: phase })),
    el('td', { text: st.size || '-' }),
    el('td', { text: String(st.usageCount || 0) }));
}

function snapshotButton(s, action, label, enabled, cls) {
  const b = el('button', { text: label, class: cls || '', 'data-action': action,
    title: action + ' ' + s.metadata.name });
  b.disabled = !enabled || state.busy.has('snap/' + s.metadata.name);
  b.addEventListener('click', () => onSnapshotAction(s, action));
  return b;
}

function snapshotRow(s) {
  const sp = s.spec || {}, st = s.status || {};
  const phase = st.phase || 'Pending';
  const ready = st.readyToRestore === true;
  return el('tr', { 'data-snapshot': s.metadata.name, 'data-vm': (sp.vmRef || {}).name || '' },
    el('td', { text: s.metadata.name }), el('td', { text: (sp.vmRef || {}).name || '' }),
    el('td', {}, el('span', { class: 'phase ' + phase, text: phase })),
    el('td', { text: st.size || '-' }),
    el('td', { text: st.creationTime || s.metadata.creationTimestamp || '' }),
    el('td', { class: 'ready', text: ready ? 'yes' : 'no' }),
    el('td', { class: 'actions' },
      snapshotButton(s, 'revert', 'Revert', ready),
      snapshotButton(s, 'delete', 'Delete', true, 'danger')));
}

function render() {
  const vms = state.vms;
  fill('running', vms.filter((v) => RUNNING.has(v.status.phase)).map(vmRow));
  fill('stopped', vms.filter((v) => !RUNNING.has(v.status.phase)).map(vmRow));
  fill('templates', state.templates.map(templateRow));
  fill('snapshots', state.snapshots.map(snapshotRow));
  renderTotals();
  renderOps();
  $('updated').textContent = new Date().toLocaleTimeString();
}

/* One badge a node with a carbon provider: its zone's intensity now. */
function renderGrid(nodes) {
  const box = $('grid');
  box.replaceChildren();
  for (const n of nodes) {
    const g = n.carbon || {};
    if (!g.provider) continue;
    const known = typeof g.intensity === 'number';
    const level = !known ? 'unknown' : g.intensity <= 200 ? 'low' : g.intensity <= 400 ? 'mid' : 'high';
    const text = n.name + ' ' + (g.zone || '?') + ' ' + (known ? g.intensity + ' gCO2/kWh' : 'no reading');
    box.append(el('span', { class: 'badge grid-' + level, role: 'listitem', text,
      title: known ? 'grid carbon intensity from ' + g.provider + ', reading ' + g.readingTime
                   : 'no fresh reading from ' + g.provider }));
  }
}

async function refresh() {
  if (state.refreshing) { state.again = true; return; }
  state.refreshing = true;
  try {
    const [vms, templates, snapshots, ops, nodes] = await Promise.all([
      getJSON('/api/k8s/vms'), getJSON('/api/k8s/templates'),
      getJSON('/api/k8s/snapshots'), getJSON('/api/k8s/operations'),
      getJSON('/api/k8s/nodes')]);
    renderGrid(items(nodes));
    state.vms = items(vms);
    state.templates = items(templates);
    state.snapshots = items(snapshots);
    state.operations = items(ops);
    render();
  } catch (e) {
    $('live').className = 'live off';
    $('live').textContent = 'offline';
  } finally {
    state.refreshing = false;
    if (state.again) { state.again = false; refresh(); }
  }
}

function soon() {
  clearTimeout(state.timer);
  state.timer = setTimeout(refresh, 150);
}

async function post(path, body) {
  const headers = withToken({ 'Content-Type': 'application/json' });
  const r = await fetch(path, { method: 'POST', headers, body: JSON.stringify(body) });
  const doc = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(doc.error || 'HTTP ' + r.status);
  return doc;
}

/* A modal question; resolves to {value, checked} or null. */
function ask(title, text, opts) {
  const d = $('ask');
  $('ask-title').textContent = title;
  $('ask-text').textContent = text;
  $('ask-input').hidden = !opts.input;
  $('ask-input').value = opts.value || '';
  $('ask-check-label').hidden = !opts.check;
  $('ask-check-text').textContent = opts.check || '';
  $('ask-check').checked = false;
  $('ask-ok').textContent = opts.ok || 'OK';
  return new Promise((resolve) => {
    d.addEventListener('close', () => {
      if (d.returnValue !== 'ok') return resolve(null);
      resolve({ value: $('ask-input').value.trim(), checked: $('ask-check').checked });
    }, { once: true });
    d.returnValue = '';
    d.showModal();
    if (opts.input) $('ask-input').focus();
  });
}

async function bodyFor(vm, action) {
  const name = vm.metadata.name;
  if (action === 'clone') {
    const a = await ask('Clone ' + name, 'Name of the new VM:',
      { input: true, value: name + '-clone', check: 'linked clone', ok: 'Clone' });
    return a && a.value ? { ctl: 'clone ' + a.value + (a.checked ? ' linked' : '') } : null;
  }
  if (action === 'snapshot') {
    const a = await ask('Snapshot ' + name, 'Name of the snapshot:',
      { input: true, value: name + '-snap', check: 'include memory', ok: 'Snapshot' });
    return a && a.value ? { ctl: 'snapshot ' + a.value + (a.checked ? ' memory' : '') } : null;
  }
  if (action === 'delete') {
    const run = RUNNING.has(vm.status.phase);
    const a = await ask('Delete ' + name + '?', run ?
      'It is running: it will be powered off, and its disks deleted.' :
      'Its domain and disks will be deleted.', { ok: 'Delete' });
    return a ? { action: 'delete', force: run } : null;
  }
  return { action };
}

async function onAction(vm, action) {
  const name = vm.metadata.name;
  const body = await bodyFor(vm, action);
  if (!body) return;
  state.busy.add(name);
  render();
  try {
    await post('/api/k8s/vms/' + encodeURIComponent(vm.metadata.namespace) + '/' +
      encodeURIComponent(name) + '/actions', body);
    toast(action + ' ' + name + ': done');
  } catch (e) {
    toast(action + ' ' + name + ': ' + e.message, true);
  } finally {
    state.busy.delete(name);
    refresh();
  }
}

/* Revert is the VM's ctl "revert SNAP"; delete has an endpoint of its
 * own, the snapshot's rmdir. */
async function onSnapshotAction(s, action) {
  const name = s.metadata.name, ns = s.metadata.namespace || 'default';
  const vm = (s.spec.vmRef || {}).name || '';
  const a = await ask((action === 'revert' ? 'Revert ' + vm + ' to ' : 'Delete snapshot ') + name + '?',
    action === 'revert' ? 'The VM\'s disks (and memory, if saved) go back to the snapshot.' :
      'The snapshot is deleted from libvirt too.', { ok: action === 'revert' ? 'Revert' : 'Delete' });
  if (!a) return;
  state.busy.add('snap/' + name);
  render();
  try {
    if (action === 'revert')
      await post('/api/k8s/vms/' + encodeURIComponent(ns) + '/' + encodeURIComponent(vm) +
        '/actions', { ctl: 'revert ' + name });
    else
      await post('/api/k8s/snapshots/' + encodeURIComponent(ns) + '/' + encodeURIComponent(name) +
        '/delete', {});
    toast(action + ' ' + name + ': done');
  } catch (e) {
    toast(action + ' ' + name + ': ' + e.message, true);
  } finally {
    state.busy.delete('snap/' + name);
    refresh();
  }
}

async function onCreate(ev) {
  ev.preventDefault();
  const f = ev.target;
  const body = { name: f.name.value.trim(), cpus: Number(f.cpus.value),
    memory: f.memory.value.trim(), disk: f.disk.value.trim(), running: f.running.checked };
  try {
    await post('/api/k8s/vms', body);
    toast('created ' + body.name);
    f.name.value = '';
  } catch (e) {
    toast('create ' + body.name + ': ' + e.message, true);
  }
  refresh();
}

function showTab(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll('.tabs button'))
    b.classList.toggle('active', b.dataset.tab === tab);
  for (const p of document.querySelectorAll('.panel')) p.hidden = p.dataset.panel !== tab;
}

/* One server-sent event block ("event: NAME\ndata: ..."). */
function onEvent(block) {
  const m = /^event: *(.*)$/m.exec(block);
  const name = m ? m[1].trim() : 'message';
  const live = $('live');
  if (name === 'hello') { live.className = 'live'; live.textContent = 'live'; soon(); }
  if (name === 'change') soon();
}

/* EventSource cannot send the token, so the stream is read with fetch;
 * on any end or error it is opened again 2 s later. */
async function connect() {
  const live = $('live');
  for (;;) {
    try {
      const r = await fetch('/api/k8s/events', { headers: withToken({ Accept: 'text/event-stream' }), cache: 'no-store' });
      if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r/g, '');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          onEvent(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
    } catch (e) {
      /* opened again below */
    }
    live.className = 'live off';
    live.textContent = 'reconnecting';
    await new Promise((res) => setTimeout(res, 2000));
  }
}

async function init() {
  for (const b of document.querySelectorAll('.tabs button'))
    b.addEventListener('click', () => showTab(b.dataset.tab));
  $('create-form').addEventListener('submit', onCreate);
  $('token').addEventListener('change', (e) => { sessionStorage.setItem('hypersdk-token', e.target.value); soon(); });
  try {
    const cfg = await getJSON('/api/k8s/config');
    $('node').textContent = 'node ' + cfg.node;
    $('mode').textContent = cfg.mode;
    $('auth').hidden = !cfg.authRequired;
  } catch (e) { /* the refresh below shows offline */ }
  await refresh();
  connect();
  setInterval(refresh, 5000);
}

document.addEventListener('DOMContentLoaded', init);
