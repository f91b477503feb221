/**
 * The download link edge. A customer opens the link from an e-mail or a letter in a browser
 * (an HTML page listing the installers) and the desktop software or a script asks for JSON;
 * each installer is streamed from the installers folder and recorded as a download. Rules
 * (which token opens what) live in licensing/downloads.ts.
 */
import { createReadStream } from 'node:fs';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Counter } from 'prom-client';
import type { LicensingDeps } from '../licensing/context.js';
import {
  findInstallers,
  installerFor,
  openDownloadLink,
  recordDownload,
} from '../licensing/downloads.js';
import { escapeHtml } from '../platform/html.js';
import { type Metrics, perRegistry } from '../platform/metrics.js';

interface Listing {
  modules: { module: string; url: string; bytes: number }[];
  expiresAt: string;
}

/** True when the client ranks text/html above JSON (a browser), false for anything else. */
export function prefersHtml(accept: string | undefined): boolean {
  if (!accept) return false;
  let html = -1;
  let json = -1;
  for (const [index, part] of accept.split(',').entries()) {
    const [type, ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const weight = q ? Number(q.slice(2)) : 1;
    if (!(weight > 0)) continue;
    // Equal weights: the earlier type in the header wins.
    const score = weight * 1000 - index;
    if (type === 'text/html') html = Math.max(html, score);
    else if (type === 'application/json') json = Math.max(json, score);
  }
  return html > json;
}

function megabytes(bytes: number): string {
  return bytes < 1_000_000
    ? `${Math.max(1, Math.round(bytes / 1000))} kB`
    : `${(bytes / 1e6).toFixed(1)} MB`;
}

function listingPage(listing: Listing): string {
  const items = listing.modules
    .map(
      (m) =>
        `<li><a href="${escapeHtml(m.url)}">${escapeHtml(m.module)}</a> (${megabytes(m.bytes)})</li>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="referrer" content="no-referrer"><title>Your downloads</title></head>
<body>
<h1>Your downloads</h1>
${listing.modules.length > 0 ? `<ul>\n${items}\n</ul>` : '<p>No installer is available for your subscription yet.</p>'}
<p>This link is valid until ${escapeHtml(listing.expiresAt)}.</p>
</body>
</html>
`;
}

/** Responses carry the token in their URL: keep them out of shared caches and referrers. */
function privateResponse(reply: FastifyReply): FastifyReply {
  return reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer');
}

/** The download counter of a registry, registered once. */
export const downloadCounter = perRegistry(
  (registry: Metrics): Counter<'isp' | 'module'> =>
    new Counter({
      name: 'relais_downloads_total',
      help: 'Installers served through download links, by ISP and module.',
      labelNames: ['isp', 'module'],
      registers: [registry],
    }),
);

export const downloadRoutes: FastifyPluginAsync<{ deps: LicensingDeps }> = async (
  app,
  { deps },
) => {
  const served = downloadCounter(deps.metrics);
  const serverUrl = deps.config.deployment.server.url;

  /** The listing of a link: JSON, or an HTML page for a browser. */
  async function listing(request: FastifyRequest, reply: FastifyReply, token: string) {
    const link = await openDownloadLink(deps, token);
    const installers = await findInstallers(
      deps.config.deployment.server.installersDir,
      link.modules,
    );
    const body: Listing = {
      modules: installers.map((i) => ({
        module: i.module,
        url: `${serverUrl}/v1/downloads/${token}/${i.module}`,
        bytes: i.bytes,
      })),
      expiresAt: link.expiresAt.toISOString(),
    };
    privateResponse(reply);
    if (prefersHtml(request.headers.accept)) {
      return reply.type('text/html; charset=utf-8').send(listingPage(body));
    }
    return reply.send(body);
  }

  /** One installer, streamed; a GET is recorded as a download, a HEAD (size check) is not. */
  async function installer(
    request: FastifyRequest,
    reply: FastifyReply,
    token: string,
    module: string,
  ) {
    const link = await openDownloadLink(deps, token);
    const found = await installerFor(deps, link, module);
    if (request.method === 'GET') {
      await recordDownload(deps, link, module);
      served.inc({ isp: link.ispId, module });
    }
    privateResponse(reply)
      .type('application/octet-stream')
      .header('content-length', found.bytes)
      .header('content-disposition', `attachment; filename="${found.fileName}"`);
    return reply.send(createReadStream(found.file));
  }

  // A wildcard rather than `:token/:module`: tokens are longer than the router's 100-character
  // limit on a named parameter. The rest is split here; a decoded `../x` has extra segments
  // and reaches installerFor as a non-module, which refuses it.
  app.get(
    '/v1/downloads/*',
    async (request: FastifyRequest<{ Params: { '*': string } }>, reply) => {
      const [token = '', ...rest] = request.params['*'].split('/');
      const module = rest.join('/');
      if (module === '') return listing(request, reply, token);
      return installer(request, reply, token, module);
    },
  );
};
