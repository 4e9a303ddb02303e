/**
 * Streams, measured with curl (C and OpenSSL, so the client is cheap next to what it measures):
 * the download is `GET /images/NAME/get` of the big image (docker save), the upload a tar PUT to
 * /containers/NAME/archive. While a stream runs, the front end's RSS is sampled: memory must stay
 * flat however many bytes go through.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { rssKb } from './processes.mjs';

const SAMPLE_MS = 100;

function curlArgs(target, path) {
  if (target.kind === 'unix') return ['--unix-socket', target.client.path, `http://docker${path}`];
  const dir = target.certPath;
  return [
    '--cacert',
    join(dir, 'ca.pem'),
    '--cert',
    join(dir, 'cert.pem'),
    '--key',
    join(dir, 'key.pem'),
    `https://127.0.0.1:${target.port}${path}`,
  ];
}

/**
 * Runs curl; resolves with bytes moved, seconds, and the front end's RSS: its peak growth over the
 * level before the stream, and how much the peak of the second half exceeds that of the first
 * half (memory that grows with bytes moved shows there; a bounded buffer does not).
 */
function runCurl(curl, target, args, what) {
  return new Promise((resolve, reject) => {
    const pids = target.pids();
    const baseKb = rssKb(pids);
    const samples = [];
    const started = performance.now();
    const sampler = setInterval(() => samples.push([performance.now() - started, rssKb(pids)]), SAMPLE_MS);
    const child = spawn(
      curl,
      ['-sS', '--fail', '-o', '/dev/null', '-w', '%{size_download} %{size_upload} %{time_total}', ...args],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.once('error', reject);
    child.once('close', (code) => {
      clearInterval(sampler);
      if (code !== 0)
        return reject(new Error(`${what} through ${target.label} failed: curl ${code}: ${err.trim()}`));
      const [down, up, seconds] = out.trim().split(' ').map(Number);
      const half = (performance.now() - started) / 2;
      const peak = (list) => Math.max(baseKb, ...list.map(([, kb]) => kb));
      const firstHalf = peak(samples.filter(([t]) => t < half));
      const secondHalf = peak(samples.filter(([t]) => t >= half));
      resolve({
        bytes: Math.max(down, up),
        seconds,
        rssGrowthKb: pids.length ? Math.max(firstHalf, secondHalf) - baseKb : null,
        rssLateGrowthKb: pids.length ? Math.max(0, secondHalf - firstHalf) : null,
      });
    });
  });
}

export async function download(curl, target, image, expectBytes) {
  const r = await runCurl(curl, target, curlArgs(target, `/images/${image}/get`), 'docker save');
  if (r.bytes < expectBytes)
    throw new Error(
      `docker save through ${target.label} gave ${r.bytes} bytes, expected at least ${expectBytes}`,
    );
  return { mbPerS: r.bytes / r.seconds / 1e6, ...r };
}

export async function upload(curl, target, container, tarFile, expectBytes) {
  const args = curlArgs(target, `/containers/${container}/archive?path=/tmp`);
  // Expect: 100-continue would be answered by some front ends and not others; leave it out.
  const r = await runCurl(
    curl,
    target,
    ['-T', tarFile, '-H', 'Content-Type: application/x-tar', '-H', 'Expect:', ...args],
    'PUT archive',
  );
  if (r.bytes < expectBytes)
    throw new Error(`PUT archive through ${target.label} sent ${r.bytes} bytes, expected ${expectBytes}`);
  return { mbPerS: r.bytes / r.seconds / 1e6, ...r };
}
