// Join tokens: how a workload on a plain host proves its identity. An operator creates
// one per workload identity (admin token required); the agent presents it with every
// CSR. Only SHA-256 hashes are kept, in a 0600 file beside the CA, so a copy of the
// file issues nothing.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { WorkloadIdentity } from './ca.ts';

export interface JoinTokenRecord extends WorkloadIdentity {
  id: string;
  createdAt: string;
  expiresAt: string;
}

interface Stored extends JoinTokenRecord {
  sha256: string;
}

const digest = (token: string) => createHash('sha256').update(token).digest();

export class JoinTokens {
  private tokens: Stored[];
  private readonly file: string;

  constructor(dir: string) {
    this.file = path.join(dir, 'join-tokens.json');
    this.tokens = fs.existsSync(this.file) ? (JSON.parse(fs.readFileSync(this.file, 'utf8')) as Stored[]) : [];
  }

  create(identity: WorkloadIdentity, ttlMs: number): { token: string; record: JoinTokenRecord } {
    const id = randomBytes(6).toString('hex');
    // The id is part of the token so a lookup needs no scan of every hash.
    const token = `tsr.${id}.${randomBytes(24).toString('base64url')}`;
    const now = Date.now();
    const record = { id, ...identity, createdAt: new Date(now).toISOString(), expiresAt: new Date(now + ttlMs).toISOString() };
    this.tokens = this.tokens.filter((t) => Date.parse(t.expiresAt) > now);
    this.tokens.push({ ...record, sha256: digest(token).toString('hex') });
    this.save();
    return { token, record };
  }

  /** The identity a token proves, or why it proves none. */
  verify(token: string): { identity: WorkloadIdentity } | { reason: string } {
    const id = /^tsr\.([0-9a-f]{12})\./.exec(token)?.[1];
    const stored = id ? this.tokens.find((t) => t.id === id) : undefined;
    if (!stored || !timingSafeEqual(Buffer.from(stored.sha256, 'hex'), digest(token))) return { reason: 'unknown join token' };
    if (Date.parse(stored.expiresAt) <= Date.now()) return { reason: `join token ${stored.id} expired at ${stored.expiresAt}` };
    return { identity: { namespace: stored.namespace, serviceAccount: stored.serviceAccount } };
  }

  revoke(id: string): boolean {
    const before = this.tokens.length;
    this.tokens = this.tokens.filter((t) => t.id !== id);
    if (this.tokens.length === before) return false;
    this.save();
    return true;
  }

  list(): JoinTokenRecord[] {
    return this.tokens.map(({ sha256: _, ...record }) => record);
  }

  private save(): void {
    const tmp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(this.tokens), { mode: 0o600 });
    fs.renameSync(tmp, this.file);
  }
}
