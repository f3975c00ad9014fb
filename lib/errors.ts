/**
 * Error model.
 *
 * - `NetlinkError`: the kernel said no. Built by the native addon (the class is handed to it at load
 *   time, better-sqlite3 style). `code` is the errno name (`EEXIST`), `errno` the positive number,
 *   `op` the message that failed (`RTM_NEWLINK`, `NFT_MSG_NEWRULE`), `extack` the kernel's
 *   extended-ack text when it sent one, `index` the position of the failing operation in a batch.
 * - `ConfigError`: bad input caught in TypeScript before anything reaches the kernel. `code` is
 *   `EINVAL` unless a more precise policy code applies; `field` names the offending option.
 * - `NetmodesError`: policy failures with stable codes (`ESUBNETOVERLAP`, `EPOOLEXHAUSTED`,
 *   `EPORTINUSE`, `EBRIDGEFULL`, `ENETWORKINUSE`, ...).
 */

export class NetlinkError extends Error {
  code: string;
  errno: number;
  op: string;
  extack?: string;
  /** Index of the failing operation within a batch or transaction. */
  index?: number;
  constructor(message: string, code: string, errno: number, op: string, extack?: string, index?: number) {
    super(message);
    this.code = code;
    this.errno = errno;
    this.op = op;
    if (extack) this.extack = extack;
    if (index !== undefined) this.index = index;
  }
}
Object.defineProperty(NetlinkError.prototype, 'name', { value: 'NetlinkError' });

export class ConfigError extends Error {
  code: string;
  field?: string;
  constructor(message: string, field?: string, code = 'EINVAL') {
    super(field ? `${field}: ${message}` : message);
    this.code = code;
    if (field) this.field = field;
  }
}
Object.defineProperty(ConfigError.prototype, 'name', { value: 'ConfigError' });

export class NetmodesError extends Error {
  code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options as any);
    this.code = code;
  }
}
Object.defineProperty(NetmodesError.prototype, 'name', { value: 'NetmodesError' });

const NOT_FOUND = new Set(['ENOENT', 'ENODEV', 'ESRCH', 'EADDRNOTAVAIL']);

/** True when the error says the object does not exist (teardown treats these as success). */
export function isNotFound(err: unknown): boolean {
  return !!err && typeof err === 'object' && NOT_FOUND.has((err as { code?: string }).code ?? '');
}

/** True when the error says the object already exists. */
export function isExists(err: unknown): boolean {
  return !!err && typeof err === 'object' && (err as { code?: string }).code === 'EEXIST';
}

/** Adds context to an error while keeping the original as `cause` (netavark's `wrap`). */
export function wrap(context: string, err: unknown): Error {
  const e = err as { code?: string; message?: string };
  const out = new NetmodesError(e?.code ?? 'EUNKNOWN', `${context}: ${e?.message ?? String(err)}`, { cause: err });
  return out;
}

/**
 * @internal Gives an error the addon made (in a libuv callback, so with no JS frames) the frames
 * of its caller. Call it in the `catch` after awaiting the addon's promise: an Error made there
 * carries V8's async frames, the async functions awaiting this call. `skip` drops that many frames
 * from the top (the helpers between). Free on success, unlike capturing a stack at every call.
 */
export function withCallerStack(err: Error, skip = 0): void {
  const site = new Error().stack;
  if (!site) return;
  // site: "Error", "at withCallerStack", then the callers.
  err.stack = `${err.name}: ${err.message}\n${site.split('\n').slice(2 + skip).join('\n')}`;
}
