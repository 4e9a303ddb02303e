import { DockgateError } from '../errors.js';

/**
 * A request the gate refuses to relay because its framing is malformed or ambiguous. The status
 * goes back to the client; the connection is closed afterwards, since after a framing error the
 * gate can no longer tell where the next request would start (the root of request smuggling).
 */
export class HttpFramingError extends DockgateError {
  constructor(
    readonly status: 400 | 408 | 413 | 414 | 431 | 501 | 505,
    code: string,
    message: string,
  ) {
    super(code, message);
  }
}
