// Resources tab: used/total per resource, the steps holding it, set a total.

import { api } from "./api.js";
import { el, replace, toast } from "./dom.js";
import { hrefFor } from "./state.js";

export class ResourcesTab {
  constructor(root) {
    this.root = root;
    this.list = el("div", { class: "cards" });
    replace(root, el("h2", {}, "Resources"), this.list);
  }

  async update() {
    let resources;
    try {
      resources = await api.resources();
    } catch (err) {
      replace(this.list, el("p", { class: "error-text" }, err.message));
      return;
    }
    if (!resources.length) {
      replace(this.list, el("p", { class: "muted" }, "No resource is configured (section [resources] of trun.cfg)."));
      return;
    }
    resources.sort((a, b) => a.name.localeCompare(b.name));
    replace(this.list, resources.map((r) => this._card(r)));
  }

  _card(r) {
    const total = Number(r.num_total) || 0;
    const used = Number(r.num_used) || 0;
    const pct = total ? Math.min(100, Math.round((100 * used) / total)) : 0;
    const input = el("input", { type: "number", min: 0, step: 1, value: total, "aria-label": `new total for ${r.name}` });
    const set = el("button", { type: "button", class: "button", onclick: async () => {
      const amount = Number(input.value);
      if (!Number.isInteger(amount) || amount < 0) { toast("The total must be a whole number \u2265 0", "error"); return; }
      try {
        const ok = await api.updateResource(r.name, amount);
        toast(ok ? `${r.name}: total set to ${amount}` : `${r.name}: trund refused ${amount}`, ok ? "info" : "error");
        this.update();
      } catch (err) { toast(err.message, "error"); }
    } }, "Set total");
    const consumers = Object.entries(r.running || {});
    return el("article", { class: "card resource", "data-resource": r.name },
      el("header", {}, el("h3", {}, r.name), el("span", { class: "muted" }, `${used} / ${total} used`)),
      el("div", { class: `progress ${pct >= 100 ? "full" : ""}` }, el("div", { class: "progress-fill", style: `width: ${pct}%` }),
        el("span", { class: "progress-text" }, `${used} / ${total}`)),
      consumers.length ? el("ul", { class: "running" }, consumers.map(([id, step]) => el("li", {},
        el("a", { href: hrefFor({ tab: "steps", stepId: id }) }, step.display_name),
        ` holds ${JSON.stringify((step.resources_running || {})[r.name] ?? step.resources?.[r.name] ?? "")}`)))
        : el("p", { class: "muted" }, "No running step holds it."),
      el("div", { class: "actions" }, input, set));
  }
}
