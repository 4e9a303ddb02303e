/** Types for bench/lib/load-client.mjs (the bench is plain JavaScript; the tests are TypeScript). */
export type LoadTarget =
  | { readonly kind: 'unix'; readonly path: string }
  | {
      readonly kind: 'tls';
      readonly host: string;
      readonly port: number;
      readonly ca: string;
      readonly cert: string;
      readonly key: string;
    };

export interface LoadOptions {
  readonly mode: 'keepalive' | 'handshake';
  readonly path: string;
  readonly connections: number;
  readonly threads: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** The server's processes: their CPU over the window gives serverUsPerRequest. */
  readonly serverPids?: () => number[];
}

export interface LoadResult {
  readonly rps: number;
  readonly completed: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly errors: number;
  readonly errorSamples: string[];
  readonly clientBusy: number[];
  readonly clientCores: number;
  readonly serverCpuMs: number | null;
  readonly serverUsPerRequest: number | null;
}

export function getRequest(path: string): string;
export function runLoad(target: LoadTarget, options: LoadOptions): Promise<LoadResult>;
