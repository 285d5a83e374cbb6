import type { ProviderHooks } from '../hooks';
import { standardHooks } from '../hooks';
import { atlassian } from './atlassian';
import { auth0 } from './auth0';
import { box } from './box';
import { discord } from './discord';
import { dropbox } from './dropbox';
import { flickr } from './flickr';
import { github } from './github';
import { gitlab } from './gitlab';
import { google } from './google';
import { hubspot } from './hubspot';
import { intuit } from './intuit';
import { jiraServer } from './jira-server';
import { linkedin } from './linkedin';
import { microsoft } from './microsoft';
import { okta } from './okta';
import { fillTemplate, templateParts, type ProviderPreset } from './preset';
import { reddit } from './reddit';
import { salesforce } from './salesforce';
import { slack } from './slack';
import { spotify } from './spotify';
import { strava } from './strava';
import { trello } from './trello';
import { twitch } from './twitch';
import { twitter } from './twitter';
import { xero } from './xero';
import { zoom } from './zoom';

export type { OAuth1Preset, OAuth2Preset, PresetParam, ProviderPreset } from './preset';

/** Every built-in preset by the name `preset:` takes. One file per provider. */
export const CATALOG: ReadonlyMap<string, ProviderPreset> = new Map<string, ProviderPreset>(
  Object.entries({
    atlassian,
    auth0,
    box,
    discord,
    dropbox,
    flickr,
    github,
    gitlab,
    google,
    hubspot,
    intuit,
    'jira-server': jiraServer,
    linkedin,
    microsoft,
    okta,
    reddit,
    salesforce,
    slack,
    spotify,
    strava,
    trello,
    twitch,
    twitter,
    xero,
    zoom,
  }).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
);

/** The hooks of a configured provider: its preset's, or the RFC defaults. */
export function hooksOf(provider: { preset?: string | undefined }): ProviderHooks {
  return (provider.preset === undefined ? undefined : CATALOG.get(provider.preset)?.hooks) ?? standardHooks;
}

const URL_FIELDS = ['authorizationUrl', 'tokenUrl', 'revocationUrl', 'deviceAuthorizationUrl', 'userinfoUrl', 'requestTokenUrl', 'authorizeUrl', 'accessTokenUrl'] as const;

/**
 * A provider entry with its preset's settings filled in under it: what the entry says wins,
 * maps of extra parameters are merged, URL templates are filled from `params`. Returns the
 * problems found (unknown preset, missing or malformed params) instead of throwing, for the
 * config schema to report with their paths.
 */
export function applyPreset(entry: Record<string, unknown>): { entry: Record<string, unknown>; issues: { path: string[]; message: string }[] } {
  const name = entry.preset;
  if (name === undefined) return { entry, issues: [] };
  if (typeof name !== 'string' || !CATALOG.has(name)) {
    return { entry, issues: [{ path: ['preset'], message: `unknown preset; the catalog has ${[...CATALOG.keys()].join(', ')}` }] };
  }
  const preset = CATALOG.get(name)!;
  if (entry.type !== undefined && entry.type !== preset.type) {
    return { entry, issues: [{ path: ['type'], message: `preset ${name} is an ${preset.type} provider` }] };
  }

  const issues: { path: string[]; message: string }[] = [];
  const given = isRecord(entry.params) ? entry.params : {};
  if (entry.params !== undefined && !isRecord(entry.params)) issues.push({ path: ['params'], message: 'must be a mapping of names to strings' });
  const declared = preset.params ?? {};
  const values: Record<string, string> = {};
  for (const [param, spec] of Object.entries(declared)) {
    const value = given[param] ?? spec.default;
    if (value === undefined) issues.push({ path: ['params', param], message: `preset ${name} needs params.${param} (${spec.description})` });
    else if (typeof value !== 'string' || !spec.pattern.test(value)) issues.push({ path: ['params', param], message: `must match ${spec.pattern.source} (${spec.description})` });
    else values[param] = value;
  }
  for (const param of Object.keys(given)) {
    if (!(param in declared)) issues.push({ path: ['params', param], message: `preset ${name} takes no parameter "${param}"` });
  }
  if (issues.length > 0) return { entry, issues };

  const { name: _name, docs: _docs, params: _params, quirks: _quirks, hooks: _hooks, ...settings } = preset;
  const defaults: Record<string, unknown> = { ...settings };
  for (const field of URL_FIELDS) {
    const template = defaults[field];
    if (typeof template === 'string' && templateParts(template).length > 0) defaults[field] = fillTemplate(template, values);
  }
  const merged: Record<string, unknown> = { ...defaults, ...entry };
  delete merged.params;
  delete merged.inboundVerifier;
  for (const field of ['authorizationParams', 'authorizeParams'] as const) {
    if (isRecord(defaults[field]) && isRecord(entry[field])) merged[field] = { ...defaults[field], ...entry[field] };
  }
  // A preset knows which verifier its provider's webhooks need; the entry still gives the secret.
  if (preset.type === 'oauth2' && preset.inboundVerifier && isRecord(entry.inboundWebhook) && entry.inboundWebhook.verifier === undefined) {
    merged.inboundWebhook = { verifier: preset.inboundVerifier, ...entry.inboundWebhook };
  }
  return { entry: merged, issues: [] };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
