// The scheduler's RPC API (POST /api/<method>, arguments as JSON in the form
// field "data", answer {"response": ...}). URLs are relative to this page so
// the visualiser also works behind a reverse proxy that adds a path prefix.

const API_ROOT = new URL("../../api/", document.baseURI);

export class ApiError extends Error {
  constructor(method, status, message) {
    super(`${method}: ${message}`);
    this.method = method;
    this.status = status;
  }
}

export async function call(method, args = {}) {
  const body = new URLSearchParams({ data: JSON.stringify(args) });
  let response;
  try {
    response = await fetch(new URL(method, API_ROOT), { method: "POST", body });
  } catch (err) {
    throw new ApiError(method, 0, `cannot reach trund (${err.message})`);
  }
  let payload = null;
  try { payload = await response.json(); } catch (_) { payload = null; }
  if (!response.ok) {
    const detail = payload && payload.error ? payload.error : `HTTP ${response.status}`;
    throw new ApiError(method, response.status, detail);
  }
  return payload ? payload.response : null;
}

export const api = {
  stepListPage: (args) => call("step_list_page", args),
  fetchError: (stepId) => call("fetch_error", { step_id: stepId }),
  depGraph: (stepId, includeDone) => call("dep_graph", { step_id: stepId, include_done: includeDone }),
  inverseDepGraph: (stepId, includeDone) => call("inverse_dep_graph", { step_id: stepId, include_done: includeDone }),
  reEnable: (stepId) => call("re_enable_step", { step_id: stepId }),
  forgive: (stepId) => call("forgive_failures", { step_id: stepId }),
  markAsDone: (stepId) => call("mark_as_done", { step_id: stepId }),
  statusMessage: (stepId) => call("get_step_status_message", { step_id: stepId }),
  progress: (stepId) => call("get_step_progress_percentage", { step_id: stepId }),
  sendMessage: (worker, stepId, content) => call("send_scheduler_message", { worker, step: stepId, content }),
  messageResponse: (stepId, messageId) => call("get_scheduler_message_response", { step_id: stepId, message_id: messageId }),
  workers: () => call("worker_list", {}),
  setWorkerProcesses: (worker, n) => call("set_worker_processes", { worker, n }),
  disableWorker: (worker) => call("disable_worker", { worker }),
  resources: () => call("resource_list", {}),
  updateResource: (resource, amount) => call("update_resource", { resource, amount }),
  isPauseEnabled: () => call("is_pause_enabled", {}),
  isPaused: () => call("is_paused", {}),
  pause: () => call("pause", {}),
  unpause: () => call("unpause", {}),
  hasHistory: () => call("has_step_history", {}),
};
