/**
 * The message protocol between the extension's contexts. Every request is a tagged object; every
 * answer is a Result, because class instances (errors included) do not survive runtime messaging.
 */

/** An error as it crosses a context boundary: a kind to switch on, a message for people. */
export interface WireError {
  kind: string;
  message: string;
  /** The homeserver's errcode, when the homeserver said no. */
  errcode?: string;
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: WireError };

export interface WorkerStatus {
  product: 'Matrix Key Vault';
  version: string;
  /** Changes every time the worker starts; lets tests prove a worker was really restarted. */
  bootId: string;
  startedAt: number;
}

/** Requests any extension page may send to the worker, with the value each answers. */
export interface RequestMap {
  'status.get': { request: Record<never, never>; response: WorkerStatus };
}

export type RequestType = keyof RequestMap;
export type Request<T extends RequestType = RequestType> = { type: T } & RequestMap[T]['request'];
export type ResponseValue<T extends RequestType> = RequestMap[T]['response'];

const requestTypes: ReadonlySet<string> = new Set<RequestType>(['status.get']);

/** Narrowing guard for anything that arrives over runtime messaging. */
export function isRequest(value: unknown): value is Request {
  return typeof value === 'object' && value !== null &&
    typeof (value as { type?: unknown }).type === 'string' &&
    requestTypes.has((value as { type: string }).type);
}
