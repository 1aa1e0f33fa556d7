// host:port, as the cluster file and connect({ endpoints }) give a server's
// address. Checked at the edge so a typo fails with a message naming where it
// came from, not later as a gRPC error (or as a port that gRPC wraps around).
import { isIPv4, isIPv6 } from 'node:net';

const PORT = /^[1-9][0-9]{0,4}$/;
const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const MAX_HOSTNAME = 253;

/**
 * Why `address` is not host:port, as a clause ("port \"99999\" is not …") to
 * follow the field that held it; undefined when it is. The host is a
 * hostname, an IPv4 address or an IPv6 address in brackets; the port is a
 * number from 1 to 65535.
 */
export function addressProblem(address: string): string | undefined {
  const bracketed = /^\[([^\]]*)\]:([^:]*)$/.exec(address);
  const colon = address.lastIndexOf(':');
  if (colon < 0) return 'it has no port';
  const [host, port] = bracketed !== null ? [bracketed[1] ?? '', bracketed[2] ?? ''] : [address.slice(0, colon), address.slice(colon + 1)];
  if (bracketed === null && host.includes(':')) return 'an IPv6 host goes in brackets, as in [::1]:7401';
  if (!PORT.test(port) || Number(port) > 65_535) return `port ${JSON.stringify(port)} is not a number from 1 to 65535`;
  const hostOk = bracketed !== null ? isIPv6(host) : /^[0-9.]+$/.test(host) ? isIPv4(host) : isHostname(host);
  if (!hostOk) return `host ${JSON.stringify(host)} is not a hostname, an IPv4 address or an IPv6 address in brackets`;
  return undefined;
}

function isHostname(host: string): boolean {
  return host.length <= MAX_HOSTNAME && host.split('.').every((label) => LABEL.test(label));
}
