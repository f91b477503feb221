/** Renders the error-code table as the Markdown page `docs/errors.md`. */
import { ERROR_CODES, type ErrorCodeInfo } from './error-codes.js';

export function renderErrorsMarkdown(): string {
  const lines = [
    '# Error codes',
    '',
    'Generated from `platform/error-codes.ts` by `relais errors --markdown > docs/errors.md`;',
    'a test fails when this page and the code disagree. Codes are stable: quote them in tickets.',
    'A retired code keeps its row and is never given a new meaning.',
    '',
    '| code | HTTP | meaning | what to do |',
    '|---|---|---|---|',
  ];
  for (const [code, info] of Object.entries(ERROR_CODES) as [string, ErrorCodeInfo][]) {
    const retired = info.retired ? ' (retired)' : '';
    lines.push(
      `| \`${code}\`${retired} | ${info.httpStatus} | ${cell(info.meaning)} | ${cell(info.action)} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|');
}
