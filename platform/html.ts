/**
 * Escaping for the HTML Relais writes itself (e-mails, the download page, reports, invoices,
 * the operations page): every text goes through here, so markup in a feed or a config value
 * is shown, never run.
 */
const HTML_ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Escapes text for HTML element content and for quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] as string);
}
