/** Pieces the benchmarks share: a Synapse client-server API call from Node. */

/** A Synapse answer that was not 2xx: the route (without ids) and the start of its body. */
export class SynapseApiError extends Error {
  override readonly name = 'SynapseApiError';
  readonly kind = 'synapse';
}

/** `/_matrix/client/v3{path}` with the user's token; the JSON answer, or a SynapseApiError. */
export async function synapseApi<T>(baseUrl: string, accessToken: string, method: string, path: string, body?: unknown, timeoutMs = 600_000): Promise<T> {
  const response = await fetch(`${baseUrl}/_matrix/client/v3${path}`, {
    method,
    headers: { authorization: `Bearer ${accessToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await response.text();
  if (!response.ok) throw new SynapseApiError(`${method} ${path.split('?')[0]} answered HTTP ${response.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}
