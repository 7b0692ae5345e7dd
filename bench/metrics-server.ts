// The control plane of the metrics-ingestion bench, in its own process so its CPU is
// measured alone: started with no config, it reports its ports, then answers
// 'usage' with its CPU time and RSS.
import { startControlPlane } from '../control-plane/main.ts';

const cp = await startControlPlane({ xdsPort: 0, adminPort: 0, address: '127.0.0.1', log: () => {} });
process.send?.({ xdsPort: cp.xdsPort, adminPort: cp.adminPort });
process.on('message', (m) => {
  if (m === 'usage') {
    const cpu = process.cpuUsage();
    process.send?.({ cpuMs: (cpu.user + cpu.system) / 1000, rssMb: Math.round(process.memoryUsage().rss / 2 ** 20), series: cp.traffic.seriesCount, dropped: cp.traffic.dropped });
  }
});
