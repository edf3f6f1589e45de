/**
 * The unlock form, shared by the popup and the unlock page: one "Recovery key" field that takes a
 * Security Key, a Security Phrase or a backup recovery key, with feedback on its format while typing.
 * The worker proves whatever is sent against the server's backup (and pins its key if none is).
 */
import type { ComponentChildren } from 'preact';
import { useId } from 'preact/hooks';
import { canSubmitRecoveryInput, classifyRecoveryInput } from './recovery-input.ts';
import { describeRecoveryInput, unlockTexts } from './texts.ts';
import { ErrorText } from './ui.tsx';

export interface UnlockFormProps {
  value: string;
  onValue: (value: string) => void;
  /** Sends the text; resolves when the worker answered (errors come back through `error`). */
  onUnlock: (input: string) => void | Promise<void>;
  busy: boolean;
  error: unknown;
  /** Said above the field: which backup, and why unlock. */
  intro?: ComponentChildren;
  /** Under the button, e.g. the link to the unlock page. */
  children?: ComponentChildren;
}

export function UnlockForm({ value, onValue, onUnlock, busy, error, intro, children }: UnlockFormProps) {
  const id = useId();
  const shape = classifyRecoveryInput(value);
  const feedback = describeRecoveryInput(shape);
  const invalid = shape.kind === 'bad-key' || shape.kind === 'too-long';
  return (
    <form
      data-testid="join"
      onSubmit={(e) => {
        e.preventDefault();
        if (!busy && canSubmitRecoveryInput(shape)) void onUnlock(value);
      }}
    >
      {intro && <p>{intro}</p>}
      <label>{unlockTexts.label}
        <input
          name="recoveryKey" type="password" autocomplete="off" spellcheck={false} required
          aria-describedby={`${id}-hint ${id}-format`} aria-invalid={invalid}
          value={value} onInput={(e) => onValue(e.currentTarget.value)} data-testid="recovery-input"
        />
      </label>
      <p id={`${id}-hint`} class="muted small hint">{unlockTexts.hint}</p>
      <p id={`${id}-format`} class={`small feedback ${invalid ? 'bad' : ''}`} role="status" data-testid="recovery-format" data-format={shape.kind}
        data-problem={shape.kind === 'bad-key' ? shape.problem : undefined}>{feedback}</p>
      {error !== null && <ErrorText error={error} />}
      <div class="row">
        <button type="submit" disabled={busy || !canSubmitRecoveryInput(shape)} aria-describedby={busy ? `${id}-busy` : undefined}>{unlockTexts.button}</button>
        {busy && <span id={`${id}-busy`} class="muted small" role="status">{unlockTexts.checking}</span>}
      </div>
      {children}
    </form>
  );
}
