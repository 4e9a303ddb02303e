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

export function dockerErrorResponse(
  status: number,
  message: string,
  options: { close: boolean; headRequest?: boolean },
): Buffer {
  const body = JSON.stringify({ message }) + '\n';
  return Buffer.from(
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\n` +
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
