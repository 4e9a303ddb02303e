/**
 * curl as seed 004 uses it: `curl https://HOST:PORT/version --cert cert.pem --key key.pem --cacert ca.pem`.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { ClientBundle } from './openssl-pki.js';

export interface CurlResult {
  /** curl's exit status: 0, or e.g. 35 (TLS), 56 (receive), 7 (connect). */
  readonly code: number | null;
  /** HTTP status, 0 when no response arrived. */
  readonly status: number;
  readonly body: string;
  readonly stderr: string;
}

export interface CurlOptions {
  /** --cacert/--cert/--key from this bundle (cert and key only if the bundle has them). */
  readonly bundle?: ClientBundle;
  readonly args?: readonly string[];
  readonly timeoutMs?: number;
}

const STATUS_MARK = '\n--curl-status:';

export function curlTlsArgs(bundle: ClientBundle | undefined): string[] {
  if (!bundle) return [];
  const args = ['--cacert', bundle.ca];
  if (existsSync(bundle.cert)) args.push('--cert', bundle.cert);
  if (existsSync(bundle.key)) args.push('--key', bundle.key);
  return args;
}

export function curl(url: string, options: CurlOptions = {}): Promise<CurlResult> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const args = [
    '-sS',
    '--max-time',
    String(Math.ceil(timeoutMs / 1000)),
    '-w',
    `${STATUS_MARK}%{http_code}`,
    ...curlTlsArgs(options.bundle),
    ...(options.args ?? []),
    url,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (c: string) => (out += c));
    child.stderr.on('data', (c: string) => (err += c));
    child.on('error', reject);
    child.on('close', (code) => {
      const at = out.lastIndexOf(STATUS_MARK);
      const status = at >= 0 ? Number(out.slice(at + STATUS_MARK.length)) || 0 : 0;
      resolve({ code, status, body: at >= 0 ? out.slice(0, at) : out, stderr: err });
    });
  });
}

/** A curl left running (e.g. GET /events), its output unbuffered (-N). */
export function spawnCurl(url: string, options: CurlOptions = {}): ChildProcessWithoutNullStreams {
  return spawn('curl', ['-sS', '-N', ...curlTlsArgs(options.bundle), ...(options.args ?? []), url], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}
