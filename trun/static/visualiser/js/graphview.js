// SVG rendering of a laid-out dependency graph with pan and zoom.
//
// Kept fast at thousands of nodes: all edges are one <path>; pan/zoom only
// changes one transform attribute, batched with requestAnimationFrame; labels
// are hidden while zoomed far out (one class on the <svg>); clicks are
// delegated to a single listener. Labels are set with textContent.

import { svg } from "./dom.js";
import { buildModel, layoutModel, shorten, TRUNCATED } from "./graph.js";

const LABEL_LENGTH = 36;
const EDGE_START = 270; // where an edge leaves a node: right of its label
const LABELS_BELOW_SCALE = 0.45;
const READABLE_SCALE = 0.8;
const READABLE_NODES = 300;

export class GraphView {
  constructor(container, { onSelect, onOpen } = {}) {
    this.container = container;
    this.onSelect = onSelect || (() => {});
    this.onOpen = onOpen || (() => {});
    this.scale = 1;
    this.tx = 0;
    this.ty = 0;
    this.frame = 0;
    this.svg = svg("svg", { class: "graph-svg", role: "img", "aria-label": "dependency graph" });
    this.viewport = svg("g", { class: "viewport" });
    this.edgePath = svg("path", { class: "edges" });
    this.highlightPath = svg("path", { class: "edges-highlight" });
    this.nodeLayer = svg("g", { class: "nodes" });
    this.viewport.append(this.edgePath, this.highlightPath, this.nodeLayer);
    this.svg.appendChild(this.viewport);
    container.appendChild(this.svg);
    this._bindEvents();
    // Re-fit when the area changes size (detail panel opening, window resize)
    // until the user pans or zooms.
    this.userMoved = false;
    new ResizeObserver(() => { if (this.layout && !this.userMoved) this.fit({ readable: true }); }).observe(container);
  }

  /** Lay out and draw dep_graph's answer. Returns the model (nodes, truncated count). */
  render(graph, rootId, { inverse = false } = {}) {
    const model = buildModel(graph, rootId);
    const layout = layoutModel(model, { inverse });
    this.model = model;
    this.layout = layout;
    this.inverse = inverse;
    this.selected = -1;
    this.edgePath.setAttribute("d", this._edgesPath(null));
    this.highlightPath.setAttribute("d", "");
    const fragment = document.createDocumentFragment();
    const { x, y } = layout;
    model.nodes.forEach((node, i) => {
      const cls = `node s-${node.status}${i === 0 ? " root" : ""}`;
      const g = svg("g", { class: cls, transform: `translate(${x[i]},${y[i]})`, "data-i": i },
        svg("circle", { r: i === 0 ? 9 : 7 }),
        svg("text", { x: 13, dy: "0.35em" }, shorten(node.label, LABEL_LENGTH)),
        svg("title", {}, node.status === TRUNCATED
          ? `${node.id}\nnot shown: the graph was truncated at [scheduler] max_graph_nodes`
          : `${node.label}\n${node.status}`));
      fragment.appendChild(g);
    });
    this.nodeLayer.replaceChildren(fragment);
    this.userMoved = false;
    this.fit({ readable: true });
    return model;
  }

  _edgesPath(only) {
    const { x, y } = this.layout;
    const parts = [];
    const add = (a, b) => {
      // Edges run from the left node's label end to the right node's circle.
      const [l, r] = x[a] <= x[b] ? [a, b] : [b, a];
      const x1 = x[l] + EDGE_START;
      const y1 = y[l];
      const x2 = x[r] - 9;
      const y2 = y[r];
      const mid = (x1 + x2) / 2;
      parts.push(`M${x1.toFixed(1)},${y1.toFixed(1)}C${mid.toFixed(1)},${y1.toFixed(1)} ${mid.toFixed(1)},${y2.toFixed(1)} ${x2.toFixed(1)},${y2.toFixed(1)}`);
    };
    this.model.children.forEach((kids, v) => {
      for (const c of kids) if (only === null || v === only || c === only) add(v, c);
    });
    return parts.join("");
  }

  /**
   * Scale and centre the whole graph in the visible area. With readable=true a
   * graph of up to READABLE_NODES steps that would need tiny text is instead
   * shown at a readable scale around the root (pan to see the rest).
   */
  fit({ readable = false } = {}) {
    const box = this.container.getBoundingClientRect();
    const width = Math.max(200, box.width);
    const height = Math.max(200, box.height);
    const contentW = this.layout.width + 40;
    const contentH = this.layout.height + 40;
    const fitScale = Math.min(1.2, Math.max(0.02, Math.min(width / contentW, height / contentH)));
    if (readable && fitScale < READABLE_SCALE && this.model.nodes.length <= READABLE_NODES && this.model.nodes.length) {
      this.scale = READABLE_SCALE;
      const rootX = this.layout.x[0];
      const rootY = this.layout.y[0];
      this.tx = this.inverse ? 20 - rootX * this.scale : width - 20 - (rootX + EDGE_START) * this.scale;
      this.ty = height / 2 - rootY * this.scale;
    } else {
      this.scale = fitScale;
      this.tx = (width - (this.layout.width - 30) * this.scale) / 2;
      this.ty = (height - (this.layout.height - 26) * this.scale) / 2;
    }
    this._schedule();
  }

  /** Select node i (highlight its edges). */
  select(i) {
    const old = this.nodeLayer.querySelector("g.node.selected");
    if (old) old.classList.remove("selected");
    this.selected = i;
    if (i < 0) {
      this.highlightPath.setAttribute("d", "");
      return;
    }
    const g = this.nodeLayer.children[i];
    if (g) g.classList.add("selected");
    this.highlightPath.setAttribute("d", this._edgesPath(i));
  }

  _schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.viewport.setAttribute("transform", `translate(${this.tx},${this.ty}) scale(${this.scale})`);
      this.svg.classList.toggle("far", this.scale < LABELS_BELOW_SCALE);
      this.svg.classList.toggle("very-far", this.scale < 0.12);
    });
  }

  _bindEvents() {
    let drag = null;
    this.svg.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      drag = { x: e.clientX, y: e.clientY, tx: this.tx, ty: this.ty, moved: false };
      this.svg.setPointerCapture(e.pointerId);
    });
    this.svg.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const dx = e.clientX - drag.x;
      const dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = this.userMoved = true;
      this.tx = drag.tx + dx;
      this.ty = drag.ty + dy;
      this._schedule();
    });
    const end = (e) => {
      if (!drag) return;
      const moved = drag.moved;
      drag = null;
      if (!moved) this._click(e);
    };
    this.svg.addEventListener("pointerup", end);
    this.svg.addEventListener("pointercancel", () => { drag = null; });
    this.svg.addEventListener("dblclick", (e) => {
      const i = this._nodeAt(e);
      if (i >= 0 && this.model.nodes[i].status !== TRUNCATED) this.onOpen(this.model.nodes[i]);
    });
    this.svg.addEventListener("wheel", (e) => {
      e.preventDefault();
      const box = this.svg.getBoundingClientRect();
      const px = e.clientX - box.left;
      const py = e.clientY - box.top;
      const factor = Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015));
      const scale = Math.min(4, Math.max(0.02, this.scale * factor));
      this.userMoved = true;
      // Zoom around the pointer: the point under it stays put.
      this.tx = px - (px - this.tx) * (scale / this.scale);
      this.ty = py - (py - this.ty) * (scale / this.scale);
      this.scale = scale;
      this._schedule();
    }, { passive: false });
  }

  _nodeAt(e) {
    const target = document.elementFromPoint(e.clientX, e.clientY) || e.target;
    const g = target && target.closest ? target.closest("g.node") : null;
    return g ? Number(g.getAttribute("data-i")) : -1;
  }

  _click(e) {
    const i = this._nodeAt(e);
    this.select(i);
    this.onSelect(i >= 0 ? this.model.nodes[i] : null);
  }

  /** Zoom by factor around the centre (for the +/- buttons). */
  zoom(factor) {
    this.userMoved = true;
    const box = this.svg.getBoundingClientRect();
    const px = box.width / 2;
    const py = box.height / 2;
    const scale = Math.min(4, Math.max(0.02, this.scale * factor));
    this.tx = px - (px - this.tx) * (scale / this.scale);
    this.ty = py - (py - this.ty) * (scale / this.scale);
    this.scale = scale;
    this._schedule();
  }
}
