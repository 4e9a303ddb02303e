/** A request body as the policy reads it: parsed at most once, decoded per Go type on demand. */
import { decodeGoJson, type GoDecoded, type GoType } from './go-decode.js';
import { GoJsonError, parseGoJson } from './go-json.js';

export class LazyBody {
  private parsed: ReturnType<typeof parseGoJson> | GoJsonError | undefined;
  constructor(private readonly raw: Buffer | undefined) {}

  decode(type: GoType): { value: GoDecoded; error?: undefined } | { value?: undefined; error: string } {
    if (this.raw === undefined) return { error: 'the request body was not made available to the policy' };
    // dockerd treats an empty body as "no settings" (or fails the request): nothing to check.
    if (this.raw.length === 0) return { value: undefined };
    if (this.parsed === undefined) {
      try {
        this.parsed = parseGoJson(this.raw);
      } catch (err) {
        if (!(err instanceof GoJsonError)) throw err;
        this.parsed = err;
      }
    }
    if (this.parsed instanceof GoJsonError)
      return { error: `the request body is not JSON dockgate can read (${this.parsed.message})` };
    try {
      return { value: decodeGoJson(type, this.parsed) };
    } catch (err) {
      if (!(err instanceof GoJsonError)) throw err;
      return { error: `the request body cannot be read with certainty (${err.message})` };
    }
  }
}
