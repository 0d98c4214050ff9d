// Layered (Sugiyama-style) layout of a step's dependency graph, written for
// thousands of nodes: every phase is O(nodes + edges) per pass, no dummy
// nodes, a fixed small number of passes.
//
//   1. layers: longest path from the root (a step is left of everything it needs);
//   2. order within a layer: barycentre sweeps, down then up, to reduce crossings;
//   3. wide layers wrap into several columns of at most maxPerColumn nodes;
//   4. vertical positions: each column is pulled towards the mean position of
//      its neighbours, keeping the order and a minimum gap.
//
// The module is pure (no DOM) so it can be tested and benchmarked alone.

export const TRUNCATED = "TRUNCATED";

const DEFAULTS = {
  maxPerColumn: 0,    // taller layers wrap into more columns; 0: about 3 * sqrt(nodes), roughly square
  columnWidth: 320,   // room for a node and its label
  rowGap: 26,         // minimum vertical distance between two nodes in a column
  sweeps: 4,          // crossing-reduction iterations (halved for very large graphs)
};

/** "Family(a=1, b=2)" from a node of dep_graph's answer (only the root keeps display_name). */
export function displayName(id, node) {
  if (node.display_name) return node.display_name;
  const params = node.params || {};
  const keys = Object.keys(params).sort();
  if (!node.name || node.status === "UNKNOWN" && keys.length === 1 && keys[0] === "step_id") return id;
  return `${node.name}(${keys.map((k) => `${k}=${formatValue(params[k])}`).join(", ")})`;
}

function formatValue(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

export function shorten(text, max) {
  return text.length <= max ? text : text.slice(0, max - 1) + "\u2026";
}

/**
 * Turn dep_graph / inverse_dep_graph's answer into nodes and edges.
 * Dependencies that are referenced but missing from the answer were cut off by
 * [scheduler] max_graph_nodes: they become TRUNCATED placeholder nodes.
 */
export function buildModel(graph, rootId) {
  const ids = Object.keys(graph);
  if (rootId in graph) {
    // The root first: it anchors the layering.
    ids.splice(ids.indexOf(rootId), 1);
    ids.unshift(rootId);
  }
  const index = new Map();
  const nodes = ids.map((id, i) => {
    index.set(id, i);
    const raw = graph[id];
    return { id, status: raw.status || "UNKNOWN", name: raw.name || "", label: displayName(id, raw), raw };
  });
  const children = nodes.map(() => []);
  let truncated = 0;
  for (let i = 0; i < ids.length; i++) {
    for (const dep of graph[ids[i]].deps || []) {
      let j = index.get(dep);
      if (j === undefined) {
        j = nodes.length;
        index.set(dep, j);
        nodes.push({ id: dep, status: TRUNCATED, name: "", label: dep, raw: null });
        children.push([]);
        truncated++;
      }
      children[i].push(j);
    }
  }
  return { nodes, children, truncated, shown: ids.length };
}

function parentsOf(children) {
  const parents = children.map(() => []);
  children.forEach((kids, v) => { for (const c of kids) parents[c].push(v); });
  return parents;
}

/** Longest-path layer of every node; nodes on a cycle fall back to one past their placed parents. */
export function assignLayers(children, parents) {
  const n = children.length;
  const layer = new Int32Array(n);
  const indegree = new Int32Array(n);
  for (let v = 0; v < n; v++) indegree[v] = parents[v].length;
  const queue = [];
  for (let v = 0; v < n; v++) if (indegree[v] === 0) queue.push(v);
  const done = new Uint8Array(n);
  for (let head = 0; head < queue.length; head++) {
    const v = queue[head];
    done[v] = 1;
    for (const c of children[v]) {
      if (layer[c] < layer[v] + 1) layer[c] = layer[v] + 1;
      if (--indegree[c] === 0) queue.push(c);
    }
  }
  for (let v = 0; v < n; v++) {
    if (done[v]) continue;
    let best = 0;
    for (const p of parents[v]) if (done[p] && layer[p] + 1 > best) best = layer[p] + 1;
    layer[v] = best;
    done[v] = 1;
  }
  return layer;
}

function centredPositions(order, pos) {
  const mid = (order.length - 1) / 2;
  for (let i = 0; i < order.length; i++) pos[order[i]] = i - mid;
}

/** Barycentre ordering: each node sorts by the mean position of its neighbours in the previous layers. */
export function orderLayers(layers, layer, children, parents, sweeps) {
  const pos = new Float64Array(layer.length);
  for (const order of layers) centredPositions(order, pos);
  const key = new Float64Array(layer.length);
  const sortLayer = (order, neighbours, before) => {
    for (const v of order) {
      let sum = 0;
      let count = 0;
      for (const u of neighbours[v]) {
        if (before(layer[u])) { sum += pos[u]; count++; }
      }
      key[v] = count ? sum / count : pos[v];
    }
    order.sort((a, b) => key[a] - key[b] || pos[a] - pos[b]);
    centredPositions(order, pos);
  };
  for (let s = 0; s < sweeps; s++) {
    for (let L = 1; L < layers.length; L++) sortLayer(layers[L], parents, (l) => l < L);
    for (let L = layers.length - 2; L >= 0; L--) sortLayer(layers[L], children, (l) => l > L);
  }
}

/** Place ys (in order) as close to desired as possible, at least gap apart. */
function placeColumn(column, desired, y, gap) {
  const n = column.length;
  if (!n) return;
  const placed = new Float64Array(n);
  placed[0] = desired[0];
  for (let i = 1; i < n; i++) placed[i] = Math.max(desired[i], placed[i - 1] + gap);
  let shift = 0;
  for (let i = 0; i < n; i++) shift += placed[i] - desired[i];
  shift /= n;
  for (let i = 0; i < n; i++) y[column[i]] = placed[i] - shift;
}

/**
 * Lay out a model from buildModel(). Returns {x, y, columns, width, height}:
 * x/y per node index (x of the node's circle). inverse=false puts the root on the
 * right with what it needs to its left; inverse=true puts it on the left.
 */
export function layoutModel(model, options = {}) {
  const opt = { ...DEFAULTS, ...options };
  const { children } = model;
  const n = children.length;
  const maxPerColumn = opt.maxPerColumn || Math.max(40, Math.ceil(3 * Math.sqrt(n)));
  const parents = parentsOf(children);
  const layer = assignLayers(children, parents);
  let depth = 0;
  for (let v = 0; v < n; v++) if (layer[v] > depth) depth = layer[v];
  const layers = Array.from({ length: n ? depth + 1 : 0 }, () => []);
  for (let v = 0; v < n; v++) layers[layer[v]].push(v);
  let edges = 0;
  for (const kids of children) edges += kids.length;
  const sweeps = edges > 20000 ? Math.max(1, opt.sweeps >> 1) : opt.sweeps;
  orderLayers(layers, layer, children, parents, sweeps);

  // Columns: layer by layer outwards from the root, wide layers wrapped.
  const columns = [];
  const column = new Int32Array(n);
  for (const order of layers) {
    for (let start = 0; start < order.length; start += maxPerColumn) {
      const slice = order.slice(start, start + maxPerColumn);
      for (const v of slice) column[v] = columns.length;
      columns.push(slice);
    }
  }

  const y = new Float64Array(n);
  for (const col of columns) {
    const mid = (col.length - 1) / 2;
    col.forEach((v, i) => { y[v] = (i - mid) * opt.rowGap; });
  }
  const desired = new Float64Array(maxPerColumn);
  const align = (c) => {
    const col = columns[c];
    for (let i = 0; i < col.length; i++) {
      const v = col[i];
      let sum = 0;
      let count = 0;
      for (const u of parents[v]) if (column[u] !== c) { sum += y[u]; count++; }
      for (const u of children[v]) if (column[u] !== c) { sum += y[u]; count++; }
      desired[i] = count ? sum / count : y[v];
    }
    placeColumn(col, desired, y, opt.rowGap);
  };
  for (let pass = 0; pass < 2; pass++) {
    for (let c = 1; c < columns.length; c++) align(c);
    for (let c = columns.length - 2; c >= 0; c--) align(c);
  }

  let minY = Infinity;
  let maxY = -Infinity;
  for (let v = 0; v < n; v++) { if (y[v] < minY) minY = y[v]; if (y[v] > maxY) maxY = y[v]; }
  if (!n) { minY = 0; maxY = 0; }
  const x = new Float64Array(n);
  const last = columns.length - 1;
  for (let v = 0; v < n; v++) {
    const c = options.inverse ? column[v] : last - column[v];
    x[v] = c * opt.columnWidth;
    y[v] -= minY;
  }
  return {
    x, y, layer, column, columns: columns.length,
    width: Math.max(1, columns.length) * opt.columnWidth,
    height: maxY - minY + opt.rowGap,
  };
}

/** Count edge crossings between adjacent columns (used by tests to check the ordering helps). */
export function countCrossings(model, layout) {
  const segments = [];
  model.children.forEach((kids, v) => {
    for (const c of kids) {
      if (Math.abs(layout.column[v] - layout.column[c]) === 1) {
        const [a, b] = layout.column[v] < layout.column[c] ? [v, c] : [c, v];
        segments.push([layout.column[a], layout.y[a], layout.y[b]]);
      }
    }
  });
  let crossings = 0;
  for (let i = 0; i < segments.length; i++) {
    for (let j = i + 1; j < segments.length; j++) {
      const [ci, a1, b1] = segments[i];
      const [cj, a2, b2] = segments[j];
      if (ci === cj && (a1 - a2) * (b1 - b2) < 0) crossings++;
    }
  }
  return crossings;
}
