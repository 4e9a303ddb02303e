/**
 * The client-ceiling target: a unix-socket server that answers every request head with the bytes
 * dockerd answers GET /_ping with, doing nothing else. The load client against it shows how many
 * requests per second the client itself can drive on this machine (the server costs little).
 * Run as its own process: node canned-server.mjs SOCKET_PATH
 */
import net from 'node:net';

const RESPONSE = Buffer.from(
  'HTTP/1.1 200 OK\r\nApi-Version: 1.45\r\nCache-Control: no-cache, no-store, must-revalidate\r\n' +
    'Content-Length: 2\r\nContent-Type: text/plain; charset=utf-8\r\nDocker-Experimental: false\r\n' +
    'Ostype: linux\r\nPragma: no-cache\r\nServer: Docker/26.1.5 (linux)\r\n' +
    'Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\nOK',
  'latin1',
);
const END = Buffer.from('\r\n\r\n', 'latin1');

const server = net.createServer((socket) => {
  // The client sends one small request at a time, so a head never spans two chunks.
  socket.on('data', (chunk) => {
    for (let at = chunk.indexOf(END); at !== -1; at = chunk.indexOf(END, at + 4)) socket.write(RESPONSE);
  });
  socket.on('error', () => socket.destroy());
});
server.listen(process.argv[2]);
process.on('SIGTERM', () => process.exit(0));
