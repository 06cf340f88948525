// Model answers as Markdown: parsed by marked, with every HTML the model writes shown as text, then DOMPurify'd.
import DOMPurify, { type Config } from "dompurify";
import { Marked, type Tokens } from "marked";

const escapes: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => escapes[c]!);

const markdown = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    // First line of defence: raw HTML from the model (block or inline) is displayed, never interpreted.
    html: ({ text }: Tokens.HTML | Tokens.Tag) => escapeHtml(text),
    // An image would be fetched the moment it renders (a tracking pixel, or a request the model chose):
    // show it as a link the reader may follow instead.
    image: ({ href, text }: Tokens.Image) => `<a href="${escapeHtml(href)}">${escapeHtml(text || href)}</a>`,
  },
});

const purifier = DOMPurify(window);
// Second line: whatever reaches the DOM is sanitized, with tags that load, submit or style things removed too.
const purifyConfig: Config & { RETURN_DOM_FRAGMENT: true } = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["style", "img", "picture", "video", "audio", "iframe", "form", "input", "button", "textarea", "select"],
  FORBID_ATTR: ["style", "srcset"],
  RETURN_DOM_FRAGMENT: true,
};

purifier.addHook("afterSanitizeAttributes", (node) => {
  if (node instanceof HTMLAnchorElement && node.hasAttribute("href")) {
    // links open elsewhere and tell the target nothing about this page
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

/** Safe DOM for Markdown text; an unfinished code fence (mid-stream) renders as an open code block. */
export function renderMarkdown(text: string): DocumentFragment {
  const html = markdown.parse(text, { async: false });
  return purifier.sanitize(html, purifyConfig);
}
