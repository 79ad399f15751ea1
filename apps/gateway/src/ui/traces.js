// The traces page: fetches /system/traces and /system/traces/startup and draws them with
// plain DOM and SVG. Everything from the server goes in as text (textContent), never HTML.
const SVG = 'http://www.w3.org/2000/svg';
const KEY_STORAGE = 'hearth.apiKey';
const PHASE_COLORS = {
  'gateway.invoke': '#90a4ae', 'queue.wait': '#ffb300', 'worker.invoke': '#78909c', 'pool.acquire': '#8d6e63',
  'image.pull': '#ef6c00', 'image.unpack': '#f4511e', 'sandbox.create': '#5e35b1', 'sandbox.start': '#3949ab',
  'sandbox.ready': '#1e88e5', 'function.invoke': '#43a047',
};
const colorOf = (name) => PHASE_COLORS[name] ?? '#b0bec5';
const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}
function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}
const ms = (us) => (us >= 10_000_000 ? `${(us / 1e6).toFixed(1)} s` : us >= 10_000 ? `${Math.round(us / 1000)} ms` : `${(us / 1000).toFixed(1)} ms`);

function setStatus(text, isError = false) {
  const s = $('status');
  s.textContent = text;
  s.className = isError ? 'error' : '';
}

async function api(path) {
  const key = localStorage.getItem(KEY_STORAGE);
  const res = await fetch(path, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  if (res.status === 401) throw new Error('This gateway needs an API key: paste one above (`hearth keys create`, or the local admin key in $HEARTH_HOME/admin.key).');
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error ?? `${path}: ${res.status} ${res.statusText}`);
  return body;
}

/** One trace: a row per span, indented by depth, its bar placed by offset and scaled to the trace's duration. */
function drawTrace(trace) {
  const card = el('article', { class: 'trace', 'data-trace-id': trace.traceId });
  const head = el('div', { class: 'trace-head' });
  head.append(el('span', { class: 'fn' }, trace.functionName ?? '(unknown function)'));
  const start = trace.start ?? 'unknown';
  head.append(el('span', { class: `badge ${start}`, 'data-start': start }, start));
  head.append(el('span', { class: 'meta' }, `${ms(trace.durationUs)} · ${new Date(trace.startedAt).toLocaleString()} · ${trace.spans.length} spans`));
  head.append(el('code', {}, trace.traceId));
  card.append(head);

  const rowH = 20, labelW = 230, durW = 70, width = 1000;
  const barW = width - labelW - durW;
  const total = Math.max(trace.durationUs, 1);
  const svg = svgEl('svg', { viewBox: `0 0 ${width} ${trace.spans.length * rowH + 4}`, role: 'img', 'aria-label': `waterfall of trace ${trace.traceId}` });
  trace.spans.forEach((span, i) => {
    const y = i * rowH + 2;
    const g = svgEl('g', { class: `span-row${span.status === 'error' ? ' error' : ''}`, 'data-span-name': span.name, 'data-depth': span.depth });
    const title = svgEl('title', {}, `${span.name} (${span.service})\nstart +${ms(span.offsetUs)}, ${ms(span.durationUs)}` +
      (span.statusMessage ? `\n${span.statusMessage}` : '') +
      Object.entries(span.attributes).map(([k, v]) => `\n${k} = ${v}`).join(''));
    g.append(title);
    g.append(svgEl('text', { x: 4 + span.depth * 14, y: y + 14 }, span.name));
    const x = labelW + (span.offsetUs / total) * barW;
    const w = Math.max(1.5, (span.durationUs / total) * barW);
    g.append(svgEl('rect', { class: 'bar', x, y: y + 3, width: w, height: rowH - 6, rx: 2, fill: colorOf(span.name) }));
    g.append(svgEl('text', { class: 'dim', x: width - 4, y: y + 14, 'text-anchor': 'end' }, ms(span.durationUs)));
    svg.append(g);
  });
  card.append(svg);
  return card;
}

/** Stacked bars: one per start kind, each phase's median as a segment, all on one scale. */
function drawStartup(groups) {
  const box = $('startup-chart');
  box.replaceChildren();
  if (groups.length === 0) {
    box.append(el('p', { class: 'empty' }, 'No calls with worker spans yet.'));
    return;
  }
  // Call order, whatever order the groups list them in.
  const phases = Object.keys(PHASE_COLORS).filter((p) => groups.some((g) => p in g.phasesMs));
  const legend = el('div', { class: 'legend' });
  for (const p of phases) {
    const item = el('span', {}, p === 'pool.acquire' ? 'pool.acquire (rest)' : p);
    const swatch = el('i');
    swatch.style.background = colorOf(p);
    item.prepend(swatch);
    legend.append(item);
  }
  box.append(legend);
  const rowH = 28, labelW = 230, totalW = 90, width = 1000;
  const barW = width - labelW - totalW;
  const max = Math.max(...groups.map((g) => Math.max(g.totalMs, Object.values(g.phasesMs).reduce((a, b) => a + b, 0))), 0.001);
  const svg = svgEl('svg', { viewBox: `0 0 ${width} ${groups.length * rowH + 4}`, role: 'img', 'aria-label': 'startup comparison' });
  groups.forEach((group, i) => {
    const y = i * rowH + 2;
    const g = svgEl('g', { class: 'group', 'data-start': group.start, 'data-isolation': group.isolation });
    g.append(svgEl('text', { x: 4, y: y + 18 }, `${group.start} · ${group.isolation} (n=${group.count})`));
    let x = labelW;
    for (const p of phases) {
      const v = group.phasesMs[p];
      if (v === undefined) continue;
      const w = (v / max) * barW;
      const seg = svgEl('rect', { x, y: y + 4, width: Math.max(w, 0.5), height: rowH - 8, fill: colorOf(p), 'data-phase': p });
      seg.append(svgEl('title', {}, `${p}: ${v.toFixed(1)} ms (median)`));
      g.append(seg);
      x += w;
    }
    g.append(svgEl('text', { class: 'dim', x: width - 4, y: y + 18, 'text-anchor': 'end' }, `${group.totalMs.toFixed(1)} ms`));
    svg.append(g);
  });
  box.append(svg);
}

async function refresh() {
  const fn = $('function').value.trim();
  const limit = Number($('limit').value) || 10;
  const query = new URLSearchParams({ limit: String(limit), ...(fn ? { function: fn } : {}) });
  setStatus('Loading…');
  try {
    const [traces, startup] = await Promise.all([api(`/system/traces?${query}`), api(`/system/traces/startup?${new URLSearchParams(fn ? { function: fn } : {})}`)]);
    drawStartup(startup);
    const list = $('traces');
    list.replaceChildren(...traces.map(drawTrace));
    if (traces.length === 0) list.append(el('p', { class: 'empty' }, 'No traces yet: call a function, then refresh.'));
    setStatus(`${traces.length} traces · updated ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    setStatus(err.message, true);
  }
}

const params = new URLSearchParams(location.search);
$('api-key').value = localStorage.getItem(KEY_STORAGE) ?? '';
if (params.get('function')) $('function').value = params.get('function');
$('api-key').addEventListener('change', (e) => {
  const key = e.target.value.trim();
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
});
$('controls').addEventListener('submit', (e) => {
  e.preventDefault();
  $('api-key').dispatchEvent(new Event('change'));
  void refresh();
});
let timer;
$('live').addEventListener('change', (e) => {
  clearInterval(timer);
  if (e.target.checked) timer = setInterval(refresh, 5000);
});
void refresh();
