import { MemorySessionStore } from '../../src/store/memory.js';
import { describeStoreContract } from './contract.js';

describeStoreContract('memory', async (options) => {
  const clock = { value: Date.now() };
  const store = new MemorySessionStore({ now: () => clock.value, ...options });
  return { store, clock, cleanup: () => store.close() };
});
