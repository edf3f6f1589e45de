/**
 * The extension API object, for code outside src/platform. Only this folder touches browser APIs, so
 * the rest of the tree imports `browser` from here rather than from the polyfill.
 */
import browser from 'webextension-polyfill';

export { browser };
export type Runtime = typeof browser.runtime;
export type MessageSender = import('webextension-polyfill').Runtime.MessageSender;
