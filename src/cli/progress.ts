/**
 * A progress line for work that may take more than a second (an RSA-4096 key takes several on a
 * small machine): nothing for quick work, so fast commands stay quiet; otherwise one line on
 * stderr saying what is happening, finished with how long it took.
 */
export async function withProgress<T>(
  stderr: { write(text: string): unknown },
  what: string,
  work: Promise<T>,
  afterMs = 1000,
): Promise<T> {
  const started = performance.now();
  let shown = false;
  let ok = false;
  const timer = setTimeout(() => {
    shown = true;
    stderr.write(`dockgate: ${what}...`);
  }, afterMs);
  try {
    const result = await work;
    ok = true;
    return result;
  } finally {
    clearTimeout(timer);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    if (shown) stderr.write(ok ? ` done in ${seconds} s\n` : ` failed after ${seconds} s\n`);
  }
}
