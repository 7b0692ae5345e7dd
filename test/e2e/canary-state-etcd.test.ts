// Canary state in a real etcd: what one control plane stores, the next one reads.
import { EtcdStore } from '../../control-plane/registry/etcd-store.ts';
import { etcdTest, requireEtcd, startEtcd } from '../support/etcd.ts';

etcdTest('controller state is kept under /tessera/state/ in etcd and read back by a new store', async (t) => {
  if (!requireEtcd(t)) return;
  const etcd = await startEtcd(t);
  const open = async () => {
    const store = new EtcdStore({ endpoints: [`http://${etcd.endpoint}`], leaseTtlSeconds: 5 });
    t.teardown(() => store.close());
    await store.start({ put() {}, delete() {} });
    return store;
  };
  const first = await open();
  await first.putState('canaries', 'default/reviews', { phase: 'Progressing', step: 2, weight: 50 });
  await first.putState('canaries', 'default/gone', { phase: 'Paused' });
  await first.putState('canaries', 'default/gone', undefined);
  await first.close();
  const second = await open();
  t.deepEqual([...(await second.loadState('canaries'))], [['default/reviews', { phase: 'Progressing', step: 2, weight: 50 }]]);
  t.deepEqual([...(await second.loadState('other'))], []);
});
