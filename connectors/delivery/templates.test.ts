import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { IspConfig } from '../../config/load.js';
import { isRelaisError } from '../../platform/errors.js';
import { checkTemplates, defaultTemplatesDir, loadTemplates, templatesDirOf } from './templates.js';

const root = mkdtempSync(join(tmpdir(), 'relais-templates-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const KEY = 'ABCDE-FGHJK-MNPQR-STVWX-YZ012';
const URL = 'https://licences.example/v1/downloads/eyJhIjoxfQ.sig';
// 31 January 2027, 23:30 UTC: already 1 February in Paris.
const EXPIRES = new Date('2027-01-31T23:30:00Z');

/** An ISP as the loader would give it, with only what templates read. */
function isp(extra: { templatesDir?: string; language?: string; name?: string } = {}): IspConfig {
  return {
    id: 'demo',
    file: join(root, 'isps', 'demo.yaml'),
    name: extra.name ?? 'Demo FAI',
    language: extra.language ?? 'fr',
    timeZone: 'Europe/Paris',
    delivery: {
      mode: 'email',
      email: {
        from: 'Demo FAI <securite@demo-fai.example>',
        smtp: { host: '127.0.0.1', port: 25, secure: false, requireTls: false, timeoutMs: 1000 },
        ...(extra.templatesDir ? { templatesDir: extra.templatesDir } : {}),
      },
      returnFile: { delimiter: ';' },
    },
  } as unknown as IspConfig;
}

const GOOD = {
  'fr.subject.txt': '{{ispName}} : votre clé\n',
  'fr.txt': 'Clé : {{key}}\nLien : {{downloadUrl}}\nJusqu’au {{ expiresAt }}\n',
  'fr.html': '<p>{{ispName}}</p><a href="{{downloadUrl}}">{{downloadUrl}}</a> <b>{{key}}</b>\n',
};

/** Writes a template folder beside the ISP file and returns its name relative to it. */
function folder(name: string, files: Record<string, string>): string {
  const dir = join(root, 'isps', name);
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  return name;
}

const values = { key: KEY, downloadUrl: URL, expiresAt: EXPIRES, ispName: 'Demo FAI' };

describe('shipped default templates', () => {
  it('pass the check', () => {
    expect(checkTemplates(isp())).toEqual([]);
    expect(templatesDirOf(isp())).toBe(defaultTemplatesDir());
    expect(loadTemplates(isp()).languages).toEqual(['en', 'fr']);
  });

  it('render the key, the link, the ISP name and the expiry in French', () => {
    const message = loadTemplates(isp()).render('fr', values);
    expect(message.language).toBe('fr');
    expect(message.subject).toBe("Demo FAI : votre clé d'activation de la suite de sécurité");
    for (const part of [message.text, message.html]) {
      expect(part).toContain(KEY);
      expect(part).toContain(URL);
      expect(part).toContain('Demo FAI');
      expect(part).toContain('1 février 2027');
    }
    expect(message.html).toContain(`<a href="${URL}">`);
  });

  it('render in English for an English-speaking contact', () => {
    const message = loadTemplates(isp()).render('en', values);
    expect(message.subject).toBe('Demo FAI: your security suite activation key');
    expect(message.text).toContain('February 1, 2027');
    expect(message.text).toContain('type your activation key');
  });
});

describe('language choice', () => {
  it.each([
    { contact: 'EN', ispLanguage: 'fr', expected: 'en' },
    { contact: 'de', ispLanguage: 'fr', expected: 'fr' },
    { contact: null, ispLanguage: 'fr', expected: 'fr' },
    { contact: null, ispLanguage: 'de', expected: 'en' },
    { contact: 'it', ispLanguage: 'nl', expected: 'en' },
  ])('a contact in $contact of an ISP in $ispLanguage gets $expected', (c) => {
    const set = loadTemplates(isp({ language: c.ispLanguage }));
    expect(set.pickLanguage(c.contact)).toBe(c.expected);
  });
});

describe('placeholders', () => {
  it('are HTML-escaped in the HTML part only', () => {
    const dir = folder('escape', GOOD);
    const message = loadTemplates(isp({ templatesDir: dir })).render(null, {
      ...values,
      ispName: 'Fibre & Co <Ouest>',
    });
    expect(message.subject).toBe('Fibre & Co <Ouest> : votre clé');
    expect(message.html).toContain('<p>Fibre &amp; Co &lt;Ouest&gt;</p>');
    expect(message.text).toContain(`Clé : ${KEY}`);
  });

  it('allow spaces inside the braces', () => {
    const dir = folder('spaces', GOOD);
    const text = loadTemplates(isp({ templatesDir: dir })).render(null, values).text;
    expect(text).toContain('Jusqu’au 1 février 2027');
  });
});

describe('checkTemplates', () => {
  it('names the file and line of an unknown placeholder', () => {
    const dir = folder('unknown', {
      ...GOOD,
      'fr.txt': 'Bonjour {{prenom}},\n\nClé : {{key}}\nLien : {{downloadUrl}} {{ url }}\n',
    });
    expect(checkTemplates(isp({ templatesDir: dir }))).toEqual([
      {
        file: join(root, 'isps', dir, 'fr.txt'),
        line: 1,
        message: 'unknown placeholder {{prenom}} (known: key, downloadUrl, expiresAt, ispName)',
      },
      {
        file: join(root, 'isps', dir, 'fr.txt'),
        line: 4,
        message: 'unknown placeholder {{url}} (known: key, downloadUrl, expiresAt, ispName)',
      },
    ]);
  });

  it.each([
    {
      what: 'a missing part of a language',
      files: { 'fr.subject.txt': GOOD['fr.subject.txt'], 'fr.txt': GOOD['fr.txt'] },
      file: 'fr.html',
      line: 1,
      message: 'missing template: fr has fr.subject.txt but no fr.html',
    },
    {
      what: 'a body without the key',
      files: { ...GOOD, 'fr.txt': 'Lien : {{downloadUrl}}\n' },
      file: 'fr.txt',
      line: 1,
      message: 'the message never uses {{key}}',
    },
    {
      what: 'an unclosed placeholder',
      files: { ...GOOD, 'fr.html': '<b>{{key}}</b>\n<a>{{downloadUrl}}</a>\n<p>{{ispName</p>\n' },
      file: 'fr.html',
      line: 3,
      message: '{{ without a closing }}',
    },
    {
      what: 'a subject on two lines',
      files: { ...GOOD, 'fr.subject.txt': 'Votre clé\nde {{ispName}}\n' },
      file: 'fr.subject.txt',
      line: 2,
      message: 'the subject must be a single line',
    },
  ])('reports $what', (c) => {
    const dir = folder(c.what.replace(/ /g, '-'), c.files);
    expect(checkTemplates(isp({ templatesDir: dir }))).toEqual([
      { file: join(root, 'isps', dir, c.file), line: c.line, message: c.message },
    ]);
  });

  it('reports a folder with neither the ISP language nor English', () => {
    const dir = folder('german-only', {
      'de.subject.txt': GOOD['fr.subject.txt'],
      'de.txt': GOOD['fr.txt'],
      'de.html': GOOD['fr.html'],
    });
    expect(checkTemplates(isp({ templatesDir: dir }))).toEqual([
      {
        file: join(root, 'isps', dir),
        line: 1,
        message: 'missing template: no fr (the ISP language) nor en templates in this folder',
      },
    ]);
  });

  it('reports a templates folder that does not exist, relative to the ISP file', () => {
    expect(checkTemplates(isp({ templatesDir: 'nowhere' }))).toEqual([
      {
        file: join(root, 'isps', 'nowhere'),
        line: 1,
        message: 'missing template: folder not found',
      },
    ]);
  });

  it('checks nothing for an ISP that does not deliver by e-mail', () => {
    const returnFile = { ...isp({ templatesDir: 'nowhere' }) } as IspConfig;
    const delivery = { ...returnFile.delivery, mode: 'return-file' as const };
    expect(checkTemplates({ ...returnFile, delivery } as IspConfig)).toEqual([]);
  });
});

describe('loadTemplates', () => {
  it('refuses invalid templates with DELIVERY_TEMPLATE_INVALID naming file and line', () => {
    const dir = folder('refused', { ...GOOD, 'fr.txt': '{{key}} {{downloadUrl}}\n{{nom}}\n' });
    let thrown: unknown;
    try {
      loadTemplates(isp({ templatesDir: dir }));
    } catch (err) {
      thrown = err;
    }
    expect(isRelaisError(thrown) && thrown.code).toBe('DELIVERY_TEMPLATE_INVALID');
    expect((thrown as Error).message).toBe(
      `e-mail templates of ISP demo are invalid: ${join(root, 'isps', dir, 'fr.txt')}:2: unknown placeholder {{nom}} (known: key, downloadUrl, expiresAt, ispName)`,
    );
  });
});
