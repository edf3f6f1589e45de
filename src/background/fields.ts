/** Checks the fields of a request from an extension page; anything else is a typed bad-request. */
import { AppError } from './errors.ts';

export function requireString(request: object, field: string, maxLength = 4096): string {
  const value = (request as Record<string, unknown>)[field];
  if (typeof value !== 'string' || value.trim() === '') {
    throw new AppError('bad-request', `The request needs "${field}" as a non-empty string.`);
  }
  if (value.length > maxLength) throw new AppError('bad-request', `"${field}" is longer than ${maxLength} characters.`);
  return value;
}

export function requireArray(request: object, field: string, maxLength: number): unknown[] {
  const value = (request as Record<string, unknown>)[field];
  if (!Array.isArray(value)) throw new AppError('bad-request', `The request needs "${field}" as a list.`);
  if (value.length > maxLength) throw new AppError('bad-request', `"${field}" holds more than ${maxLength} entries; send it in parts.`);
  return value;
}
