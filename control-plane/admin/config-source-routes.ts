// Steering the git config source: suspend and resume polling, fetch now. Mutations,
// so they need the admin token like every other change.
import { GitSuspendedError, type SteerableConfigSource } from '../config/git-source.ts';
import { HttpError, type AdminRoute } from './router.ts';

export function configSourceRoutes(source: () => SteerableConfigSource | undefined): AdminRoute[] {
  const git = (): SteerableConfigSource => {
    const s = source();
    if (!s) {
      throw new HttpError(
        409,
        'the config does not come from git: suspend, resume and sync apply to `--config git+URL#BRANCH:PATH`',
        'TESSERA_ERR_NOT_GIT_SOURCE',
      );
    }
    return s;
  };
  return [
    { method: 'POST', pattern: '/api/v1/config/suspend', mutates: true, handler: () => ({ status: 200, json: { source: git().suspend() } }) },
    { method: 'POST', pattern: '/api/v1/config/resume', mutates: true, handler: () => ({ status: 200, json: { source: git().resume() } }) },
    {
      method: 'POST',
      pattern: '/api/v1/config/sync',
      mutates: true,
      handler: async () => {
        try {
          return { status: 200, json: { source: await git().sync() } };
        } catch (err) {
          if (err instanceof GitSuspendedError) throw new HttpError(409, err.message, err.code);
          throw err;
        }
      },
    },
  ];
}
