import { CATALOG, type ProviderPreset } from './index';

/**
 * The catalog as a Markdown table, one row per preset sorted by id, for the README (between
 * `<!-- catalog:start -->` and `<!-- catalog:end -->`). Pure: the same catalog always gives the
 * same text.
 */
export function catalogTable(): string {
  const header = ['preset', 'provider', 'type', 'client auth', 'URL params', 'quirks'];
  const rows = [...CATALOG.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([id, preset]) => [`\`${id}\``, preset.name, preset.type, clientAuth(preset), params(preset), preset.quirks.join('<br>')].map(cell));
  return [header, header.map(() => '---'), ...rows].map((row) => `| ${row.join(' | ')} |`).join('\n') + '\n';
}

function clientAuth(preset: ProviderPreset): string {
  return preset.type === 'oauth2' ? `\`${preset.clientAuth}\`` : `\`${preset.signatureMethod}\` signature`;
}

function params(preset: ProviderPreset): string {
  const entries = Object.entries(preset.params ?? {});
  if (entries.length === 0) return '';
  return entries.map(([name, spec]) => (spec.default === undefined ? `\`${name}\` (required)` : `\`${name}\` (default \`${spec.default}\`)`)).join('<br>');
}

/** A table cell: a pipe would end it early, a line break would end the row. */
function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}
