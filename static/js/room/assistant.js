/**
 * assistant.js: the choice of agent and model for "Ask the assistant", and agent names.
 *
 * Agents come from GET /api/llm/agents, models from GET /api/llm/models (what the Ollama
 * server has). Either may be unavailable (no Ollama running): the selects then offer the
 * defaults only, and the request itself says what is wrong.
 *
 * Models are named as Ollama names them: a name without a tag is `:latest`, so "llama3.2"
 * and "llama3.2:latest" are one model, listed once. The default model is the first option
 * ("Default model (llama3.2:latest)") and not repeated below it.
 */

import { api } from "../api.js";
import { h, replaceChildren } from "../dom.js";

/** The list in a response that may be a bare array or wrapped ({results|models|agents}). */
function listOf(data, key) {
  if (Array.isArray(data)) return data;
  if (data && typeof data === "object") {
    for (const name of [key, "results", "items", "data"]) {
      if (Array.isArray(data[name])) return data[name];
    }
  }
  return [];
}

/** A model's full name: Ollama reads a name without a tag as `name:latest`. */
export function taggedModel(name) {
  if (typeof name !== "string" || !name) return null;
  return name.split("/").pop().includes(":") ? name : `${name}:latest`;
}

function modelName(entry) {
  if (typeof entry === "string") return taggedModel(entry);
  return taggedModel(entry?.name || entry?.model || entry?.id);
}

export class AssistantOptions {
  constructor({ defaultAgentId = null } = {}) {
    this.agents = [];
    this.models = [];
    this.defaultAgentId = defaultAgentId;
    this.defaultModel = null;
    this.selects = [];
    this.loaded = null;
    this.listeners = new Set();
    this.asked = new Set();
  }

  /** Fetch agents and models once; resolves when both answered (or failed). */
  load() {
    this.loaded ||= Promise.allSettled([
      api("/api/llm/agents").then((data) => {
        this.agents = listOf(data, "agents").filter((a) => a && a.id && a.name);
      }),
      api("/api/llm/models").then((data) => {
        this.defaultModel = taggedModel(data?.defaultModel);
        const names = listOf(data, "models").map(modelName).filter(Boolean);
        this.models = [...new Set(names)].filter((name) => name !== this.defaultModel);
      }),
    ]).then(() => {
      for (const select of this.selects) this._fill(select);
      for (const fn of this.listeners) fn();
    });
    return this.loaded;
  }

  onChange(fn) {
    this.listeners.add(fn);
  }

  agentName(agentId) {
    const agent = this.agents.find((a) => a.id === agentId);
    if (!agent && agentId && !this.asked.has(agentId)) {
      // An agent made after this page loaded: fetch the list again, once per unknown id.
      this.asked.add(agentId);
      this.loaded?.then(() => {
        this.loaded = null;
        this.load();
      });
    }
    return agent?.name || "Assistant";
  }

  /** A row of selects for a composer; every composer's row shares this state. */
  controls() {
    const agent = h("select", {
      class: "select-sm",
      "aria-label": "Agent",
      dataset: { kind: "agent" },
    });
    const model = h("select", {
      class: "select-sm",
      "aria-label": "Model",
      dataset: { kind: "model" },
    });
    const row = h(
      "div",
      { class: "assistant-options", hidden: true },
      h("label", {}, h("span", {}, "Agent"), agent),
      h("label", {}, h("span", {}, "Model"), model),
    );
    const pair = { agent, model };
    this.selects.push(pair);
    this._fill(pair);
    for (const select of [agent, model]) {
      select.addEventListener("change", () => {
        // One choice for the whole room: the thread's composer follows the main one's.
        for (const other of this.selects) other[select.dataset.kind].value = select.value;
      });
    }
    this.current = pair;
    return row;
  }

  _fill({ agent, model }) {
    const agentValue = agent.value || this.defaultAgentId || "";
    replaceChildren(
      agent,
      h("option", { value: "" }, "Default assistant"),
      this.agents.map((a) => h("option", { value: a.id }, a.name)),
    );
    agent.value = this.agents.some((a) => a.id === agentValue) ? agentValue : "";
    const modelValue = model.value;
    replaceChildren(
      model,
      h(
        "option",
        { value: "" },
        this.defaultModel ? `Default model (${this.defaultModel})` : "Default model",
      ),
      this.models.map((name) => h("option", { value: name }, name)),
    );
    model.value = this.models.includes(modelValue) ? modelValue : "";
  }

  /** {agentId, model} as chosen (empty strings become undefined: the server's defaults). */
  choice() {
    const pair = this.current;
    if (!pair) return {};
    return { agentId: pair.agent.value || undefined, model: pair.model.value || undefined };
  }
}
