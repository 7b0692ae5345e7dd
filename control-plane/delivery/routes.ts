// Admin API of the Canary controller: status, and pause/resume/promote/abort by hand
// (mutations: token-protected like every other one).
import { HttpError, type AdminRoute } from '../admin/router.ts';
import { CANARY_ACTIONS, CanaryActionError, type CanaryAction, type CanaryController } from './canary.ts';

export function canaryRoutes(controller: CanaryController): AdminRoute[] {
  const find = (namespace: string, name: string) => {
    const view = controller.view(`${namespace}/${name}`);
    if (!view) throw new HttpError(404, `no Canary ${namespace}/${name} (see GET /api/v1/canaries)`, 'TESSERA_ERR_NOT_FOUND');
    return view;
  };
  return [
    { method: 'GET', pattern: '/api/v1/canaries', handler: () => ({ status: 200, json: { canaries: controller.list() } }) },
    { method: 'GET', pattern: '/api/v1/canaries/{namespace}/{name}', handler: ({ params }) => ({ status: 200, json: find(params.namespace, params.name) }) },
    {
      method: 'POST',
      pattern: '/api/v1/canaries/{namespace}/{name}/{action}',
      mutates: true,
      handler: ({ params }) => {
        if (!CANARY_ACTIONS.includes(params.action as CanaryAction)) {
          throw new HttpError(404, `no action ${JSON.stringify(params.action)}; one of ${CANARY_ACTIONS.join(', ')}`, 'TESSERA_ERR_NOT_FOUND');
        }
        try {
          return { status: 200, json: controller.act(params.namespace, params.name, params.action as CanaryAction) };
        } catch (err) {
          if (err instanceof CanaryActionError) throw new HttpError(err.status, err.message, err.status === 404 ? 'TESSERA_ERR_NOT_FOUND' : 'TESSERA_ERR_CANARY_STATE');
          throw err;
        }
      },
    },
  ];
}
