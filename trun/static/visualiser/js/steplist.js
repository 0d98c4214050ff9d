// The step list: status counts as filters, families sidebar, search, and one
// page of steps at a time. Filtering, counting and paging happen on the server
// (step_list_page), so the page stays fast with 100,000 steps.

import { api } from "./api.js";
import { debounce, el, formatTime, replace, toast } from "./dom.js";
import { getState, hrefFor, setState } from "./state.js";

export const CATEGORIES = [
  "PENDING", "RUNNING", "BATCH_RUNNING", "DONE", "FAILED", "UPSTREAM_FAILED", "DISABLED", "UPSTREAM_DISABLED",
];
const PAGE_SIZES = [25, 50, 100, 250, 500];
const DEFAULT_PAGE_SIZE = 100;
const MAX_FAMILIES_SHOWN = 300;

function selectedStatuses(state) {
  return (state.statuses || "").split(",").filter(Boolean);
}

function pageSize(state) {
  const n = Number(state.length);
  return PAGE_SIZES.includes(n) ? n : DEFAULT_PAGE_SIZE;
}

export function statusBadge(status) {
  return el("span", { class: `badge s-${status}` }, status.replace("_", " "));
}

export class StepList {
  constructor(root, { onRendered } = {}) {
    this.root = root;
    this.onRendered = onRendered || (() => {});
    this.generation = 0;
    this.familyFilter = "";
    this.boxes = el("div", { class: "status-boxes", role: "group", "aria-label": "filter by status" });
    this.families = el("ul", { class: "family-list" });
    this.familyFilterInput = el("input", {
      type: "search", class: "family-filter", placeholder: "Filter families", "aria-label": "filter families",
    });
    this.familyFilterInput.addEventListener("input", () => {
      this.familyFilter = this.familyFilterInput.value.trim().toLowerCase();
      this._renderFamilies();
    });
    this.search = el("input", {
      type: "search", class: "search", id: "step-search", placeholder: "Search steps (all words must match)",
      "aria-label": "search steps",
    });
    this.search.addEventListener("input", debounce(() => {
      setState({ search: this.search.value.trim(), page: "" }, { replace: true });
    }, 250));
    this.summary = el("div", { class: "list-summary", "aria-live": "polite" });
    this.tbody = el("tbody");
    this.pager = el("div", { class: "pager" });
    const table = el("table", { class: "steps", id: "step-table" },
      el("thead", {}, el("tr", {},
        el("th", { class: "col-status" }, "Status"),
        el("th", {}, "Step"),
        el("th", { class: "col-time" }, "Last updated"),
        el("th", { class: "col-worker" }, "Running on"))),
      this.tbody);
    replace(root,
      this.boxes,
      el("div", { class: "list-layout" },
        el("aside", { class: "families", "aria-label": "step families" },
          el("h2", {}, "Step families"),
          this.familyFilterInput,
          el("button", { type: "button", class: "link-button", onclick: () => setState({ family: "", page: "" }) },
            "Clear selection"),
          this.families),
        el("section", { class: "list-main" },
          el("div", { class: "list-toolbar" }, this.search,
            el("button", { type: "button", class: "button", onclick: () => this.refresh() }, "Refresh")),
          this.summary, table, this.pager)));
  }

  /** Fetch and draw the page described by state. */
  async update(state) {
    if (document.activeElement !== this.search) this.search.value = state.search || "";
    const statuses = selectedStatuses(state);
    const limit = pageSize(state);
    const page = Math.max(1, Number(state.page) || 1);
    const generation = ++this.generation;
    let reply;
    try {
      reply = await api.stepListPage({
        status: statuses.join(","), family: state.family || "", search: state.search || "",
        offset: (page - 1) * limit, limit,
      });
    } catch (err) {
      if (generation === this.generation) {
        replace(this.summary, el("span", { class: "error-text" }, err.message));
      }
      return;
    }
    if (generation !== this.generation) return; // a newer request is on its way
    this.reply = reply;
    this.state = state;
    this._renderBoxes(reply.status_counts, statuses);
    this._renderFamilies();
    this._renderRows(reply.steps, state);
    this._renderPager(reply, page, limit);
    this.onRendered(reply);
  }

  refresh() {
    return this.update(getState());
  }

  _renderBoxes(counts, statuses) {
    const boxes = CATEGORIES.map((category) => {
      const active = statuses.includes(category);
      const next = active ? statuses.filter((s) => s !== category) : [...statuses, category];
      return el("button", {
        type: "button", class: `status-box s-${category}${active ? " active" : ""}`,
        "aria-pressed": active ? "true" : "false", "data-status": category,
        onclick: () => setState({ statuses: next.join(","), page: "" }),
      },
      el("span", { class: "count" }, (counts[category] || 0).toLocaleString()),
      el("span", { class: "label" }, category.replace("_", " ")));
    });
    if (counts.UNKNOWN) {
      boxes.push(el("span", { class: "status-box s-UNKNOWN passive", title: "dependencies no worker has reported yet" },
        el("span", { class: "count" }, counts.UNKNOWN.toLocaleString()), el("span", { class: "label" }, "UNKNOWN")));
    }
    replace(this.boxes, boxes);
  }

  _renderFamilies() {
    if (!this.reply) return;
    const selected = (this.state && this.state.family) || "";
    const entries = Object.entries(this.reply.family_counts).sort((a, b) => a[0].localeCompare(b[0]));
    const matching = this.familyFilter
      ? entries.filter(([name]) => name.toLowerCase().includes(this.familyFilter)) : entries;
    const items = matching.slice(0, MAX_FAMILIES_SHOWN).map(([name, count]) => el("li", {},
      el("a", {
        href: hrefFor({ ...this.state, family: name === selected ? "" : name, page: "", stepId: "" }),
        class: name === selected ? "active" : "", "data-family": name,
      }, el("span", { class: "family-name" }, name), el("span", { class: "family-count" }, count.toLocaleString()))));
    if (selected && !this.reply.family_counts[selected]) {
      items.unshift(el("li", {}, el("a", { class: "active", href: hrefFor({ ...this.state, family: "", page: "" }) },
        el("span", { class: "family-name" }, selected), el("span", { class: "family-count" }, "0"))));
    }
    if (matching.length > MAX_FAMILIES_SHOWN) {
      items.push(el("li", { class: "muted" }, `${matching.length - MAX_FAMILIES_SHOWN} more: type to filter`));
    }
    replace(this.families, items);
  }

  _renderRows(steps, state) {
    if (!steps.length) {
      replace(this.tbody, el("tr", {}, el("td", { colspan: 4, class: "empty" },
        state.search || state.family || state.statuses ? "No step matches these filters." : "trund knows no steps yet.")));
      return;
    }
    const rows = steps.map((step) => {
      const href = hrefFor({ ...state, stepId: step.step_id });
      const row = el("tr", { "data-step-id": step.step_id, class: step.step_id === state.stepId ? "selected" : "" },
        el("td", {}, statusBadge(step.category)),
        el("td", { class: "name" }, el("a", { href, class: "step-link" }, step.display_name)),
        el("td", { class: "col-time" }, formatTime(step.last_updated)),
        el("td", { class: "col-worker" }, step.worker_running || ""));
      return row;
    });
    const fragment = document.createDocumentFragment();
    fragment.append(...rows);
    this.tbody.replaceChildren(fragment);
  }

  _renderPager(reply, page, limit) {
    const total = reply.total;
    const first = total ? (page - 1) * limit + 1 : 0;
    const last = Math.min(total, page * limit);
    const pages = Math.max(1, Math.ceil(total / limit));
    replace(this.summary, `Showing ${first.toLocaleString()}\u2013${last.toLocaleString()} of `,
      el("strong", {}, total.toLocaleString()), ` steps (${reply.all_count.toLocaleString()} known to trund)`);
    const sizeSelect = el("select", { "aria-label": "steps per page" },
      PAGE_SIZES.map((n) => el("option", { value: n, selected: n === limit }, `${n} per page`)));
    sizeSelect.addEventListener("change", () => setState({ length: sizeSelect.value, page: "" }));
    replace(this.pager,
      el("button", { type: "button", class: "button", disabled: page <= 1, onclick: () => setState({ page: page - 1 }) },
        "\u2039 Previous"),
      el("span", { class: "page-no" }, `Page ${page.toLocaleString()} of ${pages.toLocaleString()}`),
      el("button", { type: "button", class: "button", disabled: page >= pages,
        onclick: () => setState({ page: page + 1 }) }, "Next \u203a"),
      sizeSelect);
    if (page > pages && total) toast("That page is past the end of the list.");
  }
}
