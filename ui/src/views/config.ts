import type { ConfigView } from '../api.ts';
import { h, since } from '../dom.ts';

export function renderConfig(config: ConfigView): Node[] {
  const served = config.version
    ? h('span', {}, 'The config ', h('span', { class: 'mono' }, config.version.slice(0, 12)), ` from ${config.files.length} file${config.files.length === 1 ? '' : 's'} is served (applied `, since(config.appliedAt), ').')
    : h('span', {}, 'No config is served yet.');
  if (config.errors.length === 0) {
    return [
      h(
        'div',
        { class: 'config-ok', 'data-state': config.version ? 'ok' : 'none' },
        h('span', { class: 'dot dot-ok' }),
        h('strong', {}, config.version ? 'Config OK' : 'No config'),
        ' ',
        config.version ? served : h('span', { class: 'muted' }, 'The control plane runs without --config, or its dir has no valid files yet; services come from the registry.'),
      ),
    ];
  }
  return [
    h(
      'div',
      { class: 'config-rejected', 'data-state': 'rejected', role: 'alert' },
      h('h2', {}, `Config change rejected: ${config.errors.length} error${config.errors.length === 1 ? '' : 's'}`),
      h('p', {}, served, config.version ? ' It keeps serving until the errors below are fixed; nothing of the rejected change reached any proxy.' : ''),
      h(
        'ul',
        { class: 'config-errors' },
        config.errors.map((e) => {
          const where = `${e.file}:${e.line}${e.column ? `:${e.column}` : ''}`;
          return h('li', { 'data-file': e.file, 'data-line': e.line }, h('span', { class: 'mono where' }, where), h('span', {}, e.message));
        }),
      ),
    ),
  ];
}
