/**
 * Vitest globalSetup for the `integration` and `e2e` projects: ONE Synapse per project run, its
 * address handed to every test file through provide/inject. Test files share the server, so each
 * registers its own users (uniqueLocalpart) instead of assuming an empty one.
 */
import { inject } from 'vitest';
import type { TestProject } from 'vitest/node';
import { loginUser, registerUser, startSynapse, type SynapseAddress, type SynapseUser } from './synapse.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    synapse: SynapseAddress;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // A failure here throws (with the log's tail), which fails the run: nothing is skipped.
  const synapse = await startSynapse({ name: project.name });
  project.provide('synapse', {
    baseUrl: synapse.baseUrl,
    serverName: synapse.serverName,
    registrationSharedSecret: synapse.registrationSharedSecret,
  });
  return () => synapse.stop();
}

export interface SharedSynapse extends SynapseAddress {
  registerUser(localpart: string, password: string, options?: { admin?: boolean }): Promise<SynapseUser>;
  login(localpart: string, password: string): Promise<SynapseUser>;
}

/** Inside a test file: the project's Synapse, with the helpers that need only its address. */
export function sharedSynapse(): SharedSynapse {
  const address = inject('synapse');
  if (!address) throw new Error('no Synapse was provided: this test must run in a project whose globalSetup is test/harness/synapse-global.ts');
  return {
    ...address,
    registerUser: (localpart, password, options) => registerUser(address, localpart, password, options),
    login: (localpart, password) => loginUser(address, localpart, password),
  };
}
