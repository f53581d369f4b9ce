// @ts-check
/** Modal dialogs on the native `<dialog>`: focus moves in and back, Escape cancels, Enter
 * submits, and a server error stays in the dialog with the server's message. */

import { h } from './dom.js';

let seq = 0;

/**
 * @param {object} options
 * @param {string} options.title
 * @param {string} [options.description]
 * @param {(form: HTMLFormElement) => Node[]} options.fields
 * @param {string} options.submit  the submit button's label
 * @param {(data: FormData) => Promise<void>} options.onSubmit  throws to keep the dialog open
 * @returns {HTMLDialogElement}
 */
export function openDialog({ title, description, fields, submit, onSubmit }) {
  const id = `dialog-${++seq}`;
  const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  const error = h('p', { class: 'form-error', role: 'alert', id: `${id}-error`, hidden: true });
  const submitButton = h('button', { type: 'submit', class: 'btn primary' }, submit);
  const cancelButton = h('button', { type: 'button', class: 'btn', value: 'cancel' }, 'Cancel');
  const form = h('form', { method: 'dialog', class: 'dialog-form', 'aria-describedby': `${id}-error` });
  form.append(
    h('header', { class: 'dialog-head' },
      h('h2', { id: `${id}-title` }, title),
      description ? h('p', { class: 'dialog-desc' }, description) : null),
    h('div', { class: 'dialog-body' }, ...fields(form)),
    error,
    h('footer', { class: 'dialog-foot' }, cancelButton, submitButton),
  );
  const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': `${id}-title` }, form);

  const close = () => {
    dialog.close();
  };
  cancelButton.addEventListener('click', close);
  dialog.addEventListener('close', () => {
    dialog.remove();
    if (opener && opener.isConnected) opener.focus();
  });
  // A click on the backdrop (outside the form) cancels, like Escape.
  dialog.addEventListener('click', (event) => {
    if (event.target === dialog) close();
  });
  // Enter submits from any field, selects included (browsers only do it for text inputs).
  form.addEventListener('keydown', (event) => {
    const target = event.target;
    if (event.key === 'Enter' && !event.isComposing && target instanceof HTMLSelectElement) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (submitButton.disabled) return;
    error.hidden = true;
    submitButton.disabled = true;
    submitButton.setAttribute('aria-busy', 'true');
    try {
      await onSubmit(new FormData(form));
      close();
    } catch (e) {
      error.textContent = e instanceof Error ? e.message : String(e);
      error.hidden = false;
    } finally {
      submitButton.disabled = false;
      submitButton.removeAttribute('aria-busy');
    }
  });
  document.body.append(dialog);
  dialog.showModal();
  const first = /** @type {HTMLElement | null} */ (form.querySelector('[autofocus], input, select, textarea'));
  first?.focus();
  return dialog;
}

/**
 * A labelled field.
 * @param {string} label
 * @param {HTMLElement} control
 * @param {string} [hint]
 */
export function field(label, control, hint) {
  const id = control.id || `field-${++seq}`;
  control.id = id;
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    control,
    hint ? h('p', { class: 'hint' }, hint) : null);
}
