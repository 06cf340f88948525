// The /chat page: a conversation streamed from InferenceService.Chat over connect-web, with Stop and options.
import "../shared/base.css";
import "./chat.css";
import type { ChatMessageInput } from "../../client/sdk.ts";
import { DivisionMode } from "../../gen/iris/v1/common_pb.ts";
import { pageClient } from "../shared/client.ts";
import { AnswerView, userMessage } from "./answer.ts";
import { describeChatError, tooLongForContext } from "./errors.ts";

const byId = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const conversation = byId<HTMLElement>("conversation");
const welcome = byId<HTMLElement>("welcome");
const form = byId<HTMLFormElement>("composer");
const question = byId<HTMLTextAreaElement>("question");
const sendButton = byId<HTMLButtonElement>("send");
const stopButton = byId<HTMLButtonElement>("stop");
const accountKeyInput = byId<HTMLInputElement>("account-key");
const maxTokensInput = byId<HTMLInputElement>("max-tokens");
const modelInput = byId<HTMLInputElement>("model");
const modeSelect = byId<HTMLSelectElement>("mode");
const modes: Record<string, DivisionMode> = {
  auto: DivisionMode.AUTO,
  consensus: DivisionMode.CONSENSUS,
  subtasks: DivisionMode.SUBTASKS,
  context: DivisionMode.CONTEXT,
};
const optionsError = byId<HTMLElement>("options-error");

/** The turns sent with each question: answered (or stopped with some text) exchanges only. */
let history: ChatMessageInput[] = [];
let running: AbortController | undefined;
/** Bumped by New chat, so an answer still ending from the old conversation stays out of the new history. */
let epoch = 0;

// Session storage: the key survives a reload but not the closed tab (it is a credential).
const KEY_STORAGE = "iris.accountKey";
const query = new URLSearchParams(location.search);
accountKeyInput.value = sessionStorage.getItem(KEY_STORAGE) ?? "";
maxTokensInput.value = query.get("max_tokens") ?? "";
modelInput.value = query.get("model") ?? "";
if (accountKeyInput.value || maxTokensInput.value || modelInput.value) byId<HTMLDetailsElement>("options").open = true;

/** "1234567890123456" or with any separators → "1234 5678 9012 3456"; "" for none; undefined if malformed. */
function accountKey(): string | undefined {
  const digits = accountKeyInput.value.replace(/[\s-]/g, "");
  if (digits === "") return "";
  if (!/^\d{16}$/.test(digits)) return undefined;
  return digits.replace(/(\d{4})(?=\d)/g, "$1 ");
}

function showOptionsError(text: string | undefined): void {
  optionsError.hidden = !text;
  optionsError.textContent = text ?? "";
  if (text) byId<HTMLDetailsElement>("options").open = true;
}

function nearBottom(): boolean {
  const page = document.scrollingElement ?? document.documentElement;
  return page.scrollHeight - page.scrollTop - page.clientHeight < 120;
}

function keepInView(follow: boolean): void {
  if (follow) window.scrollTo({ top: document.documentElement.scrollHeight });
}

function setBusy(busy: boolean): void {
  sendButton.hidden = busy;
  stopButton.hidden = !busy;
  if (busy) stopButton.focus();
  else question.focus();
}

/** The options a question is sent with, or the sentence that says which one is wrong. */
function readOptions(): { key: string; maxTokens: number | undefined } | { problem: string; field: HTMLInputElement } {
  const key = accountKey();
  if (key === undefined)
    return {
      problem: "An account key is 16 digits (spaces optional). Fix it or clear it to chat anonymously.",
      field: accountKeyInput,
    };
  const maxTokens = maxTokensInput.value ? Number(maxTokensInput.value) : undefined;
  if (maxTokens !== undefined && !(Number.isInteger(maxTokens) && maxTokens >= 1 && maxTokens <= 131072)) {
    return {
      problem: "Max tokens is a whole number from 1 to 131072 (or empty for the default).",
      field: maxTokensInput,
    };
  }
  return { key, maxTokens };
}

async function ask(text: string, key: string, maxTokens: number | undefined): Promise<void> {
  showOptionsError(undefined);
  welcome.hidden = true;
  const turn: ChatMessageInput = { role: "user", content: text };
  let follow = true;
  conversation.append(userMessage(text));
  const answer = new AnswerView(() => keepInView(follow));
  conversation.append(answer.element);
  keepInView(true);

  const controller = new AbortController();
  const started = epoch;
  const remember = () => {
    if (started === epoch && answer.text) history.push(turn, { role: "assistant", content: answer.text });
  };
  running = controller;
  setBusy(true);
  const onScroll = () => (follow = nearBottom());
  window.addEventListener("scroll", onScroll, { passive: true });
  try {
    const client = pageClient({ accountKey: key || undefined });
    const divisionMode = modes[modeSelect.value];
    const events = client.chat([...history, turn], {
      maxTokens,
      model: modelInput.value.trim() || undefined,
      divisionMode,
      signal: controller.signal,
    });
    for await (const event of events) {
      if (event.type === "queued")
        answer.queued(event.queued.position, event.queued.maxWaitMs, event.queued.estimatedWaitMs);
      else if (event.type === "accepted") answer.accepted(event.accepted);
      else if (event.type === "token") answer.append(event.text);
      else answer.done(event.done);
    }
    remember();
  } catch (err) {
    if (controller.signal.aborted) {
      answer.stopped();
      remember();
    } else {
      // a conversation too long for every node online: the way out is a new chat, with the question kept for it
      const newChat = tooLongForContext(err) ? { label: "New chat", run: () => startNewChat(text) } : undefined;
      answer.failed(describeChatError(err, { withAccountKey: Boolean(key) }), newChat);
    }
  } finally {
    window.removeEventListener("scroll", onScroll);
    running = undefined;
    setBusy(false);
    keepInView(follow);
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = question.value.trim();
  if (!text || running) return;
  // a wrong option is said before anything is sent, and the typed question stays in the box
  const options = readOptions();
  if ("problem" in options) {
    showOptionsError(options.problem);
    options.field.focus();
    return;
  }
  question.value = "";
  fitQuestion();
  void ask(text, options.key, options.maxTokens);
});

question.addEventListener("keydown", (event) => {
  // Enter sends, Shift+Enter is a new line; never while an IME is composing a character
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

// the box grows with its text up to a few lines, then scrolls
function fitQuestion(): void {
  question.style.height = "auto";
  question.style.height = `${Math.min(question.scrollHeight, 200)}px`;
}
question.addEventListener("input", fitQuestion);

// aborting the fetch closes the stream; the coordinator sees the client go and cancels the node's task
stopButton.addEventListener("click", () => running?.abort());

/** Forgets the conversation; `draft` goes into the composer (the question a too-long conversation could not take). */
function startNewChat(draft?: string): void {
  running?.abort();
  epoch++;
  history = [];
  conversation.replaceChildren(welcome);
  welcome.hidden = false;
  if (draft !== undefined && !question.value.trim()) {
    question.value = draft;
    fitQuestion();
  }
  question.focus();
}

byId<HTMLButtonElement>("new-chat").addEventListener("click", () => startNewChat());

accountKeyInput.addEventListener("change", () => {
  const key = accountKey();
  if (key === undefined) return showOptionsError("An account key is 16 digits (spaces optional).");
  showOptionsError(undefined);
  accountKeyInput.value = key;
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
});

question.focus();
