// The dependency-graph tab: pick a step, show what it needs (or what needs it),
// optionally without DONE steps; click a node for its details, double-click to
// re-centre the graph on it.

import { api } from "./api.js";
import { el, replace } from "./dom.js";
import { GraphView } from "./graphview.js";
import { setState } from "./state.js";

const LEGEND = ["PENDING", "RUNNING", "BATCH_RUNNING", "DONE", "FAILED", "DISABLED", "UNKNOWN", "TRUNCATED"];

export class GraphTab {
  constructor(root, { detail, onRendered } = {}) {
    this.root = root;
    this.detail = detail;
    this.onRendered = onRendered || (() => {});
    this.generation = 0;
    this.input = el("input", { type: "text", class: "graph-step-input", placeholder: "Step id, e.g. MyStep_2024_01_01_abc123",
      "aria-label": "step id" });
    this.invert = el("input", { type: "checkbox", id: "graph-invert" });
    this.hideDone = el("input", { type: "checkbox", id: "graph-hide-done" });
    const form = el("form", { class: "graph-form" }, this.input,
      el("label", {}, this.invert, " What depends on it (upstream)"),
      el("label", {}, this.hideDone, " Hide done"),
      el("button", { type: "submit", class: "button" }, "Show"),
      el("span", { class: "zoom" },
        el("button", { type: "button", class: "button", "aria-label": "zoom in", onclick: () => this.view && this.view.zoom(1.25) }, "+"),
        el("button", { type: "button", class: "button", "aria-label": "zoom out", onclick: () => this.view && this.view.zoom(0.8) }, "\u2212"),
        el("button", { type: "button", class: "button", onclick: () => this.view && this.view.fit() }, "Fit")));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      setState({ stepId: this.input.value.trim(), invert: this.invert.checked ? "1" : "", hideDone: this.hideDone.checked ? "1" : "" });
    });
    for (const box of [this.invert, this.hideDone]) box.addEventListener("change", () => form.requestSubmit());
    this.notice = el("div", { class: "graph-notice", "aria-live": "polite" });
    this.canvas = el("div", { class: "graph-canvas", id: "graph-canvas" });
    this.legend = el("ul", { class: "legend" }, LEGEND.map((s) => el("li", {}, el("span", { class: `dot s-${s}` }), s.replace("_", " "))));
    replace(root, form, this.notice, this.legend, this.canvas);
    this.view = new GraphView(this.canvas, {
      onSelect: (node) => {
        if (!node || node.status === "TRUNCATED") this.detail.close();
        else this.detail.show(node.id);
      },
      onOpen: (node) => setState({ stepId: node.id }),
    });
  }

  async update(state) {
    const stepId = state.stepId || "";
    const inverse = state.invert === "1";
    const hideDone = state.hideDone === "1";
    this.input.value = stepId;
    this.invert.checked = inverse;
    this.hideDone.checked = hideDone;
    const key = JSON.stringify([stepId, inverse, hideDone]);
    if (key === this.shown) return;
    this.shown = key;
    const generation = ++this.generation;
    if (!stepId) {
      replace(this.notice, "Enter a step id, or open a step from the step list and choose \u201cDependency graph\u201d.");
      this.view.render({}, "");
      return;
    }
    replace(this.notice, "Loading\u2026");
    let graph;
    const started = performance.now();
    try {
      graph = inverse ? await api.inverseDepGraph(stepId, !hideDone) : await api.depGraph(stepId, !hideDone);
    } catch (err) {
      if (generation === this.generation) replace(this.notice, el("span", { class: "error-text" }, err.message));
      this.shown = null;
      return;
    }
    if (generation !== this.generation) return;
    if (!graph || !Object.keys(graph).length) {
      replace(this.notice, el("span", { class: "error-text" }, "trund does not know the step "),
        el("span", { class: "mono" }, stepId), ".");
      this.view.render({}, "");
      return;
    }
    const model = this.view.render(graph, stepId, { inverse });
    const count = model.shown.toLocaleString();
    const parts = [`${count} step${model.shown === 1 ? "" : "s"}`,
      inverse ? " (the chosen step on the left, what depends on it to the right)"
        : " (the chosen step on the right, what it needs to its left)"];
    replace(this.notice, ...parts);
    if (model.truncated) {
      this.notice.appendChild(el("div", { class: "warning", "data-field": "truncated" },
        `Graph truncated: trund stopped at ${count} steps ([scheduler] max_graph_nodes). `,
        `${model.truncated.toLocaleString()} further dependencies are drawn dashed as TRUNCATED and not expanded.`));
    }
    this.view.select(0);
    this.detail.show(stepId);
    this.onRendered({ nodes: model.nodes.length, ms: performance.now() - started });
  }
}
