// Sign-in: one button per provider the Hub has configured; after signing in, the operator
// returns to the page they were going to.

import { fill, h, session } from '../lib.js';

/** What a refused sign-in's reason means, for the person who was refused. */
const REASONS = {
  no_rule: 'You signed in, but no access rule grants you a role on this Hub. Ask an admin to add one.',
  flow_unknown: 'That sign-in expired or was already used. Start again.',
  state_mismatch: 'The provider’s answer did not belong to this sign-in. Start again.',
  code_reused: 'That sign-in link was already used. Start again.',
  code_rejected: 'The provider did not accept the sign-in. Start again.',
  pkce_mismatch: 'The provider did not accept the sign-in. Start again.',
  provider_refused: 'The provider refused the sign-in.',
  unsafe_return_to: 'The page to return to was not on this Hub.',
};

export function signinPage(main, { returnTo, reason }) {
  const safeReturn = returnTo && returnTo.startsWith('/') && !returnTo.startsWith('//') ? returnTo : '/console';
  const buttons = (session.providers || []).map((p) => h('li', {},
    h('a', {
      class: `button provider provider-${p.id}`,
      href: `${p.signInUrl}?returnTo=${encodeURIComponent(safeReturn)}`,
    }, `Sign in with ${p.name}`)));
  fill(main,
    h('section', { class: 'signin' },
      h('h1', {}, 'Sign in to Atlas Hub'),
      h('p', { class: 'muted' }, 'Operators see and move every channel, issue tokens and read the audit log here.'),
      reason ? h('div', { class: 'problem', role: 'alert' },
        REASONS[reason] || `The sign-in was refused (${reason}). Start again.`) : null,
      buttons.length
        ? h('ul', { class: 'providers' }, buttons)
        : h('p', { class: 'problem' },
          'No sign-in provider is configured on this Hub. Set ATLAS_SIGNIN_GITHUB_*, ',
          'ATLAS_SIGNIN_MICROSOFT_* or ATLAS_SIGNIN_OIDC_* (see .env.example).')));
}
