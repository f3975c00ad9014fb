/**
 * CNI errors: the specification's `{cniVersion, code, msg, details}` and the mapping from the
 * library's typed errors to its codes.
 *
 * Codes 1-99 are the specification's (only those it defines are used); 100 and up are this
 * plugin's own, one per netmodes error code, so a runtime's log says which policy refused.
 */
import { ConfigError, NetlinkError, NetmodesError } from '../errors';

/** The specification's well-known codes, and ours (100+). */
export const CNI_ERR = {
  /** Incompatible CNI version. */
  INCOMPATIBLE_VERSION: 1,
  /** Container unknown or does not exist (the runtime need not call DEL). */
  UNKNOWN_CONTAINER: 3,
  /** Invalid necessary environment variables (CNI_COMMAND, CNI_CONTAINERID, ...). */
  INVALID_ENVIRONMENT: 4,
  /** I/O failure (stdin could not be read). */
  IO_FAILURE: 5,
  /** Failed to decode content (stdin is not JSON). */
  DECODE_FAILURE: 6,
  /** Invalid network configuration. */
  INVALID_CONFIG: 7,
  /** Try again later (a transient condition). */
  TRY_AGAIN_LATER: 11,
  /** STATUS: the plugin cannot serve an ADD now. */
  PLUGIN_NOT_AVAILABLE: 50,
  // --- netmodes' own ---
  /** The (container id, ifname) is already attached to this network. */
  ALREADY_ATTACHED: 100,
  /** No free address left in the range (EPOOLEXHAUSTED). */
  POOL_EXHAUSTED: 101,
  /** The address asked for (runtimeConfig.ips, CNI_ARGS IP) is taken (EADDRINUSE). */
  ADDRESS_IN_USE: 102,
  /** A host port asked for is already published (EPORTINUSE). */
  PORT_IN_USE: 103,
  /** The network's subnet overlaps another network or the host's routes (ESUBNETOVERLAP). */
  SUBNET_OVERLAP: 104,
  /** The bridge is full (EBRIDGEFULL: a Linux bridge holds 1,023 ports; see portsPerBridge). */
  BRIDGE_FULL: 105,
  /** A bridge of that name exists and is not netmodes' (EEXIST). */
  BRIDGE_EXISTS: 106,
  /** CHECK found the attachment not as ADD left it. */
  CHECK_FAILED: 110,
  /** The kernel refused a request (a NetlinkError: details carry errno name and extack). */
  KERNEL: 120,
  /** Anything else. */
  INTERNAL: 999,
} as const;

export class CniError extends Error {
  readonly code: number;
  readonly details?: string;
  constructor(code: number, msg: string, details?: string) {
    super(msg);
    this.code = code;
    if (details) this.details = details;
  }
}
Object.defineProperty(CniError.prototype, 'name', { value: 'CniError' });

const POLICY: Record<string, number> = {
  EENDPOINTEXISTS: CNI_ERR.ALREADY_ATTACHED,
  EPOOLEXHAUSTED: CNI_ERR.POOL_EXHAUSTED,
  EADDRINUSE: CNI_ERR.ADDRESS_IN_USE,
  EPORTINUSE: CNI_ERR.PORT_IN_USE,
  ESUBNETOVERLAP: CNI_ERR.SUBNET_OVERLAP,
  EBRIDGEFULL: CNI_ERR.BRIDGE_FULL,
  EEXIST: CNI_ERR.BRIDGE_EXISTS,
};

/** Any error as a CniError (library errors mapped by their codes). */
export function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof ConfigError) return new CniError(CNI_ERR.INVALID_CONFIG, err.message, `netmodes ${err.code}${err.field ? ` (field ${err.field})` : ''}`);
  if (err instanceof NetmodesError) {
    const code = POLICY[err.code];
    if (code !== undefined) return new CniError(code, err.message, `netmodes ${err.code}`);
    return new CniError(CNI_ERR.INTERNAL, err.message, `netmodes ${err.code}`);
  }
  if (err instanceof NetlinkError) {
    const transient = err.code === 'EAGAIN' || err.code === 'EBUSY' || err.code === 'ENOBUFS' || err.code === 'EINTR';
    const details = `${err.code} in ${err.op}${err.extack ? `: ${err.extack}` : ''}`;
    return new CniError(transient ? CNI_ERR.TRY_AGAIN_LATER : CNI_ERR.KERNEL, err.message, details);
  }
  const e = err as { code?: string; message?: string };
  if (e && (e.code === 'EAGAIN' || e.code === 'EWOULDBLOCK' || e.code === 'EMFILE' || e.code === 'ENFILE'))
    return new CniError(CNI_ERR.TRY_AGAIN_LATER, e.message ?? String(err), e.code);
  return new CniError(CNI_ERR.INTERNAL, e?.message ?? String(err), e?.code);
}

/** The specification's error object. */
export function errorJson(err: CniError, cniVersion: string): Record<string, unknown> {
  const out: Record<string, unknown> = { cniVersion, code: err.code, msg: err.message };
  if (err.details) out.details = err.details;
  return out;
}
