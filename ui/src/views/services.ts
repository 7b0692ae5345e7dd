import type { Service } from '../api.ts';
import { badge, empty, h, since } from '../dom.ts';

const HEALTH_TEXT = { healthy: 'healthy', unhealthy: 'unhealthy', unknown: 'not checked yet' } as const;

export function renderServices(services: Service[]): Node[] {
  if (services.length === 0) {
    return [
      empty(
        'No services yet.',
        h('span', {}, 'Declare a ', h('code', {}, 'Service'), ' in the config dir, or register an instance: ', h('code', {}, 'PUT /api/v1/services/{service}/instances/{id}'), '.'),
      ),
    ];
  }
  return services.map((service) => {
    const healthy = service.instances.filter((i) => i.health === 'healthy').length;
    const total = service.instances.length;
    const overall = total === 0 ? 'none' : healthy === total ? 'healthy' : healthy === 0 ? 'unhealthy' : 'degraded';
    return h(
      'div',
      { class: `service service-${overall}`, 'data-service': service.name, 'data-health': overall },
      h(
        'div',
        { class: 'service-head' },
        h('span', { class: 'service-name' }, service.name),
        total === 0 ? badge('none', 'no instances') : badge(overall, `${healthy}/${total} healthy`),
      ),
      total === 0
        ? h('div', { class: 'muted small' }, 'Nothing to send traffic to: add an EndpointSlice or register an instance.')
        : h(
            'table',
            { class: 'instances' },
            h('thead', {}, h('tr', {}, h('th', {}, 'health'), h('th', {}, 'instance'), h('th', {}, 'address'), h('th', {}, 'zone'), h('th', {}, 'from'), h('th', {}, 'check'))),
            h(
              'tbody',
              {},
              service.instances.map((i) =>
                h(
                  'tr',
                  { 'data-instance': `${service.name}/${i.id}`, 'data-health': i.health },
                  h('td', {}, h('span', { class: `health health-${i.health}`, 'data-health': i.health }, HEALTH_TEXT[i.health] ?? i.health)),
                  h('td', { class: 'mono' }, i.id),
                  h('td', { class: 'mono' }, `${i.address}:${i.port}`),
                  h('td', { class: 'small' }, i.zone ?? ''),
                  h('td', { class: 'small muted' }, i.source === 'file' ? 'config file' : 'registry'),
                  h(
                    'td',
                    { class: 'small wrap' },
                    i.source === 'file' ? h('span', { class: 'muted' }, 'none (static)') : i.check ? h('span', {}, i.check, ' · ', since(i.lastCheck)) : 'none',
                    i.lastError ? h('div', { class: 'error-text' }, i.lastError) : null,
                  ),
                ),
              ),
            ),
          ),
    );
  });
}
