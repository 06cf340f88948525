// One answer in the conversation: grows as tokens arrive (re-rendered at most once per frame), then gets its footer.
import { DivisionMode } from "../../gen/iris/v1/common_pb.ts";
import type { Accepted, Done } from "../../gen/iris/v1/inference_pb.ts";
import { count, difficultyLabel, divisionLabel, duration, tierLabel, tokensPerSecond } from "../shared/labels.ts";
import { renderMarkdown } from "./markdown.ts";

export type AnswerState = "waiting" | "streaming" | "done" | "stopped" | "failed";

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A question as the user wrote it: plain text, never Markdown or HTML. */
export function userMessage(text: string): HTMLElement {
  const article = element("article", "message user");
  article.append(element("div", "bubble", text));
  return article;
}

/** A wait in whole seconds or minutes ("12 s", "3 min"): an estimate has no tenths. */
function roughly(ms: number): string {
  const seconds = Math.max(1, Math.round(ms / 1000));
  return seconds < 90 ? `${seconds} s` : `${Math.round(seconds / 60)} min`;
}

export class AnswerView {
  readonly element = element("article", "message assistant");
  readonly #content = element("div", "content markdown");
  readonly #status = element("p", "status", "Sending…");
  readonly #footer = element("footer", "meta");
  #text = "";
  #accepted: Accepted | undefined;
  #frame = 0;
  #renders = 0;

  /** `onRender` runs after each repaint of the text (the page keeps the newest line in view). */
  constructor(private readonly onRender: () => void = () => {}) {
    this.element.append(this.#status, this.#content, this.#footer);
    this.#setState("waiting");
  }

  get text(): string {
    return this.#text;
  }

  /** Called again every few seconds while the request waits: the position and the estimate move. */
  queued(position: number, maxWaitMs: number, estimatedWaitMs?: number): void {
    const estimate = estimatedWaitMs !== undefined ? `, a node in about ${roughly(estimatedWaitMs)}` : "";
    const wait = maxWaitMs > 0 ? ` (waiting at most ${roughly(maxWaitMs)} more)` : "";
    this.#status.textContent = `Waiting for a free node — position ${position} in the queue${estimate}${wait}…`;
    this.element.dataset.queuePosition = String(position);
  }

  accepted(accepted: Accepted): void {
    this.#accepted = accepted;
    this.element.dataset.taskId = accepted.taskId;
    this.#status.textContent = `${tierLabel(accepted.tier)} node ${accepted.nodeId} is answering…`;
    this.#footer.replaceChildren(...this.#facts([]));
  }

  append(text: string): void {
    if (!this.#text) {
      this.#status.hidden = true;
      this.#setState("streaming");
    }
    this.#text += text;
    // Tokens can arrive thousands a second: parse and sanitize at most once per frame, not once per token.
    this.#frame ||= requestAnimationFrame(() => this.#render());
  }

  done(done: Done): void {
    this.#flush();
    const timings = done.timings;
    const facts = [
      `first token ${duration(timings?.timeToFirstTokenMs ?? 0)}`,
      tokensPerSecond(timings?.tokensPerSecond ?? 0),
      `${count(done.usage?.completionTokens ?? 0)} tokens`,
    ];
    if (done.finishReason === "length") facts.push("stopped at the token limit");
    const mode = this.#accepted?.divisionMode ?? DivisionMode.UNSPECIFIED;
    if (mode !== DivisionMode.UNSPECIFIED && mode !== DivisionMode.SINGLE) {
      // a divided answer: its mode, consensus's verdict, and every node that took part
      facts.push(
        mode === DivisionMode.CONSENSUS
          ? `${divisionLabel(mode)}, ${done.verified ? "verified" : "unverified"}`
          : divisionLabel(mode),
      );
      facts.push(`nodes ${done.nodeIds.join(", ")}`);
    } else if (done.nodeIds.length > 1) {
      facts.push(`continued by ${done.nodeIds.slice(1).join(", ")}`);
    }
    this.#footer.replaceChildren(...this.#facts(facts));
    this.#setState("done");
  }

  stopped(): void {
    this.#flush();
    this.#status.hidden = false;
    this.#status.textContent = this.#text ? "Stopped." : "Stopped before the answer began.";
    this.#footer.replaceChildren(...this.#facts(["stopped"]));
    this.#setState("stopped");
  }

  /** Shows why the answer failed; `action` adds a button that offers the way out (New chat). */
  failed(sentence: string, action?: { label: string; run: () => void }): void {
    this.#flush();
    this.#status.hidden = false;
    this.#status.textContent = sentence;
    if (action) {
      const button = element("button", "quiet action", action.label);
      button.type = "button";
      button.addEventListener("click", action.run);
      this.#status.append(" ", button);
    }
    this.#status.className = "status error";
    this.#status.setAttribute("role", "alert");
    this.#setState("failed");
  }

  /** Difficulty, tier, node and model from `accepted`, then the given figures; the task id for support. */
  #facts(extra: string[]): HTMLElement[] {
    const a = this.#accepted;
    if (!a) return extra.map((text) => element("span", "fact", text));
    const facts = [
      element("span", "fact difficulty", difficultyLabel(a.difficulty)),
      element("span", `fact tier tier-${tierLabel(a.tier).toLowerCase()}`, tierLabel(a.tier)),
      element("span", "fact node", `node ${a.nodeId}`),
      ...extra.map((text) => element("span", "fact", text)),
    ];
    const task = element("span", "fact task", `task ${a.taskId.slice(0, 8)}`);
    task.title = a.taskId;
    facts.push(task);
    return facts;
  }

  #render(): void {
    this.#frame = 0;
    this.#content.replaceChildren(renderMarkdown(this.#text));
    this.element.dataset.renders = String(++this.#renders);
    this.onRender();
  }

  #flush(): void {
    if (this.#frame) cancelAnimationFrame(this.#frame);
    if (this.#text) this.#render();
  }

  #setState(state: AnswerState): void {
    this.element.dataset.state = state;
  }
}
