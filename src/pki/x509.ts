/**
 * The one place @peculiar/x509 is loaded: the Reflect metadata stand-in must run first, and the
 * library must sign and verify with Node's own WebCrypto. Every other module imports `x509` from here.
 */
import './reflect-shim.js';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as ReturnType<typeof x509.cryptoProvider.get>);

export { x509 };
