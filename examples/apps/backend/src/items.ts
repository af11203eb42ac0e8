// The one rule of an item, kept pure so that `pnpm test` covers it without a database.
import { UnprocessableEntityException } from '@nestjs/common';

export const MAX_NAME = 200;

/** The trimmed name of a new item, or a 422 that says what is wrong. */
export function itemName(body: unknown): string {
  const name = body && typeof body === 'object' ? (body as { name?: unknown }).name : undefined;
  if (typeof name !== 'string' || !name.trim()) {
    throw new UnprocessableEntityException('name is required: send {"name": "..."}');
  }
  const trimmed = name.trim();
  if (trimmed.length > MAX_NAME) {
    throw new UnprocessableEntityException(`name is longer than ${MAX_NAME} characters`);
  }
  return trimmed;
}
