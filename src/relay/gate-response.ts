/**
 * Responses the gate writes itself (refusals, framing errors, an unreachable engine), shaped like
 * dockerd's errors (`{"message": "..."}`) so that the docker CLI prints them as
 * "Error response from daemon: ...".
 */
const REASONS: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  408: 'Request Timeout',
  413: 'Content Too Large',
  414: 'URI Too Long',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  505: 'HTTP Version Not Supported',
};

/**
 * The fields dockerd puts on every answer, errors included (`Api-Version`, `Docker-Experimental`,
 * `Ostype`, `Server`), as the engine behind the gate last gave them; empty until it has. The
 * docker CLI takes the API version to speak from whatever answers its `/_ping`, a refusal too:
 * without `Api-Version` on the gate's 403, CLI 28 falls back to its own newest version, and
 * requests the policy allows then fail against an older engine ("client version 1.50 is too new").
 */
let engineFields = '';

const ENGINE_FIELDS = ['api-version', 'docker-experimental', 'ostype', 'server'] as const;
const FIELD_NAMES: Record<(typeof ENGINE_FIELDS)[number], string> = {
  'api-version': 'Api-Version',
  'docker-experimental': 'Docker-Experimental',
  ostype: 'Ostype',
  server: 'Server',
};

/** Records the engine's own fields from one of its answers (the gate's `/_ping` of it). */
export function learnEngineFields(headers: Readonly<Record<string, string | string[] | undefined>>): void {
  let fields = '';
  for (const name of ENGINE_FIELDS) {
    const value = headers[name];
    // Only what could have come from a well-behaved engine goes into the gate's own heads.
    if (typeof value === 'string' && /^[\x20-\x7e]{1,200}$/.test(value))
      fields += `${FIELD_NAMES[name]}: ${value}\r\n`;
  }
  engineFields = fields;
}

/**
 * `verifiedClient`: the answer goes to a client whose certificate the gate verified, who may learn
 * the engine's fields; a refused handshake's answer tells nothing of the engine, as dockerd
 * --tlsverify tells an unauthenticated peer nothing.
 */
export function dockerErrorResponse(
  status: number,
  message: string,
  options: { close: boolean; headRequest?: boolean; verifiedClient?: boolean },
): Buffer {
  const body = JSON.stringify({ message }) + '\n';
  return Buffer.from(
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\n` +
      (options.verifiedClient === true ? engineFields : '') +
      'Content-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      (options.close ? 'Connection: close\r\n' : '') +
      '\r\n' +
      // A response to HEAD has no body (RFC 9110 §9.3.2); sending one desynchronises the client.
      (options.headRequest ? '' : body),
  );
}

/** The answer to plain HTTP on the TLS port, the most common misconfiguration in the seeds. */
export function plainHttpRefusal(): Buffer {
  const body =
    'Client sent an HTTP request to a TLS port: dockgate requires TLS with a client certificate ' +
    '(DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH holding ca.pem, cert.pem and key.pem).\n';
  return Buffer.from(
    'HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
