'use strict';
// Palisade's page. Every answer comes from the server's JSON API (docs/web.md); this file only
// draws it. Text from the server is always inserted as text, never parsed as markup.

// ------------------------------------------------------------------------------ helpers

const $ = (selector) => document.querySelector(selector);
const SVG_NS = 'http://www.w3.org/2000/svg';

// h('div', {class: 'x', text: 'y', onclick: f, 'data-a': 1}, child, [children], 'text', …):
// `text` sets textContent, `on…` adds a listener, null/false props and children are skipped.
function h(tag, props, ...children) {
  return build(document.createElement(tag), props, children);
}

function s(tag, props, ...children) {
  return build(document.createElementNS(SVG_NS, tag), props, children);
}

function build(node, props, children) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child != null && child !== false) node.append(child); // strings become text nodes
  }
  return node;
}

// Replaces a node's children, with h's rules for them.
function fill(node, ...children) {
  node.replaceChildren();
  return build(node, null, children);
}

function plural(n, word, words = `${word}s`) {
  return `${n} ${n === 1 ? word : words}`;
}

// Items separated by `sep`, for a list of links in running text.
function interleave(items, sep) {
  return items.flatMap((item, i) => (i ? [sep, item] : [item]));
}

const portText = (p) => `${p.port}/${p.protocol}`;

// ------------------------------------------------------------------------------ api

function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value != null && value !== '') query.set(key, value);
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

// JSON of a request; an error status throws the server's `{"error": …}` message.
async function api(path, params, options) {
  const response = await fetch(withQuery(path, params), options);
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  }
  return body;
}

// ------------------------------------------------------------------------------ page

const state = {
  overview: null,
  view: null, // the last /api/view answer, shared by the graph and the matrix
  nodes: new Map(), // node id -> node of the view
  cells: new Map(), // "from,to" (ids) -> cell of the view
  filter: { namespace: '', port: '', protocol: 'TCP', verdict: '' },
  viewToken: 0, // only the answer to the latest view request is drawn
};

const onShow = {}; // tab name -> run each time the tab is shown

function showTab(name) {
  for (const button of document.querySelectorAll('#tabs button')) {
    button.classList.toggle('active', button.dataset.tab === name);
  }
  for (const section of document.querySelectorAll('main > .tab')) {
    section.classList.toggle('active', section.id === `tab-${name}`);
  }
  if (onShow[name]) onShow[name]();
}

async function init() {
  for (const button of document.querySelectorAll('#tabs button')) {
    button.addEventListener('click', () => showTab(button.dataset.tab));
  }
  try {
    state.overview = await api('/api/overview');
  } catch (e) {
    $('#counts').textContent = `cannot read the overview: ${e.message}`;
    return;
  }
  renderOverview();
  setupGraph();
  setupFilters();
  setupPolicies();
  setupWhatif();
  setupFlows();
  await loadView();
}

function renderOverview() {
  const o = state.overview;
  $('#counts').textContent = [
    plural(o.pods, 'pod'),
    plural(o.endpoints, 'endpoint'),
    plural(o.policies, 'policy', 'policies'),
    plural(o.namespaces.length, 'namespace'),
  ].join(' · ');
  const diagnostics = o.diagnostics || [];
  if (!diagnostics.length && !o.input_errors) return;
  const banner = $('#banner');
  const title = o.input_errors
    ? 'The input has errors: what could not be read is left out, answers may be incomplete'
    : 'The input has warnings';
  banner.append(
    h('details', { open: diagnostics.length <= 5 },
      h('summary', { text: `${title} (${plural(diagnostics.length, 'diagnostic')})` }),
      h('ul', {}, diagnostics.map((d) => h('li', { text: d })))));
  banner.hidden = false;
}

async function loadView() {
  const f = state.filter;
  const token = ++state.viewToken;
  syncFilters();
  $('#graph-note').textContent = 'loading…';
  let view;
  try {
    view = await api('/api/view', {
      namespace: f.namespace,
      port: f.port,
      protocol: f.port ? f.protocol : '',
    });
  } catch (e) {
    if (token === state.viewToken) $('#graph-note').textContent = `cannot load the view: ${e.message}`;
    return;
  }
  if (token !== state.viewToken) return;
  state.view = view;
  state.nodes = new Map(view.nodes.map((n) => [n.id, n]));
  state.cells = new Map(view.cells.map((c) => [`${c[0]},${c[1]}`, c]));
  drawGraph();
  matrixDirty = true;
  if ($('#tab-matrix').classList.contains('active')) renderMatrix();
  document.body.dataset.ready = '1';
}

function zoomInto(namespace) {
  state.filter.namespace = namespace;
  loadView();
}

// Label of a node: a class is named by its first member and how many more it stands for.
function nodeLabel(n) {
  if (n.kind !== 'class') return n.name;
  const others = n.members.length - 1 + n.more_members;
  return others > 0 ? `${n.members[0]} +${others}` : n.members[0];
}

// ------------------------------------------------------------------------------ graph

const EDGE_LIMIT = 3000; // past this many arrows, only those of one node are drawn

const graph = {
  svg: $('#graph'),
  vb: { x: 0, y: 0, w: 1, h: 1 }, // the current viewBox (pan and zoom change it)
  edges: [], // cells drawn as arrows
  layer: null, // <g> of the arrows
  hovered: null, // node id last under the mouse: its arrows stay drawn, to be clicked
  selected: null, // {node: id} or {edge: "from,to"}
  drag: null,
  dragged: false, // the last press moved the view: its click selects nothing
};

function setupGraph() {
  const svg = graph.svg;
  svg.addEventListener('click', (e) => {
    if (graph.dragged) return;
    const title = e.target.closest('.box-title');
    const edge = e.target.closest('path.edge');
    const node = e.target.closest('.node');
    if (title) zoomInto(title.dataset.namespace);
    else if (edge) selectEdge(edge.dataset.key);
    else if (node) selectNode(Number(node.dataset.id));
  });
  svg.addEventListener('dblclick', (e) => {
    const node = e.target.closest('.node.namespace');
    if (node) zoomInto(state.nodes.get(Number(node.dataset.id)).namespace);
  });
  svg.addEventListener('mouseover', (e) => {
    const node = e.target.closest('.node');
    if (node) hoverNode(Number(node.dataset.id));
  });
  svg.addEventListener('wheel', zoomGraph, { passive: false });
  svg.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    graph.drag = { x: e.clientX, y: e.clientY, vx: graph.vb.x, vy: graph.vb.y, scale: unitsPerPixel() };
    graph.dragged = false;
  });
  // On the window, not the svg: capturing the pointer would send the click to the svg itself.
  window.addEventListener('pointermove', (e) => {
    const d = graph.drag;
    if (!d) return;
    const dx = e.clientX - d.x;
    const dy = e.clientY - d.y;
    if (!graph.dragged && Math.hypot(dx, dy) < 4) return; // still a click
    graph.dragged = true;
    graph.vb.x = d.vx - dx * d.scale;
    graph.vb.y = d.vy - dy * d.scale;
    applyViewBox();
  });
  window.addEventListener('pointerup', () => { graph.drag = null; });
  $('#graph-reset').addEventListener('click', () => {
    graph.vb = { x: 0, y: 0, w: state.view.width, h: state.view.height };
    applyViewBox();
  });
  $('#graph-back').addEventListener('click', (e) => {
    e.preventDefault();
    zoomInto('');
  });
}

function applyViewBox() {
  const { x, y, w, h: height } = graph.vb;
  graph.svg.setAttribute('viewBox', `${x} ${y} ${w} ${height}`);
}

// SVG units per screen pixel: the view is scaled to fit ("meet") the panel.
function unitsPerPixel() {
  const r = graph.svg.getBoundingClientRect();
  return Math.max(graph.vb.w / r.width, graph.vb.h / r.height);
}

// Zooms around the point under the mouse, between 1/20 and 4 times the whole drawing.
function zoomGraph(e) {
  e.preventDefault();
  const vb = graph.vb;
  const p = new DOMPoint(e.clientX, e.clientY).matrixTransform(graph.svg.getScreenCTM().inverse());
  const k = Math.min(Math.max(Math.exp(e.deltaY * 0.0015), state.view.width / 20 / vb.w),
    state.view.width * 4 / vb.w);
  vb.x = p.x - (p.x - vb.x) * k;
  vb.y = p.y - (p.y - vb.y) * k;
  vb.w *= k;
  vb.h *= k;
  applyViewBox();
}

function drawGraph() {
  const v = state.view;
  graph.edges = v.cells.filter((c) => c[2] > 0 && c[0] !== c[1]);
  graph.selected = null;
  graph.hovered = null;
  graph.vb = { x: 0, y: 0, w: v.width, h: v.height };
  applyViewBox();
  graph.layer = s('g', { class: 'edges' });
  graph.svg.replaceChildren(
    s('defs', {}, arrowMarker('allowed'), arrowMarker('partial')),
    s('g', { class: 'boxes' }, v.boxes.map(drawBox)),
    graph.layer,
    s('g', { class: 'nodes' }, v.nodes.map(drawNode)));
  drawEdges();

  const f = state.filter;
  $('#graph-back').hidden = !v.namespace;
  $('#graph-title').textContent = [
    v.namespace ? `namespace ${v.namespace}` : 'all namespaces',
    `level: ${v.level}`,
    `${plural(v.nodes.length, 'node')}, ${plural(graph.edges.length, 'arrow')}`,
    f.port ? `on ${f.port}/${f.protocol}` : 'on any port',
  ].join(' · ');
}

function arrowMarker(kind) {
  return s('marker', {
    id: `arrow-${kind}`, class: `arrowhead ${kind}`, viewBox: '0 0 10 10', refX: 9, refY: 5,
    markerWidth: 6, markerHeight: 6, orient: 'auto',
  }, s('path', { d: 'M0,0 L10,5 L0,10 z' }));
}

function drawBox(box) {
  return s('g', { class: 'box' },
    s('rect', { x: box.x, y: box.y, width: box.w, height: box.h, rx: 6 }),
    s('text', { class: 'box-title', x: box.x + 8, y: box.y + 16, 'data-namespace': box.name },
      box.name, s('title', { text: `look inside ${box.name}` })));
}

function nodeRadius(n) {
  return { namespace: 14, class: 11 }[n.kind] || 8;
}

function drawNode(n) {
  const r = nodeRadius(n);
  const open = !n.isolated.ingress && !n.isolated.egress;
  const isolation = open ? 'not isolated' : `isolated: ${isolatedText(n)}`;
  return s('g', {
    class: `node ${n.kind}${open ? ' open' : ''}`, 'data-name': n.name, 'data-id': n.id,
    transform: `translate(${n.x},${n.y})`,
  },
  s('circle', { r }),
  s('text', { y: r + 12, 'text-anchor': 'middle' }, nodeLabel(n)),
  s('title', { text: `${n.name}\n${n.kind}, ${plural(n.pods, 'pod')}\n${isolation}` }));
}

function isolatedText(n) {
  const sides = [n.isolated.ingress && 'ingress', n.isolated.egress && 'egress'].filter(Boolean);
  return sides.length ? sides.join(' and ') : 'neither direction: everything is allowed';
}

// The node whose arrows alone are drawn when there are too many: last hovered, else selected.
function focusNode() {
  const sel = graph.selected;
  if (graph.hovered != null) return graph.hovered;
  if (sel && sel.node != null) return sel.node;
  return sel && sel.edge ? state.cells.get(sel.edge)[0] : null;
}

function drawEdges() {
  const big = graph.edges.length > EDGE_LIMIT;
  const focus = focusNode();
  const shown = big ? graph.edges.filter((c) => c[0] === focus || c[1] === focus) : graph.edges;
  const fragment = document.createDocumentFragment();
  for (const cell of shown) fragment.append(drawEdge(cell));
  graph.layer.replaceChildren(fragment);
  markSelection();
  $('#graph-note').textContent = big
    ? `${graph.edges.length} arrows are too many to draw: hover or select a node to see its own`
    : '';
}

function drawEdge(cell) {
  const [fromId, toId, allowed, total] = cell;
  const a = state.nodes.get(fromId);
  const b = state.nodes.get(toId);
  const kind = allowed === total ? 'allowed' : 'partial';
  const d = arrowPath(a, b);
  // A thin visible line, and a wide transparent path over it that takes the clicks.
  return s('g', { class: `edge-group ${kind}` },
    s('path', { class: 'edge-line', d, 'marker-end': `url(#arrow-${kind})` }),
    s('path', { class: 'edge', d, 'data-from': a.name, 'data-to': b.name, 'data-key': `${fromId},${toId}` },
      s('title', { text: `${a.name} → ${b.name}\n${allowed} of ${total} pod pairs allowed` })));
}

// A slight bend to the right of the direction keeps A→B and B→A apart; the ends stop at the
// circles so the arrowhead stays visible.
function arrowPath(a, b) {
  const len = Math.hypot(b.x - a.x, b.y - a.y) || 1;
  const bend = Math.min(24, len * 0.12);
  const cx = (a.x + b.x) / 2 - ((b.y - a.y) / len) * bend;
  const cy = (a.y + b.y) / 2 + ((b.x - a.x) / len) * bend;
  const toward = (p, r) => {
    const l = Math.hypot(cx - p.x, cy - p.y) || 1;
    return `${(p.x + ((cx - p.x) / l) * r).toFixed(1)},${(p.y + ((cy - p.y) / l) * r).toFixed(1)}`;
  };
  return `M${toward(a, nodeRadius(a) + 1)} Q${cx.toFixed(1)},${cy.toFixed(1)} ${toward(b, nodeRadius(b) + 2)}`;
}

function markSelection() {
  for (const el of graph.svg.querySelectorAll('.selected')) el.classList.remove('selected');
  const sel = graph.selected;
  if (!sel) return;
  const el = sel.edge
    ? graph.svg.querySelector(`path.edge[data-key="${sel.edge}"]`)
    : graph.svg.querySelector(`.node[data-id="${sel.node}"]`);
  if (el) (sel.edge ? el.parentNode : el).classList.add('selected');
}

function hoverNode(id) {
  if (graph.hovered === id) return;
  graph.hovered = id;
  if (graph.edges.length > EDGE_LIMIT) drawEdges();
}

function selectNode(id) {
  graph.selected = { node: id };
  if (graph.edges.length > EDGE_LIMIT) drawEdges();
  else markSelection();
  showNode(state.nodes.get(id));
}

function selectEdge(key) {
  graph.selected = { edge: key };
  markSelection();
  const cell = state.cells.get(key);
  openCheck(state.nodes.get(cell[0]), state.nodes.get(cell[1]), cell);
}

// ------------------------------------------------------------------------------ matrix

const TABLE_LIMIT = 60; // more nodes than this: a canvas heatmap instead of a table
let matrixDirty = true; // the view changed since the matrix was drawn

onShow.matrix = () => {
  if (matrixDirty && state.view) renderMatrix();
};

function setupFilters() {
  const o = state.overview;
  $('#f-namespace').append(...o.namespaces.map((ns) => h('option', { value: ns, text: ns })));
  const ports = [...new Set(o.ports.map((p) => p.port))].sort((a, b) => a - b);
  $('#f-port').append(...ports.map((p) => h('option', { value: p, text: p })));

  $('#f-namespace').addEventListener('change', (e) => zoomInto(e.target.value));
  $('#f-port').addEventListener('change', (e) => {
    const port = e.target.value;
    state.filter.port = port;
    // Switch to a protocol the port is mentioned with, unless the chosen one is among them.
    const protocols = o.ports.filter((p) => String(p.port) === port).map((p) => p.protocol);
    if (protocols.length && !protocols.includes(state.filter.protocol)) {
      state.filter.protocol = protocols[0];
    }
    loadView();
  });
  $('#f-protocol').addEventListener('change', (e) => {
    state.filter.protocol = e.target.value;
    loadView();
  });
  $('#f-verdict').addEventListener('change', (e) => {
    state.filter.verdict = e.target.value;
    if (state.view) renderMatrix();
  });
}

// The filter controls follow the state: a click in the graph changes the namespace too.
function syncFilters() {
  const f = state.filter;
  $('#f-namespace').value = f.namespace;
  $('#f-port').value = f.port;
  $('#f-protocol').value = f.protocol;
  $('#f-protocol').disabled = !f.port;
}

function cellVerdict(cell) {
  if (!cell) return 'empty';
  if (cell[2] === 0) return 'denied';
  return cell[2] === cell[3] ? 'allowed' : 'partial';
}

const dimmed = (verdict) => state.filter.verdict !== '' && verdict !== state.filter.verdict;

function renderMatrix() {
  matrixDirty = false;
  const nodes = state.view.nodes;
  $('#matrix-wrap').replaceChildren(nodes.length > TABLE_LIMIT ? matrixCanvas(nodes) : matrixTable(nodes));
}

function matrixTable(nodes) {
  const head = h('tr', {}, h('th', { class: 'corner', text: 'from \\ to' }),
    nodes.map((n) => h('th', { class: 'col', title: n.name }, h('span', { text: nodeLabel(n) }))));
  const rows = nodes.map((from) => h('tr', {},
    h('th', { class: 'row', title: from.name, text: nodeLabel(from) }),
    nodes.map((to) => {
      const verdict = cellVerdict(state.cells.get(`${from.id},${to.id}`));
      return h('td', {
        class: `cell ${verdict}${dimmed(verdict) ? ' dim' : ''}`,
        'data-from': from.name, 'data-to': to.name, 'data-key': `${from.id},${to.id}`,
      });
    })));
  const table = h('table', { class: 'matrix' }, h('thead', {}, head), h('tbody', {}, rows));
  const keyAt = (e) => {
    const td = e.target.closest('td.cell');
    return td && td.dataset.key;
  };
  table.addEventListener('mousemove', (e) => showCellTip(e, keyAt(e)));
  table.addEventListener('mouseleave', () => showCellTip(null, null));
  table.addEventListener('click', (e) => openCellCheck(keyAt(e)));
  return table;
}

function matrixCanvas(nodes) {
  const n = nodes.length;
  const size = Math.max(2, Math.min(14, Math.floor(800 / n)));
  const ratio = window.devicePixelRatio || 1;
  const canvas = h('canvas', { class: 'matrix' });
  canvas.width = n * size * ratio;
  canvas.height = n * size * ratio;
  canvas.style.width = `${n * size}px`;
  canvas.style.height = `${n * size}px`;
  const ctx = canvas.getContext('2d');
  ctx.scale(ratio, ratio);
  const css = getComputedStyle(document.documentElement);
  const colour = (verdict) => css.getPropertyValue(`--${verdict}`).trim();
  const index = new Map(nodes.map((node, i) => [node.id, i]));

  // Grey everywhere first, then only the cells that have pairs: the view lists just those.
  ctx.globalAlpha = dimmed('empty') ? 0.15 : 1;
  ctx.fillStyle = colour('empty');
  ctx.fillRect(0, 0, n * size, n * size);
  for (const cell of state.view.cells) {
    const verdict = cellVerdict(cell);
    ctx.globalAlpha = dimmed(verdict) ? 0.15 : 1;
    ctx.fillStyle = colour(verdict);
    ctx.fillRect(index.get(cell[1]) * size, index.get(cell[0]) * size, size, size);
  }
  // Lines between namespaces, so the blocks of one namespace stand out.
  ctx.globalAlpha = 1;
  ctx.fillStyle = '#fff';
  for (let i = 1; i < n; i++) {
    if (nodes[i].namespace === nodes[i - 1].namespace) continue;
    ctx.fillRect(0, i * size - 0.5, n * size, 1);
    ctx.fillRect(i * size - 0.5, 0, 1, n * size);
  }

  const keyAt = (e) => {
    const row = nodes[Math.floor(e.offsetY / size)];
    const col = nodes[Math.floor(e.offsetX / size)];
    return row && col ? `${row.id},${col.id}` : null;
  };
  canvas.addEventListener('mousemove', (e) => showCellTip(e, keyAt(e)));
  canvas.addEventListener('mouseleave', () => showCellTip(null, null));
  canvas.addEventListener('click', (e) => openCellCheck(keyAt(e)));
  return h('div', {}, h('p', { class: 'hint', text: `${n} nodes: hover a cell for its names.` }), canvas);
}

function portSetText(set) {
  return typeof set === 'string' ? set : set.text;
}

function showCellTip(e, key) {
  const tip = $('#tooltip');
  if (!key) {
    tip.hidden = true;
    return;
  }
  const [fromId, toId] = key.split(',').map(Number);
  const cell = state.cells.get(key);
  const lines = [`${state.nodes.get(fromId).name} → ${state.nodes.get(toId).name}`];
  if (!cell) lines.push('no pod pairs');
  else {
    lines.push(`${cell[2]} of ${plural(cell[3], 'pod pair')} allowed`);
    if (cell[4] >= 0) lines.push(`ports: ${portSetText(state.view.port_sets[cell[4]])}`);
  }
  tip.replaceChildren(...lines.map((line) => h('div', { text: line })));
  tip.hidden = false;
  tip.style.left = `${Math.min(e.clientX + 14, window.innerWidth - tip.offsetWidth - 8)}px`;
  tip.style.top = `${Math.min(e.clientY + 14, window.innerHeight - tip.offsetHeight - 8)}px`;
}

function openCellCheck(key) {
  if (!key) return;
  const [fromId, toId] = key.split(',').map(Number);
  openCheck(state.nodes.get(fromId), state.nodes.get(toId), state.cells.get(key));
}

// ------------------------------------------------------------------------------ detail

const detail = $('#detail');
let checkToken = 0; // only the answer to the latest check is shown

function showNode(n) {
  checkToken++;
  detail.removeAttribute('data-verdict');
  const more = n.more_members ? [h('li', { class: 'muted', text: `… and ${n.more_members} more` })] : [];
  fill(detail,
    h('h2', { text: n.name }),
    h('p', { class: 'muted', text: `${n.kind}, ${plural(n.pods, 'pod')}` }),
    h('dl', {},
      h('dt', { text: 'isolated' }), h('dd', { text: isolatedText(n) }),
      h('dt', { text: 'declared ports' }),
      h('dd', { text: n.ports.length ? n.ports.map(portText).join(', ') : 'none' }),
      h('dt', { text: 'stands for' }),
      h('dd', {}, h('ul', {}, n.members.map((m) => h('li', { text: m })), more))),
    n.kind === 'namespace' && h('button', {
      type: 'button', text: `look inside ${n.namespace}`, onclick: () => zoomInto(n.namespace),
    }));
}

// The port a click checks: the filter's; else the first port the cell allows; else the
// destination's first declared port; else 80/TCP.
function checkPort(to, cell) {
  if (state.filter.port) return { port: Number(state.filter.port), protocol: state.filter.protocol };
  if (cell && cell[2] > 0 && cell[4] >= 0) {
    const port = portFromSet(state.view.port_sets[cell[4]], to.ports);
    if (port) return port;
  }
  return to.ports[0] || { port: 80, protocol: 'TCP' };
}

// The first port of a port set. Sets read "TCP:80,443 UDP:53", "TCP:1000-2000", "TCP:all"
// or "all ports" (rule texts say "TCP 80, TCP 443" and "every port"); a whole protocol or
// every port is checked on a port the destination declares.
function portFromSet(set, declared) {
  const text = portSetText(set);
  if (/all ports|every port/i.test(text)) return declared[0] || { port: 80, protocol: 'TCP' };
  const match = /\b(TCP|UDP|SCTP)[:\s]+(\d+|all)/i.exec(text);
  if (!match) return set.first || null;
  const protocol = match[1].toUpperCase();
  if (match[2].toLowerCase() !== 'all') return { port: Number(match[2]), protocol };
  return declared.find((p) => p.protocol === protocol) || { port: 80, protocol };
}

function openCheck(from, to, cell) {
  // The server names a pair that allows the cell's ports (cell[5], cell[6]); otherwise the
  // first members, or two different members of a node to itself.
  const src = (cell && cell[5]) || from.members[0];
  const dst = (cell && cell[6]) || (from === to && to.members.length > 1 ? to.members[1] : to.members[0]);
  const { port, protocol } = checkPort(to, cell);
  const title = from === to ? `within ${from.name}` : `${from.name} → ${to.name}`;
  const inputs = {
    src: h('input', { name: 'src', value: src, required: true }),
    dst: h('input', { name: 'dst', value: dst, required: true }),
    port: h('input', { name: 'port', type: 'number', min: 1, max: 65535, value: port, required: true }),
    protocol: h('select', { name: 'protocol' },
      ['TCP', 'UDP', 'SCTP'].map((p) => h('option', { text: p, selected: p === protocol }))),
  };
  const result = h('div', { class: 'check-result' });
  const query = () => ({
    src: inputs.src.value.trim(), dst: inputs.dst.value.trim(),
    port: inputs.port.value, protocol: inputs.protocol.value,
  });
  const field = (label, input) => h('label', {}, h('span', { text: label }), input);
  const counts = cell && cell[3] > 1
    ? h('p', { class: 'muted', text: `${cell[2]} of ${plural(cell[3], 'pod pair')} allowed; checking one of them` })
    : null;
  fill(detail,
    h('h2', { text: title }),
    counts,
    h('form', {
      class: 'check-form',
      onsubmit: (e) => {
        e.preventDefault();
        runCheck(query(), result);
      },
    },
    field('source', inputs.src),
    field('destination', inputs.dst),
    h('div', { class: 'row' }, field('port', inputs.port), field('protocol', inputs.protocol),
      h('button', { type: 'submit', text: 'check' }))),
    result);
  runCheck(query(), result);
}

async function runCheck(query, result) {
  const token = ++checkToken;
  detail.removeAttribute('data-verdict');
  result.replaceChildren(h('p', { class: 'muted', text: 'checking…' }));
  let answer;
  try {
    answer = await api('/api/check', query);
  } catch (e) {
    if (token === checkToken) result.replaceChildren(h('p', { class: 'error', text: e.message }));
    return;
  }
  if (token !== checkToken) return;
  const verdict = answer.allowed ? 'ALLOWED' : 'DENIED';
  fill(result,
    h('div', { class: `verdict ${verdict.toLowerCase()}`, text: verdict }),
    h('p', { class: 'muted', text: `${answer.src} -> ${answer.dst} on ${answer.port}/${answer.protocol}` }),
    renderSide(`egress of ${answer.src}`, answer.egress),
    renderSide(`ingress of ${answer.dst}`, answer.ingress),
    answer.input_errors && h('p', { class: 'warn', text: 'The input has errors: this answer may be incomplete.' }));
  detail.dataset.verdict = verdict;
}

const SIDE_WORDS = {
  admitted: 'admitted',
  'no-rule-admits': 'no rule of the isolating policies admits it',
  'not-isolated': 'not isolated: no policy selects it in this direction',
  'not-governed': 'not governed by NetworkPolicy (outside address or hostNetwork pod)',
  loopback: "a pod's connection to itself never leaves it: always allowed",
};

function renderSide(title, side) {
  return h('section', { class: `side ${side.allows ? 'allows' : 'denies'}` },
    h('h3', { text: title }),
    h('p', { class: 'side-verdict', text: `${side.allows ? 'allows' : 'denies'}: ${SIDE_WORDS[side.verdict] || side.verdict}` }),
    side.isolating_policies.length > 0 &&
      h('p', {}, 'isolated by ', interleave(side.isolating_policies.map(policyLink), ', ')),
    side.admitted_by.length > 0 && h('ul', { class: 'rules' }, side.admitted_by.map((rule) => {
      // The text starts with the policy's name: that part becomes the link.
      const rest = rule.text.startsWith(rule.policy) ? rule.text.slice(rule.policy.length) : `: ${rule.text}`;
      return h('li', {}, 'admitted by ', policyLink(rule.policy), rest);
    })));
}

function policyLink(name) {
  return h('button', { type: 'button', class: 'link', text: name, onclick: () => showPolicy(name) });
}

// ------------------------------------------------------------------------------ policies

const policies = { q: null, loaded: 0, token: 0 }; // q: the search shown (null: none yet)

onShow.policies = () => {
  if (policies.q === null) loadPolicies('', false);
};

function setupPolicies() {
  let timer;
  $('#policy-q').addEventListener('input', (e) => {
    clearTimeout(timer);
    timer = setTimeout(() => loadPolicies(e.target.value.trim(), false), 250);
  });
  $('#policy-more').addEventListener('click', () => loadPolicies(policies.q, true));
}

function showPolicy(name) {
  $('#policy-q').value = name;
  loadPolicies(name, false); // before showTab, whose first showing would load every policy
  showTab('policies');
}

async function loadPolicies(q, more) {
  const token = ++policies.token;
  const list = $('#policy-list');
  const button = $('#policy-more');
  if (!more) {
    policies.q = q;
    policies.loaded = 0;
    list.replaceChildren(h('p', { class: 'muted', text: 'loading…' }));
  }
  button.disabled = true;
  let page;
  try {
    page = await api('/api/policies', { q, offset: policies.loaded, limit: 100 });
  } catch (e) {
    if (token === policies.token) list.append(h('p', { class: 'error', text: e.message }));
    return;
  } finally {
    if (token === policies.token) button.disabled = false;
  }
  if (token !== policies.token) return;
  if (!more) list.replaceChildren();
  list.append(...page.policies.map(policyCard));
  policies.loaded += page.policies.length;
  if (!page.total) list.append(h('p', { class: 'muted', text: q ? `no policy name contains "${q}"` : 'no policies' }));
  $('#policy-count').textContent = `${policies.loaded} of ${plural(page.total, 'policy', 'policies')}`;
  button.hidden = policies.loaded >= page.total;
}

function policyCard(p) {
  const item = (label, value) => h('p', {}, h('b', { text: `${label} ` }), value);
  return h('article', { class: 'card policy', 'data-name': p.name },
    h('header', {}, h('h3', { text: p.name }), p.origin && h('span', { class: 'muted', text: p.origin }),
      h('button', { type: 'button', class: 'edit', text: 'edit in what-if', onclick: (e) => editPolicy(p.name, e.target) })),
    item('selects', p.selects),
    item('selected', p.selected.length ? p.selected.join(', ') : 'no endpoint'),
    item('isolates', p.isolates.length ? p.isolates.join(' and ') : 'nothing'),
    p.rules.length === 0
      ? h('p', { class: 'muted', text: 'no rules: admits nothing in the directions it isolates' })
      : h('table', { class: 'rules' },
        h('thead', {}, h('tr', {}, ['direction', 'rule', 'peers', 'ports', 'effective'].map((t) => h('th', { text: t })))),
        h('tbody', {}, p.rules.map((r) => h('tr', { class: r.effective ? null : 'ineffective' },
          h('td', { text: r.direction }),
          h('td', { text: r.rule }),
          h('td', {}, r.peers, r.peer_endpoints.length > 0 &&
            h('div', { class: 'muted small', text: r.peer_endpoints.join(', ') })),
          h('td', { text: r.ports }),
          h('td', { text: r.effective ? 'yes' : 'no: policyTypes leave this direction out' }))))));
}

// Its manifest into the what-if panel; a policy read from the API server has none here.
async function editPolicy(name, button) {
  try {
    const source = await api('/api/policy-source', { name });
    $('#whatif-text').value = source.text;
    showTab('whatif');
  } catch (e) {
    button.replaceWith(h('span', { class: 'error', text: e.message }));
  }
}

// ------------------------------------------------------------------------------ lint

let lintStarted = false; // the server lints once; the page asks once

onShow.lint = () => {
  if (!lintStarted) loadLint();
};

async function loadLint() {
  lintStarted = true;
  const out = $('#lint-result');
  out.replaceChildren(h('p', { class: 'muted', text: 'linting…' }));
  let report;
  try {
    report = await api('/api/lint');
  } catch (e) {
    lintStarted = false;
    out.replaceChildren(h('p', { class: 'error', text: e.message }),
      h('button', { type: 'button', text: 'try again', onclick: loadLint }));
    return;
  }
  const { errors, warnings, notes } = report.summary;
  out.replaceChildren(h('p', { class: 'summary', text: [plural(errors, 'error'), plural(warnings, 'warning'), plural(notes, 'note')].join(', ') }));
  if (!report.findings.length) out.append(h('p', { text: 'No findings.' }));
  for (const severity of ['error', 'warning', 'note']) {
    const group = report.findings.filter((f) => f.severity === severity);
    if (group.length) out.append(h('h2', { class: severity, text: `${severity}s (${group.length})` }), ...group.map(findingCard));
  }
}

function findingCard(f) {
  const loc = f.location;
  return h('article', { class: `card finding ${f.severity}` },
    h('header', {},
      h('span', { class: `badge ${f.severity}`, text: f.severity }),
      h('code', { text: `${f.id} ${f.name}` }),
      loc && h('span', { class: 'muted', text: `${loc.file}:${loc.line}` })),
    h('p', { class: 'message', text: f.message }),
    f.objects.length > 0 && h('p', { class: 'objects' }, interleave(f.objects.map(objectLink), ', ')),
    f.details.length > 0 && h('ul', {}, f.details.map((d) => h('li', { text: d }))),
    f.fix && h('p', { class: 'fix' }, h('b', { text: 'fix: ' }), f.fix));
}

// "NetworkPolicy ns/name" opens that policy; other objects are plain text.
function objectLink(object) {
  const match = /^NetworkPolicy (.+)$/.exec(object);
  return match
    ? h('button', { type: 'button', class: 'link', text: object, onclick: () => showPolicy(match[1]) })
    : h('span', { text: object });
}

// ------------------------------------------------------------------------------ what-if

// A hint, not a value: a sample of one cluster would be nonsense on another.
const WHATIF_HINT = `Paste manifests here (a NetworkPolicy, usually), or press "edit in what-if" on a
policy in the Policies tab to change one that exists. Nothing is applied.`;

const SHOWN_CHANGES = 1000; // per list; a browser list of 100k items is of no use to anyone

const ROLE_WORDS = {
  source_egress: "the source's egress",
  destination_ingress: "the destination's ingress",
  source: 'the source',
  destination: 'the destination',
};

function setupWhatif() {
  const text = $('#whatif-text');
  text.placeholder = WHATIF_HINT;
  $('#whatif-run').addEventListener('click', runWhatif);
  text.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) runWhatif();
  });
}

async function runWhatif() {
  const out = $('#whatif-result');
  const button = $('#whatif-run');
  out.dataset.state = 'running';
  out.replaceChildren(h('p', { class: 'muted', text: 'comparing…' }));
  button.disabled = true;
  try {
    const answer = await api('/api/whatif', null, {
      method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: $('#whatif-text').value,
    });
    fill(out, whatifParts(answer));
    out.dataset.state = 'done';
  } catch (e) {
    out.replaceChildren(h('p', { class: 'error', text: e.message }));
    out.dataset.state = 'error';
  } finally {
    button.disabled = false;
  }
}

function whatifParts(answer) {
  const diff = answer.diff;
  const parts = [];
  if (answer.diagnostics.length) {
    parts.push(h('div', { class: 'warn' },
      h('b', { text: answer.input_errors ? 'The text has errors; what could be read was compared:' : 'Diagnostics:' }),
      h('ul', {}, answer.diagnostics.map((d) => h('li', { text: d })))));
  }
  if (!diff.added.length && !diff.removed.length) {
    parts.push(h('p', { class: 'none', text: 'no connection changes' }));
  } else {
    parts.push(changeList('Added connections', diff.added, 'added'),
      changeList('Removed connections', diff.removed, 'removed'));
  }
  parts.push(h('h3', { text: 'Policy changes' }), diff.policy_changes.length
    ? h('ul', {}, diff.policy_changes.map((c) => h('li', { text: `${c.object} ${c.change}` })))
    : h('p', { class: 'muted', text: 'no policy changed' }));
  for (const [list, which] of [[diff.endpoints_added, 'only with the new manifests'], [diff.endpoints_removed, 'only without them']]) {
    if (list.length) parts.push(h('p', { class: 'muted', text: `Not compared (${which}): ${list.join(', ')}` }));
  }
  return parts;
}

function changeList(title, changes, kind) {
  const party = (p) => (p.type === 'outside' ? p.range : p.name);
  const items = changes.slice(0, SHOWN_CHANGES).map((c) => h('li', { class: kind },
    h('span', { class: 'conn', text: `${party(c.from)} -> ${party(c.to)}` }), ` on ${c.ports}`,
    h('ul', { class: 'causes' }, c.causes.map((cause) => h('li', {
      text: `because ${cause.object} ${cause.change} (${ROLE_WORDS[cause.role] || cause.role})`,
    })))));
  const cut = changes.length > SHOWN_CHANGES
    ? h('p', { class: 'muted', text: `… and ${changes.length - SHOWN_CHANGES} more` }) : null;
  return [h('h3', { text: `${title} (${changes.length})` }),
    items.length ? h('ul', { class: 'changes' }, items) : h('p', { class: 'muted', text: 'none' }), cut];
}

// ------------------------------------------------------------------------------ flows

const FLOW_ROWS = 1000;
let flowSource = null; // the open EventSource

onShow.flows = () => {
  if (state.overview && state.overview.flows && !flowSource) openFlows();
};

function setupFlows() {
  if (!state.overview.flows) {
    $('#flow-off').hidden = false;
    $('#flow-filters').hidden = true;
    $('#flows').hidden = true;
    return;
  }
  let timer;
  for (const id of ['#flow-namespace', '#flow-pod', '#flow-verdict', '#flow-port']) {
    $(id).addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(openFlows, 300);
    });
  }
}

function openFlows() {
  if (flowSource) flowSource.close();
  const status = $('#flow-status');
  const source = new EventSource(withQuery('/api/flows', {
    namespace: $('#flow-namespace').value.trim(),
    pod: $('#flow-pod').value.trim(),
    verdict: $('#flow-verdict').value,
    port: $('#flow-port').value,
  }));
  flowSource = source;
  status.textContent = 'connecting…';
  // Each connection replays the recent records first: start from an empty table.
  source.onopen = () => {
    $('#flows tbody').replaceChildren();
    status.textContent = 'live';
  };
  source.onerror = () => {
    status.textContent = source.readyState === EventSource.CLOSED ? 'closed: check the filters' : 'reconnecting…';
  };
  source.onmessage = (e) => addFlow(JSON.parse(e.data));
}

function flowEnd(end) {
  if (end.namespace && end.pod) return `${end.namespace}/${end.pod}:${end.port}`;
  return end.ip.includes(':') ? `[${end.ip}]:${end.port}` : `${end.ip}:${end.port}`;
}

function addFlow(r) {
  const tbody = $('#flows tbody');
  const decided = r.folded ? `${r.decided_by} (+${r.folded} alike)` : r.decided_by;
  tbody.prepend(h('tr', {
    class: `flow ${r.verdict.toLowerCase()}`, 'data-verdict': r.verdict,
    title: `node ${r.node}${r.policies.length ? `; policies: ${r.policies.join(', ')}` : ''}`,
  },
  [r.time, flowEnd(r.src), flowEnd(r.dst), r.protocol, r.direction, r.verdict, decided]
    .map((text) => h('td', { text }))));
  while (tbody.rows.length > FLOW_ROWS) tbody.lastElementChild.remove();
}

init();
